package nexmark

import (
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
}

// BuildQ3 is query 3, local item suggestion: the auctions of category
// Q3Category whose seller lives in OR, ID or CA, with the seller's name,
// city and state. It is a regular (unwindowed) inner join of persons and
// auctions on person id = seller, in event order: persons and auctions are
// keyed by the person id into one stage, where the person's task keeps the
// person and, until the person comes, their auctions, in keyed state.
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
			return out.Collect(q3Row{Person: true, ID: p.ID, Name: p.Name, City: p.City, State: p.State})
		case e.Auction != nil && e.Auction.Category == Q3Category:
			return out.Collect(q3Row{ID: e.Auction.ID, Seller: e.Auction.Seller})
		}
		return nil
	}).Named("q3-select")
	bySeller := operators.KeyBy(rows, func(r q3Row) int64 {
		if r.Person {
			return r.ID
		}
		return r.Seller
	}, operators.KeyByName[int64, q3Row]("q3-by-seller"), operators.KeyByCodecs(int64Codec, codec.JSON[q3Row]()))
	joined := operators.Process(bySeller, "q3-join", operators.KeyedProcessFunction[int64, q3Row, Q3Result](&q3Join{}))
	connectors.KafkaSink(joined, out, codec.JSON[Q3Result]())
}

// q3Join joins a seller's person row with their auction rows.
type q3Join struct {
	person  *state.Value[q3Row]
	waiting *state.List[int64] // auction ids that came before the person
}

func (j *q3Join) Open(r *state.Registry) error {
	j.person = state.NewValue(r, "person", codec.JSON[q3Row]())
	j.waiting = state.NewList(r, "waiting", int64Codec)
	return nil
}

func (j *q3Join) Process(c engine.Context[int64], row q3Row, out engine.Collector[Q3Result]) error {
	if row.Person {
		if err := j.person.Set(c, row); err != nil {
			return err
		}
		ids, err := j.waiting.Get(c)
		if err != nil || len(ids) == 0 {
			return err
		}
		for _, id := range ids {
			if err := out.Collect(Q3Result{Name: row.Name, City: row.City, State: row.State, ID: id}); err != nil {
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
		return j.waiting.Add(c, row.ID)
	}
	return out.Collect(Q3Result{Name: p.Name, City: p.City, State: p.State, ID: row.ID})
}

func (j *q3Join) OnTimer(engine.Context[int64], time.Time, engine.TimeDomain, engine.Collector[Q3Result]) error {
	return nil
}
