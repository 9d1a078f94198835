package operators_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/internal/kafkatest"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/state"
	"github.com/weirstream/weir/weirtest"
	"github.com/weirstream/weir/windowing"
)

// sum adds the records' lengths, with an exact Merge it does not say it
// has: its sliding windows are sliced only with SliceWindows.
type sum struct{}

func (sum) Zero() int64                   { return 0 }
func (sum) Add(acc int64, v string) int64 { return acc + int64(len(v)) }
func (sum) Merge(a, b int64) int64        { return a + b }
func (sum) Result(acc int64) int64        { return acc }

// Sliced sliding windows (SliceWindows, and Count's by default) give the
// results of windows kept one by one, and leave no state behind once the
// watermark has passed every window: a slice goes with the last window
// that holds it.
func TestSlicedWindowsLeaveNoState(t *testing.T) {
	for _, c := range []struct {
		name string
		fn   state.AggregateFunction[string, int64, int64]
		opts []operators.WindowOpt
		per  int64 // what a record adds: 1 counted, 2 its length summed
	}{
		{"count", operators.Count[string]{}, nil, 1},
		{"sum-sliced", sum{}, []operators.WindowOpt{operators.SliceWindows()}, 2},
		{"sum", sum{}, nil, 2},
		{"count-lateness", operators.Count[string]{}, []operators.WindowOpt{operators.AllowedLateness(3 * time.Second)}, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			job := engine.NewJob("sliced")
			src := connectors.KafkaSource(job, "in", codec.String(), connectors.WithWatermarks(windowing.RecordTimestamps[string](time.Second)))
			out := operators.WindowAggregate(operators.KeyByRecordKey(src, codec.String()), "agg",
				windowing.Sliding(5*time.Second, 2*time.Second), c.fn, codec.JSON[int64](), c.opts...)
			connectors.KafkaSink(out, "out", codec.JSON[operators.Windowed[string, int64]]())
			h := weirtest.New(t, job)
			noon := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
			for i, at := range []time.Duration{0, 300 * time.Millisecond, 1500 * time.Millisecond, 2 * time.Second, 4500 * time.Millisecond, 3 * time.Second, 7 * time.Second, 6 * time.Second} {
				key := []string{"a", "b"}[i%2]
				if err := weirtest.SendValue(h, "in", codec.String(), key, "xy", noon.Add(at)); err != nil {
					t.Fatal(err)
				}
			}
			if err := h.AdvanceWatermark(noon.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
			got := map[string]int64{}
			for _, r := range weirtest.ReadOutputs(h, "out", codec.JSON[operators.Windowed[string, int64]]()) {
				got[fmt.Sprintf("%s %s-%s", r.Value.Key, r.Value.Start.Format("05"), r.Value.End.Format("05"))] = r.Value.Value
			}
			// a: 0, 1.5, 4.5, 7; b: 0.3, 2, 3, 6 (seconds past noon).
			want := map[string]int64{
				"a 56-01": 1, "a 58-03": 2, "a 00-05": 3, "a 02-07": 1, "a 04-09": 2, "a 06-11": 1,
				"b 56-01": 1, "b 58-03": 2, "b 00-05": 3, "b 02-07": 3, "b 04-09": 1, "b 06-11": 1,
			}
			for k, n := range want {
				if got[k] != n*c.per {
					t.Errorf("window %s: %d, want %d (all: %v)", k, got[k], n*c.per, got)
				}
			}
			if len(got) != len(want) {
				t.Errorf("%d windows fired, want %d: %v", len(got), len(want), got)
			}
			var left []string
			for _, key := range []string{"a", "b"} {
				ts := h.Scope(0, []byte(key)).(interface{ TaskStore() *state.TaskStore }).TaskStore()
				if err := ts.Scan(nil, nil, func(k, _ []byte) bool { left = append(left, fmt.Sprintf("%q", k)); return true }); err != nil {
					t.Fatal(err)
				}
			}
			if len(left) > 0 {
				t.Errorf("state left after every window fired: %v", left)
			}
		})
	}
}

// The tasks of a sliced window operator run at once, one per partition:
// each counts its own keys' windows (with the race detector, a buffer the
// tasks shared failed this, and counted some keys' slices into others').
func TestSlicedWindowsOnTasksAtOnce(t *testing.T) {
	brokers := kafkatest.Fake(t, 2, "clicks", "counts")
	noon := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	want := map[string]int64{}
	var recs []*kgo.Record
	const keys, seconds = 40, 30
	for ms := 0; ms < seconds*1000; ms += 25 {
		key := fmt.Sprintf("k%d", (ms/25)%keys)
		ts := noon.Add(time.Duration(ms) * time.Millisecond)
		recs = append(recs, &kgo.Record{Topic: "clicks", Key: []byte(key), Value: []byte("x"), Timestamp: ts})
		for _, w := range windowing.Sliding(5*time.Second, 2*time.Second).Assign(nil, windowing.MillisOf(ts)) {
			want[fmt.Sprintf("%s %d", key, w.End)]++
		}
	}
	// A record of every key an hour on closes every window before it, so
	// the windows above are all the output.
	for k := range keys {
		recs = append(recs, &kgo.Record{Topic: "clicks", Key: []byte(fmt.Sprintf("k%d", k)), Value: []byte("x"), Timestamp: noon.Add(time.Hour)})
	}
	kafkatest.ProduceSync(t, kafkatest.Client(t, brokers), recs...)
	job := engine.NewJob("sliced", engine.WithBrokers(brokers...), engine.WithStateDir(t.TempDir()), engine.WithMetricsAddr(""),
		engine.WithCheckpointInterval(20*time.Millisecond), engine.WithLogLevel("error"))
	src := connectors.KafkaSource(job, "clicks", codec.String(), connectors.WithWatermarks(windowing.RecordTimestamps[string](0)))
	counts := operators.WindowAggregate(operators.KeyByRecordKey(src, codec.String()), "counts",
		windowing.Sliding(5*time.Second, 2*time.Second), operators.Count[string]{}, codec.JSON[int64]())
	connectors.KafkaSink(counts, "counts", codec.JSON[operators.Windowed[string, int64]]())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- job.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("job: %v", err)
		}
	}()
	out := kafkatest.ReadAll(t, brokers, "counts", len(want), 30*time.Second)
	got := map[string]int64{}
	for _, r := range out {
		w, err := codec.JSON[operators.Windowed[string, int64]]().Decode(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		got[fmt.Sprintf("%s %d", w.Key, windowing.MillisOf(w.End))] += w.Value
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("window %s: counted %d, want %d", k, got[k], n)
		}
	}
}
