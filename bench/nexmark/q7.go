package nexmark

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/state"
	"github.com/weirstream/weir/windowing"
)

// Q7Window is query 7's tumbling window, as nexmark-flink's.
const Q7Window = 10 * time.Second

// Q7Result is query 7's output row: a bid with the highest price of its
// window.
type Q7Result struct {
	Auction  int64    `json:"auction"`
	Bidder   int64    `json:"bidder"`
	Price    int64    `json:"price"`
	DateTime DateTime `json:"dateTime"`
	Extra    string   `json:"extra"`
}

// BuildQ7 is query 7, highest bid: per tumbling window of Q7Window, the
// bids with the highest price (all of them, if several tie). Bids are
// keyed by their window's start, so that one task sees all of a window,
// as Flink's global aggregate does, and an aggregate keeps the window's
// highest price with the bids that have it.
//
// nexmark-flink's SQL joins each bid with the windows' maxima on price and
// bid.dateTime BETWEEN window_end - 10s AND window_end: both ends
// included, so a bid at exactly a window's end, priced at the maximum of
// the window before, would count there too. This query counts a bid in
// its own window only.
func BuildQ7(job *engine.Job, in, out string) {
	rows := operators.Map(Bids(Source(job, in)), func(b Bid) (Q7Result, error) {
		return Q7Result{Auction: b.Auction, Bidder: b.Bidder, Price: b.Price, DateTime: b.DateTime, Extra: b.Extra}, nil
	}).Named("q7-project")
	byWindow := operators.KeyBy(rows, func(r Q7Result) int64 { return windowStart(r.DateTime.Time(), Q7Window) },
		operators.KeyByName("q7-by-window"), operators.KeyByCodecs[int64, Q7Result](int64Codec, q7RowCodec{}))
	highest := operators.WindowAggregate(byWindow, "q7-highest", windowing.Tumbling(Q7Window),
		state.AggregateFunction[Q7Result, q7Acc, []Q7Result](q7Highest{}), q7AccCodec{})
	bids := operators.FlatMap(highest, func(w operators.Windowed[int64, []Q7Result], out operators.Collector[Q7Result]) error {
		for _, r := range w.Value {
			if err := out.Collect(r); err != nil {
				return err
			}
		}
		return nil
	}).Named("q7-bids")
	connectors.KafkaSink(bids, out, codec.JSON[Q7Result]())
}

// q7Acc is a window's highest price so far and the bids that have it.
type q7Acc struct {
	Max  int64
	Bids []Q7Result
}

// q7Highest aggregates a window into its highest bids.
type q7Highest struct{}

func (q7Highest) Zero() q7Acc { return q7Acc{} }

func (q7Highest) Add(acc q7Acc, r Q7Result) q7Acc {
	switch {
	case len(acc.Bids) == 0 || r.Price > acc.Max:
		return q7Acc{Max: r.Price, Bids: []Q7Result{r}}
	case r.Price == acc.Max:
		acc.Bids = append(acc.Bids, r)
	}
	return acc
}

func (q7Highest) Merge(a, b q7Acc) q7Acc {
	switch {
	case len(b.Bids) == 0 || (len(a.Bids) > 0 && a.Max > b.Max):
		return a
	case len(a.Bids) == 0 || b.Max > a.Max:
		return b
	}
	return q7Acc{Max: a.Max, Bids: append(append([]Q7Result(nil), a.Bids...), b.Bids...)}
}

func (q7Highest) Result(acc q7Acc) []Q7Result { return acc.Bids }

// q7RowCodec writes a Q7Result compactly (varints, then the extra), for the
// repartition by window: every bid goes through it.
type q7RowCodec struct{}

func (q7RowCodec) Encode(r Q7Result) ([]byte, error) {
	return appendQ7Row(make([]byte, 0, 32+len(r.Extra)), r), nil
}

func (q7RowCodec) Decode(b []byte) (Q7Result, error) {
	r, rest, err := readQ7Row(b)
	if err == nil && len(rest) > 0 {
		err = errors.New("trailing bytes")
	}
	if err != nil {
		return Q7Result{}, fmt.Errorf("nexmark: decoding a q7 row: %w", err)
	}
	return r, nil
}

// q7AccCodec writes a q7Acc as its maximum, its bid count and its bids
// (q7RowCodec's layout): the accumulator is read and written for every
// bid of the window.
type q7AccCodec struct{}

func (q7AccCodec) Encode(a q7Acc) ([]byte, error) {
	b := binary.AppendVarint(make([]byte, 0, 48*len(a.Bids)+16), a.Max)
	b = binary.AppendUvarint(b, uint64(len(a.Bids)))
	for _, r := range a.Bids {
		b = appendQ7Row(b, r)
	}
	return b, nil
}

func (q7AccCodec) Decode(b []byte) (q7Acc, error) {
	bad := func(err error) (q7Acc, error) {
		return q7Acc{}, fmt.Errorf("nexmark: decoding a q7 accumulator: %w", err)
	}
	most, w := binary.Varint(b)
	if w <= 0 {
		return bad(errors.New("malformed maximum"))
	}
	b = b[w:]
	n, w := binary.Uvarint(b)
	if w <= 0 || n > uint64(len(b)) {
		return bad(errors.New("malformed count"))
	}
	b = b[w:]
	a := q7Acc{Max: most, Bids: make([]Q7Result, 0, n)}
	for range n {
		r, rest, err := readQ7Row(b)
		if err != nil {
			return bad(err)
		}
		a.Bids, b = append(a.Bids, r), rest
	}
	if len(b) > 0 {
		return bad(errors.New("trailing bytes"))
	}
	return a, nil
}

func appendQ7Row(b []byte, r Q7Result) []byte {
	b = binary.AppendVarint(b, r.Auction)
	b = binary.AppendVarint(b, r.Bidder)
	b = binary.AppendVarint(b, r.Price)
	b = binary.AppendVarint(b, int64(r.DateTime))
	b = binary.AppendUvarint(b, uint64(len(r.Extra)))
	return append(b, r.Extra...)
}

func readQ7Row(b []byte) (Q7Result, []byte, error) {
	var v [4]int64
	for i := range v {
		x, w := binary.Varint(b)
		if w <= 0 {
			return Q7Result{}, nil, errors.New("malformed integer")
		}
		v[i], b = x, b[w:]
	}
	n, w := binary.Uvarint(b)
	if w <= 0 || n > uint64(len(b)-w) {
		return Q7Result{}, nil, errors.New("malformed extra")
	}
	b = b[w:]
	r := Q7Result{Auction: v[0], Bidder: v[1], Price: v[2], DateTime: DateTime(v[3]), Extra: string(b[:n])}
	return r, b[n:], nil
}
