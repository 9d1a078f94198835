package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/internal/local"
	"github.com/weirstream/weir/operators"
)

// The engine benchmarks run the stateless job (source -> filter -> map ->
// sink) through a local task (internal/local) fed from memory: no broker, no consumer group,
// no network. They measure what the engine itself costs per record, next
// to a plain Go loop doing the same work with no engine.
//
// One benchmark op is one input record, so ns/op, B/op and allocs/op read
// per record; records are fed in batches of benchBatch, as a fetch would
// deliver them. Run with:
//
//	go test -run '^$' -bench BenchmarkStateless -benchmem ./engine/

const (
	benchBatch   = 500 // records per local Task.Process call
	benchBatches = 64  // distinct pre-built batches, cycled
	benchBotMod  = 10  // every 10th user is a bot: the filter drops 10%
	benchTopicIn = "bench-in"
	benchTopicO  = "bench-out"
)

type benchEvent struct {
	User string `json:"user"`
	Seq  int    `json:"seq"`
	Bot  bool   `json:"bot,omitempty"`
}

type benchTagged struct {
	User string `json:"user"`
	Seq  int    `json:"seq"`
	Tag  string `json:"tag"`
}

func benchTag(e benchEvent) (benchTagged, error) {
	return benchTagged{User: e.User, Seq: e.Seq, Tag: "human"}, nil
}

func benchHuman(e benchEvent) bool { return !e.Bot }

// benchInput returns benchBatches batches of benchBatch keyed JSON events
// of partition 0, with consecutive offsets, and how many of them are humans
// (survive the filter).
func benchInput() (batches [][]*kgo.Record, humans int) {
	ts := time.Unix(1_700_000_000, 0)
	const users = 1000
	off := int64(0)
	for range benchBatches {
		batch := make([]*kgo.Record, 0, benchBatch)
		for range benchBatch {
			u := int(off % users)
			e := benchEvent{User: "user-" + strconv.Itoa(u), Seq: int(off / users), Bot: u%benchBotMod == 0}
			v, err := json.Marshal(e)
			if err != nil {
				panic(err)
			}
			if !e.Bot {
				humans++
			}
			batch = append(batch, &kgo.Record{
				Topic: benchTopicIn, Partition: 0, Offset: off, LeaderEpoch: 0,
				Key: []byte(e.User), Value: v, Timestamp: ts.Add(time.Duration(off) * time.Millisecond),
			})
			off++
		}
		batches = append(batches, batch)
	}
	return batches, humans
}

// ackProducer acknowledges every record at once, as if Kafka answered in
// zero time: the full engine path, including the checkpoint epoch's Ack.
type ackProducer struct{ n, bytes int64 }

func (p *ackProducer) Produce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	p.n++
	p.bytes += int64(len(r.Value))
	promise(r, nil)
}

// discardProducer drops records without calling the promise. That breaks
// the Producer contract on purpose: a local task never takes a barrier, so
// nothing waits for its epoch, and the difference from ackProducer is what
// the acknowledgement path (promise call, epoch Ack) costs.
type discardProducer struct{ n, bytes int64 }

func (p *discardProducer) Produce(_ context.Context, r *kgo.Record, _ func(*kgo.Record, error)) {
	p.n++
	p.bytes += int64(len(r.Value))
}

type countingProducer interface {
	local.Producer
	count() int64
}

func (p *ackProducer) count() int64     { return p.n }
func (p *discardProducer) count() int64 { return p.n }

// benchCase is one variant of the job: the engine topology and the plain
// loop doing the same work.
type benchCase struct {
	name  string
	build func() *engine.Job
	// plain processes one batch without the engine, handing each output to
	// p with one shared promise, as a hand-written franz-go loop would.
	plain func(ctx context.Context, p local.Producer, recs []*kgo.Record) error
	// want is how many outputs the given number of input batches yields.
	want func(batches, humansPerCycle int) int64
}

var benchPromise = func(*kgo.Record, error) {}

func jsonCase() benchCase {
	in, out := codec.JSON[benchEvent](), codec.JSON[benchTagged]()
	return benchCase{
		name: "json",
		build: func() *engine.Job {
			job := engine.NewJob("bench-json", engine.WithMetricsAddr(""))
			evs := connectors.KafkaSource(job, benchTopicIn, in)
			humans := operators.Filter(evs, benchHuman)
			connectors.KafkaSink(operators.Map(humans, benchTag), benchTopicO, out)
			return job
		},
		plain: func(ctx context.Context, p local.Producer, recs []*kgo.Record) error {
			for _, r := range recs {
				e, err := in.Decode(r.Value)
				if err != nil {
					return fmt.Errorf("offset %d: %w", r.Offset, err)
				}
				if !benchHuman(e) {
					continue
				}
				t, err := benchTag(e)
				if err != nil {
					return err
				}
				v, err := out.Encode(t)
				if err != nil {
					return err
				}
				p.Produce(ctx, &kgo.Record{Topic: benchTopicO, Key: r.Key, Value: v, Timestamp: r.Timestamp}, benchPromise)
			}
			return nil
		},
		want: func(batches, humansPerCycle int) int64 {
			full, rest := batches/benchBatches, batches%benchBatches
			return int64(full*humansPerCycle + rest*benchBatch*(benchBotMod-1)/benchBotMod)
		},
	}
}

// bytesCase is the engine's overhead ceiling: the same topology shape with
// the Bytes codec, a trivial filter and an identity map, so almost all the
// time left is the engine's own.
func bytesCase() benchCase {
	c := codec.Bytes()
	keep := func(v []byte) bool { return len(v) > 0 }
	ident := func(v []byte) ([]byte, error) { return v, nil }
	return benchCase{
		name: "bytes",
		build: func() *engine.Job {
			job := engine.NewJob("bench-bytes", engine.WithMetricsAddr(""))
			src := connectors.KafkaSource(job, benchTopicIn, c)
			connectors.KafkaSink(operators.Map(operators.Filter(src, keep), ident), benchTopicO, c)
			return job
		},
		plain: func(ctx context.Context, p local.Producer, recs []*kgo.Record) error {
			for _, r := range recs {
				v, err := c.Decode(r.Value) // copies, as the engine's source does
				if err != nil {
					return err
				}
				if !keep(v) {
					continue
				}
				if v, err = ident(v); err != nil {
					return err
				}
				if v, err = c.Encode(v); err != nil {
					return err
				}
				p.Produce(ctx, &kgo.Record{Topic: benchTopicO, Key: r.Key, Value: v, Timestamp: r.Timestamp}, benchPromise)
			}
			return nil
		},
		want: func(batches, _ int) int64 { return int64(batches * benchBatch) },
	}
}

// runRecords feeds b.N records, batch by batch, to process and reports
// records/s. The last batch is cut short so exactly b.N records go in.
func runRecords(b *testing.B, batches [][]*kgo.Record, process func([]*kgo.Record) error) (fullBatches int) {
	b.Helper()
	b.ReportAllocs()
	b.ResetTimer()
	done := 0
	for i := 0; done < b.N; i++ {
		recs := batches[i%len(batches)]
		if n := b.N - done; n < len(recs) {
			recs = recs[:n]
		} else {
			fullBatches++
		}
		if err := process(recs); err != nil {
			b.Fatal(err)
		}
		done += len(recs)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	return fullBatches
}

// BenchmarkStateless measures the stateless job through the engine
// (local Task.Process) against a plain loop doing the same decode, filter,
// map, encode and produce. Sub-benchmarks, per codec:
//
//	plain           no engine: the floor
//	engine/ack      local task with a producer that acknowledges at once
//	engine/discard  local task with a producer that never acknowledges
//	interleaved     plain and engine/ack alternating batch by batch in one
//	                loop, so load drift hits both alike; reports engine/plain
//
// engine/ack also reports engine/plain against the plain sub-benchmark run
// just before it.
func BenchmarkStateless(b *testing.B) {
	batches, humans := benchInput()
	for _, bc := range []benchCase{jsonCase(), bytesCase()} {
		b.Run(bc.name, func(b *testing.B) {
			var plainNs float64 // ns/record of the last plain run
			b.Run("plain", func(b *testing.B) {
				ctx := context.Background()
				p := &ackProducer{}
				full := runRecords(b, batches, func(recs []*kgo.Record) error { return bc.plain(ctx, p, recs) })
				benchCheckOutputs(b, bc, p, full, humans)
				plainNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			})
			for _, sink := range []string{"ack", "discard"} {
				b.Run("engine/"+sink, func(b *testing.B) {
					var p countingProducer = &ackProducer{}
					if sink == "discard" {
						p = &discardProducer{}
					}
					lt, err := local.NewTask(context.Background(), bc.build(), 0, 0, local.Env{Producer: p})
					if err != nil {
						b.Fatal(err)
					}
					full := runRecords(b, batches, func(recs []*kgo.Record) error { return lt.Process(benchTopicIn, recs) })
					benchCheckOutputs(b, bc, p, full, humans)
					ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
					if sink == "ack" && plainNs > 0 {
						b.ReportMetric(ns/plainNs, "engine/plain")
					}
				})
			}
			b.Run("interleaved", func(b *testing.B) {
				ctx := context.Background()
				pp, ep := &ackProducer{}, &ackProducer{}
				lt, err := local.NewTask(ctx, bc.build(), 0, 0, local.Env{Producer: ep})
				if err != nil {
					b.Fatal(err)
				}
				// Warm both paths so neither pays first-touch costs in the timing.
				for _, recs := range batches {
					if err := bc.plain(ctx, pp, recs); err != nil {
						b.Fatal(err)
					}
					if err := lt.Process(benchTopicIn, recs); err != nil {
						b.Fatal(err)
					}
				}
				var plainT, engineT time.Duration
				b.ResetTimer()
				// One op is one record through each path; b.N is rounded
				// up to whole batches here.
				for i, done := 0, 0; done < b.N; i++ {
					recs := batches[i%len(batches)]
					t0 := time.Now()
					if err := bc.plain(ctx, pp, recs); err != nil {
						b.Fatal(err)
					}
					t1 := time.Now()
					if err := lt.Process(benchTopicIn, recs); err != nil {
						b.Fatal(err)
					}
					t2 := time.Now()
					plainT += t1.Sub(t0)
					engineT += t2.Sub(t1)
					done += len(recs)
				}
				b.StopTimer()
				if pp.n != ep.n {
					b.Fatalf("plain produced %d records, engine %d", pp.n, ep.n)
				}
				n := float64(((b.N + benchBatch - 1) / benchBatch) * benchBatch)
				b.ReportMetric(n/plainT.Seconds(), "plain-records/s")
				b.ReportMetric(n/engineT.Seconds(), "engine-records/s")
				b.ReportMetric(engineT.Seconds()/plainT.Seconds(), "engine/plain")
			})
		})
	}
}

// benchCheckOutputs makes sure the benchmark measured real work: as many outputs
// as the filter lets through.
func benchCheckOutputs(b *testing.B, bc benchCase, p countingProducer, fullBatches, humansPerCycle int) {
	b.Helper()
	got := p.count()
	want := bc.want(fullBatches, humansPerCycle)
	// The cut-short last batch adds at most benchBatch outputs.
	if got < want || got > want+benchBatch {
		b.Fatalf("%d outputs for %d full batches, want %d (+ at most %d)", got, fullBatches, want, benchBatch)
	}
}
