package nexmark

import (
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/state"
	"github.com/weirstream/weir/windowing"
)

// Query 5's sliding windows, as nexmark-flink's: 10 seconds, every 2.
const (
	Q5WindowSize  = 10 * time.Second
	Q5WindowSlide = 2 * time.Second
)

// Q5Result is query 5's output row: an auction with the most bids in a
// window, and how many it had.
type Q5Result struct {
	Auction int64 `json:"auction"`
	Num     int64 `json:"num"`
}

// BuildQ5 is query 5, hot items: per sliding window (Q5WindowSize every
// Q5WindowSlide), the auctions with the most bids, each with its count
// (every auction tied for the most). Bids are counted per auction and
// window in two phases, as Flink SQL plans q5: a count per auction and
// slice in each task, then the partial counts keyed by auction and merged
// per window (TwoPhaseWindowAggregate). Each task then keeps of the
// counts of a window only the highest and its ties (Combine, as Flink's
// local phase of the MAX aggregation), and these are keyed by the window,
// where a process function keeps the highest count and its auctions
// until the watermark passes the window's end: the counts of a window all
// come before the watermark that passes it, since each was emitted when
// the watermark upstream reached it.
func BuildQ5(job *engine.Job, in, out string) {
	counts := operators.TwoPhaseWindowAggregate(Bids(Source(job, in)), "q5-counts", func(b Bid) int64 { return b.Auction }, int64Codec,
		windowing.Sliding(Q5WindowSize, Q5WindowSlide), operators.Count[Bid]{}, int64Codec)
	perWindow := operators.Map(counts, func(w operators.Windowed[int64, int64]) (q5Count, error) {
		return q5Count{Auction: w.Key, Num: w.Value, End: w.End.UnixMilli()}, nil
	}).Named("q5-count")
	tops := operators.Combine(perWindow, "q5-local-top", func(c q5Count) int64 { return c.End }, mergeTop)
	byWindow := operators.KeyBy(tops, func(c q5Count) int64 { return c.End },
		operators.KeyByName("q5-by-window"), operators.KeyByCodecs(int64Codec, q5CountCodec{}))
	top := operators.Process(byWindow, "q5-top", &q5Top{})
	connectors.KafkaSink(top, out, codec.JSON[Q5Result]())
}

// q5Count is the bid count Num of auction Auction in the window ending at
// End (Unix ms), and of the auctions Ties, which have as many.
type q5Count struct {
	Auction, Num, End int64
	Ties              []int64
}

// mergeTop keeps the higher of two counts of a window, or both auctions
// if they tie.
func mergeTop(a, b q5Count) q5Count {
	switch {
	case b.Num > a.Num:
		return b
	case b.Num == a.Num:
		a.Ties = append(append(a.Ties, b.Auction), b.Ties...)
	}
	return a
}

// q5CountCodec writes a q5Count in 24 big-endian bytes, and 8 more per
// tie.
type q5CountCodec struct{}

func (q5CountCodec) Encode(c q5Count) ([]byte, error) {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 24+8*len(c.Ties)), uint64(c.Auction))
	b = binary.BigEndian.AppendUint64(b, uint64(c.Num))
	b = binary.BigEndian.AppendUint64(b, uint64(c.End))
	for _, a := range c.Ties {
		b = binary.BigEndian.AppendUint64(b, uint64(a))
	}
	return b, nil
}

func (q5CountCodec) Decode(b []byte) (q5Count, error) {
	if len(b) < 24 || len(b)%8 != 0 {
		return q5Count{}, fmt.Errorf("nexmark: q5 count of %d bytes, want 24 and 8 per tie", len(b))
	}
	u := func(i int) int64 { return int64(binary.BigEndian.Uint64(b[i:])) }
	c := q5Count{Auction: u(0), Num: u(8), End: u(16)}
	for i := 24; i < len(b); i += 8 {
		c.Ties = append(c.Ties, u(i))
	}
	return c, nil
}

// q5Top keeps, per window (the key: its end), the highest count so far and
// the auctions that have it, and emits them when the window's timer fires.
type q5Top struct {
	top *state.Value[q5Acc]
}

// q5Acc is a window's highest count and the auctions with it.
type q5Acc struct {
	Max      int64   `json:"max"`
	Auctions []int64 `json:"auctions"`
}

func (q *q5Top) Open(r *state.Registry) error {
	q.top = state.NewValue(r, "top", codec.JSON[q5Acc]())
	return nil
}

func (q *q5Top) Process(c operators.Context[int64], n q5Count, _ operators.Collector[Q5Result]) error {
	acc, ok, err := q.top.Get(c)
	if err != nil {
		return err
	}
	switch {
	case !ok:
		// The window's last millisecond: the watermark passes it after
		// every count of the window came.
		c.Timers().RegisterEventTimeTimer(time.UnixMilli(n.End - 1))
		acc = q5Acc{Max: n.Num, Auctions: append([]int64{n.Auction}, n.Ties...)}
	case n.Num > acc.Max:
		acc = q5Acc{Max: n.Num, Auctions: append([]int64{n.Auction}, n.Ties...)}
	case n.Num == acc.Max:
		acc.Auctions = append(append(acc.Auctions, n.Auction), n.Ties...)
	default:
		return nil
	}
	return q.top.Set(c, acc)
}

func (q *q5Top) OnTimer(c operators.Context[int64], _ time.Time, _ engine.TimeDomain, out operators.Collector[Q5Result]) error {
	acc, ok, err := q.top.Get(c)
	if err != nil || !ok {
		return err
	}
	q.top.Clear(c)
	slices.Sort(acc.Auctions)
	for _, a := range acc.Auctions {
		if err := out.Collect(Q5Result{Auction: a, Num: acc.Max}); err != nil {
			return err
		}
	}
	return nil
}
