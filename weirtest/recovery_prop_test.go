package weirtest_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/weirtest"
	"github.com/weirstream/weir/windowing"
)

// recoveryCase is a job for the crash property test, with its random
// inputs.
type recoveryCase struct {
	name       string
	partitions int32
	build      func() *engine.Job
	// sink is the topic whose committed records are compared.
	sink string
	// send sends one random input at event time at.
	send func(h *weirtest.Harness, rng *rand.Rand, at time.Time) error
}

func recoveryCases() []recoveryCase {
	clicks := func(h *weirtest.Harness, rng *rand.Rand, at time.Time) error {
		user := fmt.Sprintf("u%d", rng.IntN(6))
		page := fmt.Sprintf("/p%d", rng.IntN(5))
		if rng.IntN(10) == 0 {
			page = "/error"
		}
		return weirtest.SendValue(h, "clicks", codec.JSON[click](), page, click{User: user, Page: page, At: at}, at)
	}
	events := func(h *weirtest.Harness, rng *rand.Rand, at time.Time) error {
		key := fmt.Sprintf("k%d", rng.IntN(5))
		return weirtest.SendValue(h, "events", codec.JSON[event](), key, event{Key: key, At: at}, at)
	}
	windows := func(a windowing.Assigner, lateness time.Duration) func() *engine.Job {
		return func() *engine.Job {
			job := engine.NewJob("windows")
			src := connectors.KafkaSource(job, "events", codec.JSON[event](),
				connectors.WithWatermarks(windowing.BoundedOutOfOrderness(time.Second, func(e event) time.Time { return e.At })))
			counts := operators.WindowAggregate(operators.KeyByRecordKey(src, codec.String()), "counts", a,
				operators.Count[event]{}, codec.JSON[int64](),
				operators.AllowedLateness(lateness))
			connectors.KafkaSink(counts, "counts", codec.JSON[operators.Windowed[string, int64]]())
			return job
		}
	}
	// sides sends an event to one side of windowJoin.
	sides := func(h *weirtest.Harness, rng *rand.Rand, at time.Time) error {
		key := fmt.Sprintf("k%d", rng.IntN(5))
		side := []string{"left", "right"}[rng.IntN(2)]
		return weirtest.SendValue(h, side, codec.JSON[event](), key, event{Key: key, At: at}, at)
	}
	windowJoin := func() *engine.Job {
		job := engine.NewJob("windows")
		wm := connectors.WithWatermarks(windowing.BoundedOutOfOrderness(time.Second, func(e event) time.Time { return e.At }))
		l := operators.KeyByRecordKey(connectors.KafkaSource(job, "left", codec.JSON[event](), wm), codec.String())
		r := operators.KeyByRecordKey(connectors.KafkaSource(job, "right", codec.JSON[event](), wm), codec.String())
		joined := operators.WindowJoin(l, r, "joined", windowing.Sliding(4*time.Second, 2*time.Second), func(k string, w windowing.Window, l, r event) (string, error) {
			return fmt.Sprintf("%s %d %s %s", k, w.Start, l.At.Format("15:04:05.000"), r.At.Format("15:04:05.000")), nil
		})
		connectors.KafkaSink(joined, "joined", codec.String())
		return job
	}
	activityJob := func() *engine.Job {
		job, _ := buildActivity(0)
		return job
	}
	return []recoveryCase{
		{name: "activity/1", partitions: 1, build: activityJob, sink: "activity", send: clicks},
		{name: "activity/3", partitions: 3, build: activityJob, sink: "activity", send: clicks},
		{name: "tumbling", partitions: 2, build: windows(windowing.Tumbling(5*time.Second), 2*time.Second), sink: "counts", send: events},
		{name: "sliding", partitions: 1, build: windows(windowing.Sliding(6*time.Second, 2*time.Second), 0), sink: "counts", send: events},
		{name: "sessions", partitions: 2, build: windows(windowing.Sessions(3*time.Second), time.Second), sink: "counts", send: events},
		{name: "window-join", partitions: 2, build: windowJoin, sink: "joined", send: sides},
	}
}

// TestCrashesChangeNoCommittedOutput runs each job twice on the same
// random inputs, watermark moves, clock moves and checkpoints, crashing
// one run at random points: at every checkpoint, what the crashing run
// committed must be what the other did, record for record in every
// partition of the output topic, and so must its late-data topic.
func TestCrashesChangeNoCommittedOutput(t *testing.T) {
	for _, tc := range recoveryCases() {
		for seed := uint64(1); seed <= 8; seed++ {
			t.Run(fmt.Sprintf("%s/seed=%d", tc.name, seed), func(t *testing.T) {
				crashing := weirtest.New(t, tc.build(), weirtest.Partitions(tc.partitions))
				ref := weirtest.New(t, tc.build(), weirtest.Partitions(tc.partitions))
				crashWalk(t, rand.New(rand.NewPCG(seed, 0x5eed)), crashing, ref, []string{tc.sink, "windows-counts-late"}, tc.send)
			})
		}
	}
}

// Window state kept in memory (accumulators, session lists, a window
// join's buffers), in a share so small that it goes to the store again
// and again, commits through crashes what state kept in the store
// commits.
func TestCrashesWithWindowStateInMemory(t *testing.T) {
	for _, tc := range recoveryCases() {
		if tc.sink == "activity" {
			continue
		}
		for seed := uint64(1); seed <= 4; seed++ {
			t.Run(fmt.Sprintf("%s/seed=%d", tc.name, seed), func(t *testing.T) {
				crashing := weirtest.New(t, tc.build(), weirtest.Partitions(tc.partitions), weirtest.StateMemory(600))
				ref := weirtest.New(t, tc.build(), weirtest.Partitions(tc.partitions), weirtest.StateMemory(1))
				crashWalk(t, rand.New(rand.NewPCG(seed, 0xacc)), crashing, ref, []string{tc.sink, "windows-counts-late"}, tc.send)
			})
		}
	}
}

// crashWalk drives crashing and ref through the same 300 random steps
// (inputs sent by send at event times mostly forward, sometimes out of
// order or late; watermark and clock moves; checkpoints), crashing
// crashing at random points, and fails at the first checkpoint where
// what the two committed to topics differs. The first topic must get
// output.
func crashWalk(t *testing.T, rng *rand.Rand, crashing, ref *weirtest.Harness, topics []string,
	send func(h *weirtest.Harness, rng *rand.Rand, at time.Time) error) {
	t.Helper()
	const steps = 300
	at := parseClock(t, "10:00:00")
	var history []string // the steps so far, to tell a failure
	crashes := 0
	both := func(what string, f func(h *weirtest.Harness) error) {
		history = append(history, what)
		err, refErr := f(crashing), f(ref)
		if err != nil || refErr != nil {
			t.Fatalf("%s: %v (without crashes: %v)\nsteps:\n%s", what, err, refErr, strings.Join(history, "\n"))
		}
	}
	for step := range steps {
		switch r := rng.IntN(100); {
		case r < 70:
			// Mostly forward, sometimes out of order or late.
			d := time.Duration(rng.IntN(1500)) * time.Millisecond
			if rng.IntN(8) == 0 {
				d = -time.Duration(rng.IntN(8000)) * time.Millisecond
			}
			ts := at.Add(d)
			if d > 0 {
				at = ts
			}
			seed := rng.Uint64()
			both(fmt.Sprintf("%d: send at %s", step, ts.Format("15:04:05.000")), func(h *weirtest.Harness) error {
				return send(h, rand.New(rand.NewPCG(seed, 0)), ts)
			})
		case r < 74:
			at = at.Add(time.Duration(rng.IntN(5000)) * time.Millisecond)
			wm := at
			both(fmt.Sprintf("%d: watermark to %s", step, wm.Format("15:04:05.000")), func(h *weirtest.Harness) error {
				return h.AdvanceWatermark(wm)
			})
		case r < 78:
			d := time.Duration(rng.IntN(3000)) * time.Millisecond
			both(fmt.Sprintf("%d: advance %s", step, d), func(h *weirtest.Harness) error { return h.AdvanceTime(d) })
		case r < 90:
			both(fmt.Sprintf("%d: checkpoint", step), func(h *weirtest.Harness) error { return h.Checkpoint() })
			compareCommitted(t, crashing, ref, topics, history)
		default:
			history = append(history, fmt.Sprintf("%d: crash", step))
			crashes++
			if err := crashing.Crash(); err != nil {
				t.Fatalf("crash: %v\nsteps:\n%s", err, strings.Join(history, "\n"))
			}
		}
	}
	both("final watermark", func(h *weirtest.Harness) error { return h.AdvanceWatermark(at.Add(time.Hour)) })
	both("final checkpoint", func(h *weirtest.Harness) error { return h.Checkpoint() })
	compareCommitted(t, crashing, ref, topics, history)
	if crashes == 0 || len(ref.CommittedOutput(topics[0])) == 0 {
		t.Fatalf("a vacuous run: %d crashes, %d outputs", crashes, len(ref.CommittedOutput(topics[0])))
	}
}

func compareCommitted(t *testing.T, got, want *weirtest.Harness, topics []string, history []string) {
	t.Helper()
	for _, topic := range topics {
		g, w := byPartition(got.CommittedOutput(topic)), byPartition(want.CommittedOutput(topic))
		for p := range max(len(g), len(w)) {
			var gp, wp []*kgo.Record
			if p < len(g) {
				gp = g[p]
			}
			if p < len(w) {
				wp = w[p]
			}
			if i, ok := sameRecords(gp, wp); !ok {
				t.Fatalf("%s partition %d: committed record %d differs from the run without crashes:\n with crashes: %s\n without:      %s\nsteps:\n%s",
					topic, p, i, describe(gp, i), describe(wp, i), strings.Join(history, "\n"))
			}
		}
	}
}

func byPartition(rs []*kgo.Record) [][]*kgo.Record {
	var out [][]*kgo.Record
	for _, r := range rs {
		for int(r.Partition) >= len(out) {
			out = append(out, nil)
		}
		out[r.Partition] = append(out[r.Partition], r)
	}
	return out
}

// sameRecords reports whether a and b hold the same records (key, value,
// timestamp) in the same order, and else the index of the first that
// differs.
func sameRecords(a, b []*kgo.Record) (int, bool) {
	for i := range max(len(a), len(b)) {
		if i >= len(a) || i >= len(b) {
			return i, false
		}
		x, y := a[i], b[i]
		if !bytes.Equal(x.Key, y.Key) || !bytes.Equal(x.Value, y.Value) || !x.Timestamp.Equal(y.Timestamp) {
			return i, false
		}
	}
	return 0, true
}

func describe(rs []*kgo.Record, i int) string {
	if i >= len(rs) {
		return "(none)"
	}
	return fmt.Sprintf("%s %s at %s", rs[i].Key, rs[i].Value, rs[i].Timestamp.UTC().Format("15:04:05.000"))
}
