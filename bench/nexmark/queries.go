package nexmark

import (
	"fmt"
	"slices"
	"time"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/windowing"
)

// Every query is an ordinary Weir job built on the topic's events: it
// decodes each record once (EventCodec), with its dateTime as event time,
// keeps the kinds of event it reads, and writes its results as JSON
// objects with the columns of nexmark-flink's sink table for the query, so
// the outputs of Weir and Flink compare as multisets.

// WatermarkDelay is how far the watermark trails the latest event time, as
// nexmark-flink's tables declare it: WATERMARK FOR dateTime AS dateTime -
// INTERVAL '4' SECOND. The generator's events are in order, so no event is
// late whatever the delay; it only holds windows open longer.
const WatermarkDelay = 4 * time.Second

// Query is a Nexmark query as a Weir job.
type Query struct {
	// Name is "q0", "q1", ...
	Name string
	// Build adds the query to job, reading the topic in and writing its
	// results to out.
	Build func(job *engine.Job, in, out string)
	// Windowed: its results wait for a window to close, a window's length
	// (and the watermark's delay, in event time) after their events.
	Windowed bool
	// ProcessingTime: its results depend on when records arrive, so they
	// differ from run to run and cannot be compared between engines.
	ProcessingTime bool
}

// Queries are the queries implemented, in order.
var Queries = []Query{
	{Name: "q0", Build: BuildQ0}, {Name: "q1", Build: BuildQ1}, {Name: "q2", Build: BuildQ2}, {Name: "q3", Build: BuildQ3},
	{Name: "q5", Build: BuildQ5, Windowed: true}, {Name: "q7", Build: BuildQ7, Windowed: true},
	{Name: "q8", Build: BuildQ8, Windowed: true}, {Name: "q11", Build: BuildQ11, Windowed: true},
	{Name: "q12", Build: BuildQ12, Windowed: true, ProcessingTime: true},
}

// QueryByName returns the query called name.
func QueryByName(name string) (Query, error) {
	i := slices.IndexFunc(Queries, func(q Query) bool { return q.Name == name })
	if i < 0 {
		names := make([]string, len(Queries))
		for i, q := range Queries {
			names[i] = q.Name
		}
		return Query{}, fmt.Errorf("nexmark: no query %q (have %v)", name, names)
	}
	return Queries[i], nil
}

// sourceCodec is what Source reads the topic with: the hand-written
// EventCodec, unless a benchmark measures codec.JSON[Event], what a user's
// own job would read it with (BenchmarkQueriesUserCodec).
var sourceCodec = EventCodec()

// Source reads the Nexmark topic in, each event with its dateTime as event
// time and a watermark WatermarkDelay behind the latest.
func Source(job *engine.Job, in string) engine.Stream[Event] {
	wm := windowing.BoundedOutOfOrderness(WatermarkDelay, Event.Time)
	return connectors.KafkaSource(job, in, sourceCodec, connectors.WithWatermarks(wm))
}

// Bids keeps the bids of events.
func Bids(events engine.Stream[Event]) engine.Stream[Bid] {
	return operators.FlatMap(events, func(e Event, out operators.Collector[Bid]) error {
		if e.Bid == nil {
			return nil
		}
		return out.Collect(*e.Bid)
	}).Named("bids")
}

// Persons keeps the persons of events.
func Persons(events engine.Stream[Event]) engine.Stream[Person] {
	return operators.FlatMap(events, func(e Event, out operators.Collector[Person]) error {
		if e.Person == nil {
			return nil
		}
		return out.Collect(*e.Person)
	}).Named("persons")
}

// Auctions keeps the auctions of events.
func Auctions(events engine.Stream[Event]) engine.Stream[Auction] {
	return operators.FlatMap(events, func(e Event, out operators.Collector[Auction]) error {
		if e.Auction == nil {
			return nil
		}
		return out.Collect(*e.Auction)
	}).Named("auctions")
}

// windowStart is the start of the tumbling window of size that ts is in,
// windows aligned to the epoch as Weir's and Flink's are.
func windowStart(ts time.Time, size time.Duration) int64 {
	ms, n := ts.UnixMilli(), size.Milliseconds()
	return ms - ((ms%n)+n)%n
}

// int64Codec is an int64 in 8 big-endian bytes: for keys and small values
// that travel through repartition topics and state.
var int64Codec = codec.Key[int64]()
