package nexmark

import (
	"time"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/windowing"
)

// Q11Gap is query 11's session gap, as nexmark-flink's.
const Q11Gap = 10 * time.Second

// Q11Result is query 11's output row (and query 12's): a bidder's bid
// count in a window [Starttime, Endtime).
type Q11Result struct {
	Bidder    int64    `json:"bidder"`
	BidCount  int64    `json:"bid_count"`
	Starttime DateTime `json:"starttime"`
	Endtime   DateTime `json:"endtime"`
}

// BuildQ11 is query 11, user sessions: per bidder, the bids of each
// session (bids less than Q11Gap apart, or exactly), counted when the
// session closes. A session's end is its last bid plus the gap, as Flink's
// SESSION_END.
func BuildQ11(job *engine.Job, in, out string) {
	bidders := operators.Map(Bids(Source(job, in)), func(b Bid) (int64, error) { return b.Bidder, nil }).Named("q11-bidder")
	byBidder := operators.KeyBy(bidders, func(b int64) int64 { return b },
		operators.KeyByName("q11-by-bidder"), operators.KeyByCodecs(int64Codec, int64Codec))
	sessions := operators.WindowAggregate(byBidder, "q11-sessions", windowing.Sessions(Q11Gap),
		operators.Count[int64]{}, int64Codec)
	rows := operators.Map(sessions, func(w operators.Windowed[int64, int64]) (Q11Result, error) {
		return Q11Result{Bidder: w.Key, BidCount: w.Value, Starttime: DateTimeOf(w.Start), Endtime: DateTimeOf(w.End)}, nil
	}).Named("q11-rows")
	connectors.KafkaSink(rows, out, codec.JSON[Q11Result]())
}
