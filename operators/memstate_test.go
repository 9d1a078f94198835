package operators_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/internal/local"
	"github.com/weirstream/weir/observe"
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
			sameOutputsInMemory(t, build, "agg", "in")
		})
	}
}

// Window joins buffer both sides in memory (memList) and join what the
// store-only buffers join, with room for all and with a share that spills.
func TestWindowJoinBuffersInMemoryJoinWhatTheStoreDoes(t *testing.T) {
	for name, a := range map[string]windowing.Assigner{"tumbling": windowing.Tumbling(2 * time.Second), "sliding": windowing.Sliding(3*time.Second, time.Second)} {
		t.Run(name, func(t *testing.T) {
			build := func() *engine.Job {
				job := engine.NewJob("join")
				wm := connectors.WithWatermarks(windowing.RecordTimestamps[string](500 * time.Millisecond))
				l := operators.KeyByRecordKey(connectors.KafkaSource(job, "left", codec.String(), wm), codec.String())
				r := operators.KeyByRecordKey(connectors.KafkaSource(job, "right", codec.String(), wm), codec.String())
				out := operators.WindowJoin(l, r, "join", a, func(k string, w windowing.Window, l, r string) (string, error) {
					return fmt.Sprintf("%s %d %q %q", k, w.Start, l, r), nil
				})
				connectors.KafkaSink(out, "out", codec.String())
				return job
			}
			sameOutputsInMemory(t, build, "join", "left", "right")
		})
	}
}

// A burst that fills a task's share spills its window state (a window
// aggregate's accumulators, a window join's buffers) to the store; once
// the windows the burst made have fired, memory holds all of the state
// again, and the records of later windows read nothing from the store, as
// before the burst.
func TestStateMemoryIsCompleteAgainOnceASpillsWindowsFired(t *testing.T) {
	at := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name   string
		build  func() *engine.Job
		topics []string
	}{
		{"aggregate", func() *engine.Job {
			job := engine.NewJob("burst")
			src := connectors.KafkaSource(job, "in", codec.String(), connectors.WithWatermarks(windowing.RecordTimestamps[string](0)))
			out := operators.WindowAggregate(operators.KeyByRecordKey(src, codec.String()), "agg", windowing.Tumbling(time.Second),
				operators.Count[string]{}, codec.JSON[int64]())
			connectors.KafkaSink(out, "out", codec.JSON[operators.Windowed[string, int64]]())
			return job
		}, []string{"in"}},
		{"join", func() *engine.Job {
			job := engine.NewJob("burst-join")
			wm := connectors.WithWatermarks(windowing.RecordTimestamps[string](0))
			l := operators.KeyByRecordKey(connectors.KafkaSource(job, "left", codec.String(), wm), codec.String())
			r := operators.KeyByRecordKey(connectors.KafkaSource(job, "right", codec.String(), wm), codec.String())
			out := operators.WindowJoin(l, r, "join", windowing.Tumbling(time.Second), func(k string, w windowing.Window, l, r string) (string, error) {
				return fmt.Sprintf("%s %d", k, w.Start), nil
			})
			connectors.KafkaSink(out, "out", codec.String())
			return job
		}, []string{"left", "right"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := weirtest.New(t, c.build(), weirtest.Partitions(1), weirtest.StateMemory(16<<10))
			send := func(keys int, at time.Time) {
				t.Helper()
				for k := range keys {
					key := fmt.Sprintf("k%d", k)
					for _, topic := range c.topics {
						if err := weirtest.SendValue(h, topic, codec.String(), key, key, at); err != nil {
							t.Fatal(err)
						}
					}
				}
				if err := h.Checkpoint(); err != nil {
					t.Fatal(err)
				}
			}
			spills := operators.MemSpills()
			send(1000, at) // the burst: a thousand windows
			if operators.MemSpills() == spills {
				t.Fatal("the burst did not spill: the test checks nothing")
			}
			send(5, at.Add(time.Second)) // its windows fire
			reads := operators.MemStoreReads()
			for i := 2; i < 12; i++ {
				send(5, at.Add(time.Duration(i)*time.Second))
			}
			if n := operators.MemStoreReads() - reads; n != 0 {
				t.Errorf("after the burst's windows fired, 50 keys' records of new windows read the store %d times, want none", n)
			}
			if got := len(h.ReadOutput("out")); got != 1000+5*10 {
				t.Errorf("%d windows fired, want %d", got, 1000+5*10)
			}
		})
	}
}

// spillRecorder records the spills a task reports.
type spillRecorder struct {
	observe.Nop
	mu     sync.Mutex
	spills map[string][]int64 // task -> bytes of each spill
}

func (r *spillRecorder) StateSpilled(task string, bytes int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.spills[task] = append(r.spills[task], bytes)
}

// A spill is reported to the job's observer (and so counted in
// weir_state_memory_spills_total) with the task and the bytes memory held,
// which fill the task's share; state that fits reports none.
func TestStateSpillsAreReported(t *testing.T) {
	const share = 16 << 10
	for _, c := range []struct {
		name      string
		share     int64
		keys      int
		wantSpill bool
	}{{"fits", share, 10, false}, {"burst", share, 1000, true}} {
		t.Run(c.name, func(t *testing.T) {
			job := engine.NewJob("spills")
			src := connectors.KafkaSource(job, "in", codec.String(), connectors.WithWatermarks(windowing.RecordTimestamps[string](0)))
			out := operators.WindowAggregate(operators.KeyByRecordKey(src, codec.String()), "agg", windowing.Tumbling(time.Second),
				operators.Count[string]{}, codec.JSON[int64]())
			connectors.KafkaSink(out, "out", codec.JSON[operators.Windowed[string, int64]]())
			obs := &spillRecorder{spills: map[string][]int64{}}
			task, err := local.NewTask(context.Background(), job, 0, 0, local.Env{Producer: &recorder{}, Observer: obs, StateMemory: c.share})
			if err != nil {
				t.Fatal(err)
			}
			at := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
			var recs []*kgo.Record
			for k := range c.keys {
				key := []byte(fmt.Sprintf("k%d", k))
				recs = append(recs, &kgo.Record{Topic: "in", Offset: int64(k), Key: key, Value: key, Timestamp: at})
			}
			if err := task.Process("in", recs); err != nil {
				t.Fatal(err)
			}
			obs.mu.Lock()
			defer obs.mu.Unlock()
			if !c.wantSpill {
				if len(obs.spills) != 0 {
					t.Fatalf("spills reported %v, want none: the state fits", obs.spills)
				}
				return
			}
			got := obs.spills["0_0"]
			if len(got) == 0 || len(obs.spills) != 1 {
				t.Fatalf("spills reported %v, want some of task 0_0", obs.spills)
			}
			for _, b := range got {
				if b <= 0 || b > c.share {
					t.Errorf("a spill reported %d bytes held, want (0, %d]", b, c.share)
				}
			}
		})
	}
}

// A task reads its share at every reservation: when the replica takes
// more tasks and the share shrinks, the task's window state spills at its
// next new window rather than holding more than its share, and the
// windows it spilled still fire with every record counted.
func TestStateSpillsWhenTheShareShrinks(t *testing.T) {
	var share atomic.Int64
	share.Store(1 << 20)
	job := engine.NewJob("shrink")
	src := connectors.KafkaSource(job, "in", codec.String(), connectors.WithWatermarks(windowing.RecordTimestamps[string](0)))
	out := operators.WindowAggregate(operators.KeyByRecordKey(src, codec.String()), "agg", windowing.Tumbling(time.Second),
		operators.Count[string]{}, codec.JSON[int64]())
	connectors.KafkaSink(out, "out", codec.JSON[operators.Windowed[string, int64]]())
	obs := &spillRecorder{spills: map[string][]int64{}}
	rec := &recorder{}
	task, err := local.NewTask(context.Background(), job, 0, 0, local.Env{Producer: rec, Observer: obs, StateShare: share.Load})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	offset := int64(0)
	// process sends one record of each of the keys k0 to k(n-1) at ts.
	process := func(n int, ts time.Time) {
		t.Helper()
		var recs []*kgo.Record
		for k := range n {
			key := []byte(fmt.Sprintf("k%d", k))
			recs = append(recs, &kgo.Record{Topic: "in", Offset: offset, Key: key, Value: key, Timestamp: ts})
			offset++
		}
		if err := task.Process("in", recs); err != nil {
			t.Fatal(err)
		}
	}
	spills := func() []int64 {
		obs.mu.Lock()
		defer obs.mu.Unlock()
		return slices.Clone(obs.spills["0_0"])
	}
	process(300, at)
	if got := spills(); len(got) != 0 {
		t.Fatalf("spills %v under a 1 MiB share, want none: 300 windows fit", got)
	}
	const small = 4 << 10
	share.Store(small)
	// The first 300 keys again, then 300 new ones: new windows reserve.
	process(600, at.Add(time.Millisecond))
	// The first spill gives back what the old share held; the later
	// ones hold no more than the new share.
	got := spills()
	if len(got) < 2 {
		t.Fatalf("spills %v after the share shrank to %d bytes, want several: 300 new windows do not fit", got, small)
	}
	for _, b := range got[1:] {
		if b <= 0 || b > small {
			t.Errorf("a spill after the first reported %d bytes held, want (0, %d]", b, small)
		}
	}
	rec.take() // the changelog of the spills, if any
	// A record a second later fires the window of every key.
	process(1, at.Add(time.Second+time.Millisecond))
	counts := map[string]int64{}
	for _, r := range rec.take() {
		if r.Topic != "out" {
			continue
		}
		var w operators.Windowed[string, int64]
		if err := json.Unmarshal(r.Value, &w); err != nil {
			t.Fatal(err)
		}
		counts[w.Key] += w.Value
	}
	if len(counts) != 600 {
		t.Fatalf("%d windows fired, want 600", len(counts))
	}
	for i := range 600 {
		k, want := fmt.Sprintf("k%d", i), int64(1)
		if i < 300 {
			want = 2
		}
		if counts[k] != want {
			t.Fatalf("window of %s counted %d, want %d", k, counts[k], want)
		}
	}
}

// sameOutputsInMemory runs the job build makes three times, its state
// kept in the store, in memory with room for all of it, and in a share
// so small that it spills again and again, through the same random
// steps (records to the topics, checkpoints, watermarks), and fails
// unless all three write the same to "out" and, once every window has
// fired, leave nothing of operator op in the store.
func sameOutputsInMemory(t *testing.T, build func() *engine.Job, op string, topics ...string) {
	t.Helper()
	for seed := uint64(1); seed <= 4; seed++ {
		store := weirtest.New(t, build(), weirtest.Partitions(2), weirtest.StateMemory(1))
		memory := weirtest.New(t, build(), weirtest.Partitions(2))
		tight := weirtest.New(t, build(), weirtest.Partitions(2), weirtest.StateMemory(600))
		hs := []*weirtest.Harness{store, memory, tight}
		spills := operators.MemSpills()
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
				topic := topics[rng.IntN(len(topics))]
				key, v := fmt.Sprintf("k%d", rng.IntN(12)), fmt.Sprintf("%*s", 1+rng.IntN(4), "")
				for _, h := range hs {
					err = errors.Join(err, weirtest.SendValue(h, topic, codec.String(), key, v, ts))
				}
			case r < 95:
				for _, h := range hs {
					err = errors.Join(err, h.Checkpoint())
				}
			default:
				at = at.Add(time.Duration(rng.IntN(2000)) * time.Millisecond)
				for _, h := range hs {
					err = errors.Join(err, h.AdvanceWatermark(at))
				}
			}
			if err != nil {
				t.Fatalf("seed %d, step %d: %v", seed, step, err)
			}
		}
		for i, h := range hs {
			if err := errors.Join(h.AdvanceWatermark(at.Add(time.Hour)), h.Checkpoint()); err != nil {
				t.Fatal(err)
			}
			if n := stateKeysOf(t, h, op); n != 0 {
				t.Errorf("seed %d, %s: %d keys of %s left in the store after every window fired", seed, []string{"store", "in memory", "spilling"}[i], n, op)
			}
		}
		want := store.ReadOutput("out")
		if len(want) < 100 {
			t.Fatalf("seed %d: a vacuous run: %d outputs", seed, len(want))
		}
		for i, h := range hs[1:] {
			got := h.ReadOutput("out")
			for j := range max(len(got), len(want)) {
				if j >= len(got) || j >= len(want) || !bytes.Equal(got[j].Key, want[j].Key) || !bytes.Equal(got[j].Value, want[j].Value) {
					t.Fatalf("seed %d, %s: output %d of %d differs from the store's (%d)", seed, []string{"in memory", "spilling"}[i], j, len(got), len(want))
				}
			}
		}
		if operators.MemSpills() == spills {
			t.Fatalf("seed %d: the tight share never spilled", seed)
		}
	}
}

// stateKeysOf counts the keys of operator op in the stores of h's tasks
// of stage 0.
func stateKeysOf(t *testing.T, h *weirtest.Harness, op string) int {
	t.Helper()
	seen := map[*state.TaskStore]bool{}
	n := 0
	for i := range 64 { // keys enough to reach every partition
		ts := h.Scope(0, []byte(fmt.Sprintf("k%d", i))).TaskStore()
		if seen[ts] {
			continue
		}
		seen[ts] = true
		if err := ts.Scan(nil, nil, func(k, _ []byte) bool {
			if o, err := state.OperatorOf(k); err == nil && string(o) == op {
				n++
			}
			return true
		}); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// A key that its codec refuses fails its record when it arrives, though
// a window aggregate decodes keys only when a window fires; a key codec
// that takes any bytes (a string) is decoded then, and its windows carry
// the right keys.
func TestWindowKeysDecodeWhenTheyMust(t *testing.T) {
	noon := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	job := engine.NewJob("keys")
	src := connectors.KafkaSource(job, "in", codec.String(), connectors.WithWatermarks(windowing.RecordTimestamps[string](0)))
	out := operators.WindowAggregate(operators.KeyByRecordKey(src, codec.Key[int64]()), "agg", windowing.Tumbling(time.Second),
		operators.Count[string]{}, codec.JSON[int64]())
	connectors.KafkaSink(out, "out", codec.JSON[operators.Windowed[int64, int64]]())
	h := weirtest.New(t, job)
	if err := h.SendBytes("in", []byte("abc"), []byte("x"), noon); err == nil || !strings.Contains(err.Error(), "decoding key") {
		t.Fatalf("a 3-byte int64 key: %v, want the record to fail decoding its key", err)
	}

	job = engine.NewJob("keys")
	src = connectors.KafkaSource(job, "in", codec.String(), connectors.WithWatermarks(windowing.RecordTimestamps[string](0)))
	byStr := operators.WindowAggregate(operators.KeyByRecordKey(src, codec.String()), "agg", windowing.Tumbling(time.Second),
		operators.Count[string]{}, codec.JSON[int64]())
	connectors.KafkaSink(byStr, "out", codec.JSON[operators.Windowed[string, int64]]())
	h = weirtest.New(t, job)
	for i, k := range []string{"a", "bb", "a", "ccc"} {
		if err := h.SendBytes("in", []byte(k), []byte("x"), noon.Add(time.Duration(i)*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.AdvanceWatermark(noon.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, r := range weirtest.ReadOutputs(h, "out", codec.JSON[operators.Windowed[string, int64]]()) {
		got[r.Value.Key] = r.Value.Value
	}
	if want := map[string]int64{"a": 2, "bb": 1, "ccc": 1}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("windows %v, want %v", got, want)
	}
}
