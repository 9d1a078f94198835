package operators_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/state"
	"github.com/weirstream/weir/weirtest"
	"github.com/weirstream/weir/windowing"
)

// Window accumulators kept in memory (engine.Task.StateMemory) give what
// accumulators kept in the store give, record for record: with room for
// all of them, and with room for a few, spilling to the store and reading
// back again and again; across checkpoints, out-of-order and late
// records, merging sessions and sliced and whole sliding windows.
func TestWindowAccumulatorsInMemoryEmitWhatTheStoreDoes(t *testing.T) {
	for _, c := range []struct {
		name     string
		assigner windowing.Assigner
		fn       state.AggregateFunction[string, int64, int64]
		opts     []operators.WindowOpt
	}{
		{"tumbling", windowing.Tumbling(2 * time.Second), sum{}, []operators.WindowOpt{operators.AllowedLateness(time.Second)}},
		{"sliding-sliced", windowing.Sliding(3*time.Second, time.Second), operators.Count[string]{}, nil},
		{"sliding", windowing.Sliding(3*time.Second, time.Second), sum{}, nil},
		{"sessions", windowing.Sessions(1500 * time.Millisecond), sum{}, []operators.WindowOpt{operators.AllowedLateness(time.Second)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			build := func() *engine.Job {
				job := engine.NewJob("accs")
				src := connectors.KafkaSource(job, "in", codec.String(), connectors.WithWatermarks(windowing.RecordTimestamps[string](500*time.Millisecond)))
				out := operators.WindowAggregate(operators.KeyByRecordKey(src, codec.String()), "agg", c.assigner, c.fn, codec.JSON[int64](),
					append([]operators.WindowOpt{operators.LateOutput(engine.NewOutputTag[string]("late"))}, c.opts...)...)
				connectors.KafkaSink(out, "out", codec.JSON[operators.Windowed[string, int64]]())
				return job
			}
			for seed := uint64(1); seed <= 4; seed++ {
				store := weirtest.New(t, build(), weirtest.Partitions(2), weirtest.StateMemory(1))
				memory := weirtest.New(t, build(), weirtest.Partitions(2))
				tight := weirtest.New(t, build(), weirtest.Partitions(2), weirtest.StateMemory(600))
				hs := []*weirtest.Harness{store, memory, tight}
				spills := operators.AccSpills()
				rng := rand.New(rand.NewPCG(seed, 7))
				at := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
				for step := range 600 {
					var err error
					switch r := rng.IntN(100); {
					case r < 85:
						ts := at
						if rng.IntN(6) == 0 {
							ts = at.Add(-time.Duration(rng.IntN(3000)) * time.Millisecond)
						} else {
							at = at.Add(time.Duration(rng.IntN(200)) * time.Millisecond)
						}
						key, v := fmt.Sprintf("k%d", rng.IntN(12)), fmt.Sprintf("%*s", 1+rng.IntN(4), "")
						for _, h := range hs {
							err = errorsJoin(err, weirtest.SendValue(h, "in", codec.String(), key, v, ts))
						}
					case r < 95:
						for _, h := range hs {
							err = errorsJoin(err, h.Checkpoint())
						}
					default:
						at = at.Add(time.Duration(rng.IntN(2000)) * time.Millisecond)
						for _, h := range hs {
							err = errorsJoin(err, h.AdvanceWatermark(at))
						}
					}
					if err != nil {
						t.Fatalf("seed %d, step %d: %v", seed, step, err)
					}
				}
				for _, h := range hs {
					if err := h.AdvanceWatermark(at.Add(time.Hour)); err != nil {
						t.Fatal(err)
					}
				}
				want := store.ReadOutput("out")
				if len(want) < 100 {
					t.Fatalf("seed %d: a vacuous run: %d windows fired", seed, len(want))
				}
				for i, h := range hs[1:] {
					got := h.ReadOutput("out")
					for j := range max(len(got), len(want)) {
						if j >= len(got) || j >= len(want) || !bytes.Equal(got[j].Key, want[j].Key) || !bytes.Equal(got[j].Value, want[j].Value) {
							t.Fatalf("seed %d, %s: output %d of %d differs from the store's (%d)", seed, []string{"in memory", "spilling"}[i], j, len(got), len(want))
						}
					}
				}
				if operators.AccSpills() == spills {
					t.Fatalf("seed %d: the tight share never spilled", seed)
				}
			}
		})
	}
}

func errorsJoin(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
