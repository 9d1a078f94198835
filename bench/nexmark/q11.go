package nexmark

import (
	"encoding/binary"
	"fmt"
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
//
// Before the bids are keyed by bidder, each task merges the bids of one
// bidder at one instant (millisecond) into one record with their number
// (Combine): bids at the same instant fall in the same session whatever
// else comes, so the sessions and their counts are those of the bids one
// by one, and a hot bidder's bids cross the repartition topic once per
// instant instead of once each. Flink's planner makes no such local phase
// for session windows; here it is the job's own choice, as a user of
// either engine could make it.
func BuildQ11(job *engine.Job, in, out string) {
	bids := operators.Map(Bids(Source(job, in)), func(b Bid) (q11Bids, error) {
		return q11Bids{Bidder: b.Bidder, At: int64(b.DateTime), N: 1}, nil
	}).Named("q11-bidder")
	instants := operators.Combine(bids, "q11-same-instant", func(b q11Bids) [2]int64 { return [2]int64{b.Bidder, b.At} },
		func(a, b q11Bids) q11Bids { a.N += b.N; return a })
	byBidder := operators.KeyBy(instants, func(b q11Bids) int64 { return b.Bidder },
		operators.KeyByName("q11-by-bidder"), operators.KeyByCodecs(int64Codec, q11BidsCodec{}))
	sessions := operators.WindowAggregate(byBidder, "q11-sessions", windowing.Sessions(Q11Gap),
		q11Count{}, int64Codec)
	rows := operators.Map(sessions, func(w operators.Windowed[int64, int64]) (Q11Result, error) {
		return Q11Result{Bidder: w.Key, BidCount: w.Value, Starttime: DateTimeOf(w.Start), Endtime: DateTimeOf(w.End)}, nil
	}).Named("q11-rows")
	connectors.KafkaSink(rows, out, codec.JSON[Q11Result]())
}

// q11Bids is N bids of Bidder at the instant At (Unix ms, the record's
// event time too).
type q11Bids struct{ Bidder, At, N int64 }

// q11Count counts the bids of a session.
type q11Count struct{}

func (q11Count) Zero() int64                    { return 0 }
func (q11Count) Add(acc int64, b q11Bids) int64 { return acc + b.N }
func (q11Count) Merge(a, b int64) int64         { return a + b }
func (q11Count) Result(acc int64) int64         { return acc }

// q11BidsCodec is a fixed-width codec for q11Bids: bidder, instant, number.
type q11BidsCodec struct{}

func (q11BidsCodec) Encode(b q11Bids) ([]byte, error) {
	out := binary.BigEndian.AppendUint64(make([]byte, 0, 24), uint64(b.Bidder))
	out = binary.BigEndian.AppendUint64(out, uint64(b.At))
	return binary.BigEndian.AppendUint64(out, uint64(b.N)), nil
}

func (q11BidsCodec) Decode(b []byte) (q11Bids, error) {
	if len(b) != 24 {
		return q11Bids{}, fmt.Errorf("nexmark: q11 bids of %d bytes, want 24", len(b))
	}
	u := func(i int) int64 { return int64(binary.BigEndian.Uint64(b[i:])) }
	return q11Bids{Bidder: u(0), At: u(8), N: u(16)}, nil
}
