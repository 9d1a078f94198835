package nexmark

import (
	"flag"
	"testing"
	"time"

	"github.com/weirstream/weir/codec"
)

// BenchmarkQueries runs each query's job through the engine alone: no
// broker, no network, one task per stage (pipeline). Events are generated
// and encoded beforehand; one op is one input event (of all kinds, 92%
// bids), so ns/op, B/op and allocs/op read per event and events/s is the
// engine's throughput on one core. Decoding the topic's JSON is part of
// every query's cost, as it is of a running job's.
//
// Each sub-benchmark first runs -nexmark.warmup of event time untimed, so
// that windows fire and state is at its steady size, then times b.N more
// events. At the default 10,000 events a second, the 10-second windows of
// q5, q7 and q8 fire every 20,000 to 100,000 events: time at least that
// many for a number that includes their firing.
//
//	go test -run '^$' -bench BenchmarkQueries -benchtime=200000x -benchmem ./bench/nexmark/
//	go test -run '^$' -bench 'BenchmarkQueries/q5$' -benchtime=200000x -cpuprofile cpu.out ./bench/nexmark/
var warmup = flag.Duration("nexmark.warmup", 15*time.Second, "event time run untimed before each query benchmark is timed")

func BenchmarkQueries(b *testing.B) { benchQueries(b) }

// BenchmarkQueriesUserCodec runs the same with the topic read through
// codec.JSON[Event] instead of the hand-written codec: what a user's own
// job on the same types gets. Run both in one go to compare:
//
//	go test -run '^$' -bench 'BenchmarkQueries(UserCodec)?/q[0-9]+$' -benchtime=200000x -benchmem ./bench/nexmark/
func BenchmarkQueriesUserCodec(b *testing.B) {
	defer func(c codec.Codec[Event]) { sourceCodec = c }(sourceCodec)
	sourceCodec = codec.JSON[Event]()
	benchQueries(b)
}

func benchQueries(b *testing.B) {
	cfg := Config{Seed: 1}
	for _, q := range Queries {
		b.Run(q.Name, func(b *testing.B) {
			p, err := newPipeline(q)
			if err != nil {
				b.Fatal(err)
			}
			g := NewGenerator(cfg)
			rate := g.Config().EventsPerSecond
			next := func(n int) []Event {
				evs := make([]Event, n)
				for i := range evs {
					evs[i] = g.Next()
				}
				return evs
			}
			// Warm up in slices, so the warm-up's events need not all be
			// in memory at once.
			for left := int(warmup.Seconds() * float64(rate)); left > 0; left -= checkpointEvery {
				if _, err := p.run(records(next(min(left, checkpointEvery)), batchSize)); err != nil {
					b.Fatal(err)
				}
			}
			batches := records(next(b.N), batchSize)
			before := p.outputs
			b.ResetTimer()
			if _, err := p.run(batches); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(p.outputs-before)/float64(b.N), "outputs/event")
		})
	}
}
