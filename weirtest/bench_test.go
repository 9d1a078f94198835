package weirtest_test

import (
	"context"
	"encoding/binary"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/internal/local"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/state"
	"github.com/weirstream/weir/weirtest"
	"github.com/weirstream/weir/windowing"
)

// counter keeps a running count per key in value state and, when timers
// is set, registers an event-time timer a second ahead of each record.
type counter struct {
	n      *state.Value[int64]
	timers bool
	fired  *int
}

func (c *counter) Open(r *state.Registry) error {
	c.n = state.NewValue(r, "n", int64Codec{})
	return nil
}

func (c *counter) Process(ctx operators.Context[string], _ []byte, _ operators.Collector[int64]) error {
	v, _, err := c.n.Get(ctx)
	if err != nil {
		return err
	}
	if c.timers {
		ctx.Timers().RegisterEventTimeTimer(ctx.Timestamp().Add(time.Second))
	}
	return c.n.Set(ctx, v+1)
}

func (c *counter) OnTimer(operators.Context[string], time.Time, engine.TimeDomain, operators.Collector[int64]) error {
	*c.fired++
	return nil
}

// int64Codec is a fixed-width codec: the benchmark measures the store,
// not encoding/json.
type int64Codec struct{}

func (int64Codec) Encode(v int64) ([]byte, error) {
	return binary.BigEndian.AppendUint64(nil, uint64(v)), nil
}
func (int64Codec) Decode(b []byte) (int64, error) { return int64(binary.BigEndian.Uint64(b)), nil }

type discard struct{}

func (discard) Produce(_ context.Context, r *kgo.Record, p func(*kgo.Record, error)) { p(r, nil) }

// keys returns n distinct keys.
func keys(n int) [][]byte {
	ks := make([][]byte, n)
	for i := range ks {
		ks[i] = []byte("key-" + strconv.Itoa(i))
	}
	return ks
}

// checkpointEvery is how many records pass between two checkpoints in the
// benchmarks, as a 500ms interval would at ~20k records/s per task.
const checkpointEvery = 10000

// BenchmarkKeyedState is value state get+update per event through a keyed
// process function in one task (the record path, the write-back cache, and
// a checkpoint committing to Pebble every 10k records), beside the same
// count kept in a plain Go map: the ceiling.
func BenchmarkKeyedState(b *testing.B) {
	for _, tc := range []struct {
		name string
		keys int
	}{{"hot-100-keys", 100}, {"distinct-1M-keys", 1_000_000}} {
		ks := keys(tc.keys)
		b.Run(tc.name+"/map", func(b *testing.B) {
			m := make(map[string]int64)
			for i := 0; b.Loop(); i++ {
				k := ks[i%len(ks)]
				m[string(k)]++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
		b.Run(tc.name+"/weir", func(b *testing.B) {
			job := engine.NewJob("bench")
			src := connectors.KafkaSource(job, "in", codec.Bytes())
			fired := 0
			operators.Process(operators.KeyByRecordKey(src, codec.String()), "count",
				operators.KeyedProcessFunction[string, []byte, int64](&counter{fired: &fired}))
			lt, err := local.NewTask(context.Background(), job, 0, 0, local.Env{Producer: discard{}})
			if err != nil {
				b.Fatal(err)
			}
			recs := make([]*kgo.Record, 1)
			for i := 0; b.Loop(); i++ {
				recs[0] = &kgo.Record{Topic: "in", Key: ks[i%len(ks)], Offset: int64(i)}
				if err := lt.Process("in", recs); err != nil {
					b.Fatal(err)
				}
				if i%checkpointEvery == checkpointEvery-1 {
					if err := lt.Checkpoint(int64(i)); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkTimers registers one event-time timer per record, a second
// ahead, with event time advancing 1ms per record and the watermark
// following it, so every timer registered also fires: timers registered
// and fired per second.
func BenchmarkTimers(b *testing.B) {
	ks := keys(1000)
	job := engine.NewJob("bench")
	src := connectors.KafkaSource(job, "in", codec.Bytes(), connectors.WithWatermarks(recordTime()))
	fired := 0
	operators.Process(operators.KeyByRecordKey(src, codec.String()), "count",
		operators.KeyedProcessFunction[string, []byte, int64](&counter{timers: true, fired: &fired}))
	lt, err := local.NewTask(context.Background(), job, 0, 0, local.Env{Producer: discard{}})
	if err != nil {
		b.Fatal(err)
	}
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	recs := make([]*kgo.Record, 1)
	for i := 0; b.Loop(); i++ {
		recs[0] = &kgo.Record{Topic: "in", Key: ks[i%len(ks)], Offset: int64(i), Timestamp: base.Add(time.Duration(i) * time.Millisecond)}
		if err := lt.Process("in", recs); err != nil {
			b.Fatal(err)
		}
		if i%checkpointEvery == checkpointEvery-1 {
			if err := lt.Checkpoint(int64(i)); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "timers-registered/s")
	b.ReportMetric(float64(fired)/b.Elapsed().Seconds(), "timers-fired/s")
}

// BenchmarkHarness is records/s through the test harness running a job
// with a repartition, keyed map state and event-time timers (the activity
// job of the scripts) over two partitions.
func BenchmarkHarness(b *testing.B) {
	job, _ := buildActivity(0)
	h := weirtest.New(b, job, weirtest.Partitions(2))
	c := codec.JSON[click]()
	base := time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC)
	for i := 0; b.Loop(); i++ {
		at := base.Add(time.Duration(i) * time.Millisecond)
		if err := weirtest.SendValue(h, "clicks", c, "/p"+strconv.Itoa(i%20), click{User: "u" + strconv.Itoa(i%100), Page: "/p", At: at}, at); err != nil {
			b.Fatal(err)
		}
		h.ReadOutput("activity")
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

func recordTime() windowing.WatermarkStrategy[[]byte] { return windowing.RecordTimestamps[[]byte](0) }
