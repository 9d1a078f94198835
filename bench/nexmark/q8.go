package nexmark

import (
	"time"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/state"
	"github.com/weirstream/weir/windowing"
)

// Q8Window is query 8's tumbling window, as nexmark-flink's.
const Q8Window = 10 * time.Second

// Q8Result is query 8's output row: a person who created auctions in the
// window they joined in, and the window's start.
type Q8Result struct {
	ID    int64    `json:"id"`
	Name  string   `json:"name"`
	Stime DateTime `json:"stime"`
}

// q8Person is the person columns query 8 moves.
type q8Person struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

// BuildQ8 is query 8, monitor new users: the persons who created an
// auction in the same tumbling window of Q8Window as they joined, once per
// person and window. Persons keyed by id and auctions keyed by seller go
// to one stage (KeyByBoth); there the auctions are reduced to distinct
// sellers per window, as nexmark-flink's subquery groups them (a keyed
// process function remembering the last window each seller was seen in),
// and a WindowJoin pairs each person with their seller entry of the
// window. Person ids are unique, so the person side needs no such
// reduction.
func BuildQ8(job *engine.Job, in, out string) {
	events := Source(job, in)
	persons := operators.Map(Persons(events), func(p Person) (q8Person, error) {
		return q8Person{ID: p.ID, Name: p.Name}, nil
	}).Named("q8-person")
	sellers := operators.Map(Auctions(events), func(a Auction) (int64, error) { return a.Seller, nil }).Named("q8-seller")
	byID, bySeller := operators.KeyByBoth(persons, func(p q8Person) int64 { return p.ID },
		sellers, func(s int64) int64 { return s }, "q8-by-person")
	distinct := operators.Process(bySeller, "q8-distinct-sellers", &q8Distinct{})
	// Process keeps each record's key: the seller's, as bySeller has it.
	distinctBySeller := engine.AsKeyed(distinct, bySeller.Key)
	joined := operators.WindowJoin(byID, distinctBySeller, "q8-join", windowing.Tumbling(Q8Window),
		func(_ int64, w windowing.Window, p q8Person, _ int64) (Q8Result, error) {
			return Q8Result{ID: p.ID, Name: p.Name, Stime: DateTime(w.Start)}, nil
		})
	connectors.KafkaSink(joined, out, codec.JSON[Q8Result]())
}

// q8Distinct passes a seller on once per window: the first of their
// auctions in it. It remembers every window a seller was passed on in,
// not only the last: auctions from different input partitions meet here
// out of time order, so a seller's auction of a window can come after
// one of the next. A timer at a window's end forgets it.
type q8Distinct struct {
	seen *state.Map[int64, int64] // window starts passed on (values unused)
}

func (q *q8Distinct) Open(r *state.Registry) error {
	q.seen = state.NewMap(r, "seen", int64Codec, int64Codec)
	return nil
}

func (q *q8Distinct) Process(c operators.Context[int64], seller int64, out operators.Collector[int64]) error {
	start := windowStart(c.Timestamp(), Q8Window)
	_, ok, err := q.seen.Get(c, start)
	if err != nil || ok {
		return err
	}
	if err := q.seen.Put(c, start, 1); err != nil {
		return err
	}
	c.Timers().RegisterEventTimeTimer(time.UnixMilli(start + Q8Window.Milliseconds() - 1))
	return out.Collect(seller)
}

func (q *q8Distinct) OnTimer(c operators.Context[int64], at time.Time, _ engine.TimeDomain, _ operators.Collector[int64]) error {
	return q.seen.Delete(c, at.UnixMilli()+1-Q8Window.Milliseconds())
}
