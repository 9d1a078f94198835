package nexmark

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/state"
)

// Q3Result is query 3's output row: a local seller and an auction of
// theirs.
type Q3Result struct {
	Name  string `json:"name"`
	City  string `json:"city"`
	State string `json:"state"`
	ID    int64  `json:"id"`
}

// Query 3's selection: sellers in these states, auctions in this category.
var q3States = map[string]bool{"OR": true, "ID": true, "CA": true}

// Q3Category is the category of query 3's auctions.
const Q3Category = 10

// q3Row is what query 3 moves to the seller's task: the columns of a
// person (Person set) or of an auction, projected as Flink's planner
// projects them before its shuffle.
type q3Row struct {
	Person bool   `json:"person,omitempty"`
	ID     int64  `json:"id"`               // the person's, or the auction's
	Seller int64  `json:"seller,omitempty"` // an auction's
	Name   string `json:"name,omitempty"`
	City   string `json:"city,omitempty"`
	State  string `json:"state,omitempty"`
	// Time is the person's or the auction's dateTime (Unix ms): a result
	// is stamped with the later of its two sides'.
	Time int64 `json:"time"`
}

// q3Waiting is an auction that came before its seller: its id and time.
type q3Waiting struct{ ID, Time int64 }

// q3WaitingCodec writes a q3Waiting in 16 big-endian bytes.
type q3WaitingCodec struct{}

func (q3WaitingCodec) Encode(w q3Waiting) ([]byte, error) {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(make([]byte, 0, 16), uint64(w.ID)), uint64(w.Time)), nil
}

func (q3WaitingCodec) Decode(b []byte) (q3Waiting, error) {
	if len(b) != 16 {
		return q3Waiting{}, fmt.Errorf("nexmark: q3 waiting auction of %d bytes, want 16", len(b))
	}
	return q3Waiting{ID: int64(binary.BigEndian.Uint64(b)), Time: int64(binary.BigEndian.Uint64(b[8:]))}, nil
}

// BuildQ3 is query 3, local item suggestion: the auctions of category
// Q3Category whose seller lives in OR, ID or CA, with the seller's name,
// city and state. It is a regular (unwindowed) inner join of persons and
// auctions on person id = seller, in event order: persons and auctions are
// keyed by the person id into one stage, where the person's task keeps the
// person and, until the person comes, their auctions, in keyed state.
//
// A result is stamped with the later of the person's and the auction's
// dateTime (operators.CollectAt), whichever came first.
//
// Person ids are unique, so an auction waiting for its seller is joined
// once and dropped, where Flink's join keeps both sides for ever; the
// results are the same. Neither side expires: as in Flink without a state
// TTL, the state grows with the persons selected.
func BuildQ3(job *engine.Job, in, out string) {
	rows := operators.FlatMap(Source(job, in), func(e Event, out operators.Collector[q3Row]) error {
		switch {
		case e.Person != nil && q3States[e.Person.State]:
			p := e.Person
			return out.Collect(q3Row{Person: true, ID: p.ID, Name: p.Name, City: p.City, State: p.State, Time: int64(p.DateTime)})
		case e.Auction != nil && e.Auction.Category == Q3Category:
			return out.Collect(q3Row{ID: e.Auction.ID, Seller: e.Auction.Seller, Time: int64(e.Auction.DateTime)})
		}
		return nil
	}).Named("q3-select")
	bySeller := operators.KeyBy(rows, func(r q3Row) int64 {
		if r.Person {
			return r.ID
		}
		return r.Seller
	}, operators.KeyByName("q3-by-seller"), operators.KeyByCodecs(int64Codec, codec.JSON[q3Row]()))
	joined := operators.Process(bySeller, "q3-join", &q3Join{})
	connectors.KafkaSink(joined, out, codec.JSON[Q3Result]())
}

// q3Join joins a seller's person row with their auction rows.
type q3Join struct {
	person  *state.Value[q3Row]
	waiting *state.List[q3Waiting] // auctions that came before the person
}

func (j *q3Join) Open(r *state.Registry) error {
	j.person = state.NewValue(r, "person", codec.JSON[q3Row]())
	j.waiting = state.NewList(r, "waiting", codec.Codec[q3Waiting](q3WaitingCodec{}))
	return nil
}

func (j *q3Join) Process(c operators.Context[int64], row q3Row, out operators.Collector[Q3Result]) error {
	if row.Person {
		if err := j.person.Set(c, row); err != nil {
			return err
		}
		auctions, err := j.waiting.Get(c)
		if err != nil || len(auctions) == 0 {
			return err
		}
		for _, a := range auctions {
			r := Q3Result{Name: row.Name, City: row.City, State: row.State, ID: a.ID}
			if err := operators.CollectAt(out, r, time.UnixMilli(max(row.Time, a.Time))); err != nil {
				return err
			}
		}
		return j.waiting.Clear(c)
	}
	p, ok, err := j.person.Get(c)
	if err != nil {
		return err
	}
	if !ok {
		return j.waiting.Add(c, q3Waiting{ID: row.ID, Time: row.Time})
	}
	r := Q3Result{Name: p.Name, City: p.City, State: p.State, ID: row.ID}
	return operators.CollectAt(out, r, time.UnixMilli(max(row.Time, p.Time)))
}

func (j *q3Join) OnTimer(operators.Context[int64], time.Time, engine.TimeDomain, operators.Collector[Q3Result]) error {
	return nil
}
