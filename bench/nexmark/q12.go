package nexmark

import (
	"time"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/state"
)

// Q12Window is query 12's processing-time tumbling window, as
// nexmark-flink's.
const Q12Window = 10 * time.Second

// Q12Result is query 12's output row: a bidder's bid count in a window of
// processing time.
type Q12Result = Q11Result

// BuildQ12 is query 12, processing-time windows: per bidder, the bids that
// reached the counting task in each tumbling window of Q12Window of
// processing time, emitted when the clock passes the window's end.
//
// Weir's window assigners put records in windows by event time; a
// processing-time trigger (windowing.OnProcessingTime) only changes when an
// event-time window fires. So this query is a keyed process function: each
// bid counts in the window of its task's clock (Context.ProcessingTime)
// when it arrives, in map state by window start, and a processing-time
// timer emits and forgets the count once the clock reaches the window's
// end. The timer is at the end itself, not at its last millisecond as
// Flink's window timers are: a bid that arrives in that millisecond after
// the timer fired would otherwise be counted again, alone.
func BuildQ12(job *engine.Job, in, out string) {
	bidders := operators.Map(Bids(Source(job, in)), func(b Bid) (int64, error) { return b.Bidder, nil }).Named("q12-bidder")
	byBidder := operators.KeyBy(bidders, func(b int64) int64 { return b },
		operators.KeyByName("q12-by-bidder"), operators.KeyByCodecs(int64Codec, int64Codec))
	counts := operators.Process(byBidder, "q12-counts", &q12Count{})
	connectors.KafkaSink(counts, out, codec.JSON[Q12Result]())
}

// q12Count counts a bidder's bids per processing-time window.
type q12Count struct {
	counts *state.Map[int64, int64] // by window start, Unix ms
}

func (q *q12Count) Open(r *state.Registry) error {
	q.counts = state.NewMap(r, "counts", int64Codec, int64Codec)
	return nil
}

func (q *q12Count) Process(c operators.Context[int64], _ int64, _ operators.Collector[Q12Result]) error {
	start := windowStart(c.ProcessingTime(), Q12Window)
	n, ok, err := q.counts.Get(c, start)
	if err != nil {
		return err
	}
	if !ok {
		c.Timers().RegisterProcessingTimeTimer(time.UnixMilli(start + Q12Window.Milliseconds()))
	}
	return q.counts.Put(c, start, n+1)
}

func (q *q12Count) OnTimer(c operators.Context[int64], at time.Time, _ engine.TimeDomain, out operators.Collector[Q12Result]) error {
	start := at.UnixMilli() - Q12Window.Milliseconds()
	n, ok, err := q.counts.Get(c, start)
	if err != nil || !ok {
		return err
	}
	if err := q.counts.Delete(c, start); err != nil {
		return err
	}
	end := start + Q12Window.Milliseconds()
	return out.Collect(Q12Result{Bidder: c.Key(), BidCount: n, Starttime: DateTime(start), Endtime: DateTime(end)})
}
