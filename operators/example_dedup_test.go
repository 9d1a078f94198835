package operators_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/state"
	"github.com/weirstream/weir/weirtest"
	"github.com/weirstream/weir/windowing"
)

// Dedup passes on the first record of each Kafka key and drops the
// repeats that come within ttl of processing time. It is a third-party
// operator: written outside package operators, against the engine's
// operator interface only (engine/operator.go), with state the engine
// checkpoints and restores like any operator's.
func Dedup[T any](in engine.Stream[T], name string, ttl time.Duration) engine.Stream[T] {
	job := in.Job()
	out := engine.Derive[T](in, name)
	// State is declared once, shared by every task, kept under the
	// operator's name, with a changelog topic the engine creates.
	reg := state.NewRegistry(out.Name())
	seen := state.NewValue(reg, "seen", codec.JSON[bool](), state.WithTTL(ttl))
	if err := reg.Err(); err != nil {
		job.TopologyError(err)
	}
	job.AddStatefulOperator(out.Name(), out.Stage())
	in.Subscribe(func(t *engine.Task) (engine.Emit[T], error) {
		// Per task, in the goroutine that owns it: timers first, then
		// what is downstream (see Task.Timers).
		stats := t.Stats(out.Name())
		timers := t.Timers(out.Name())
		down, err := out.Build(t)
		if err != nil {
			return nil, err
		}
		sc := &keyScope{task: t}
		// The TTL already hides a key once it is due; the timer deletes
		// it, so that keys seen once do not stay in the store.
		timers.OnFire(func(key []byte, _ windowing.Millis, _ engine.TimeDomain) error {
			sc.key = key
			seen.Clear(sc)
			return nil
		})
		return func(r engine.Record[T]) error {
			stats.In++
			sc.key = r.Key
			_, dup, err := seen.Get(sc)
			if err != nil {
				return &engine.OperatorError{Operator: out.Name(), Err: err}
			}
			if dup {
				return nil
			}
			if err := seen.Set(sc, true); err != nil {
				return &engine.OperatorError{Operator: out.Name(), Err: err}
			}
			timers.Register(engine.ProcessingTime, windowing.MillisOf(t.Now().Add(ttl)), r.Key)
			stats.Out++
			return down(r)
		}, nil
	})
	return out
}

// keyScope is the state.Scope of the record in hand: its task's store,
// its key, and the task's clock for the TTL.
type keyScope struct {
	task *engine.Task
	key  []byte
}

func (s *keyScope) TaskStore() *state.TaskStore { return s.task.Store() }
func (s *keyScope) CurrentKey() []byte          { return s.key }
func (s *keyScope) Namespace() []byte           { return nil }
func (s *keyScope) ProcessingTime() time.Time   { return s.task.Now() }

// An operator written outside the repository, run as a job runs it.
func Example_dedup() {
	job := engine.NewJob("dedup-example")
	orders := connectors.KafkaSource(job, "orders", codec.String())
	connectors.KafkaSink(Dedup(orders, "dedup", time.Hour), "unique-orders", codec.String())

	h, err := weirtest.Start(job)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer h.Close()
	at := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, id := range []string{"o1", "o2", "o1", "o3", "o2"} {
		_ = weirtest.SendValue(h, "orders", codec.String(), id, "order "+id, at)
	}
	_ = h.AdvanceTime(2 * time.Hour) // o1's hour is up
	_ = weirtest.SendValue(h, "orders", codec.String(), "o1", "order o1, again", at)
	for _, r := range weirtest.ReadOutputs(h, "unique-orders", codec.String()) {
		fmt.Println(r.Key, r.Value)
	}
	// Output:
	// o1 order o1
	// o2 order o2
	// o3 order o3
	// o1 order o1, again
}

// The third-party operator's state and timers are checkpointed and
// restored by the engine: after a crash, a key seen before the checkpoint
// is still a duplicate, one seen after it is not (its record is replayed,
// and passes again, as the first time), and the cleanup timer set before
// the checkpoint still fires.
func TestThirdPartyOperatorStateSurvivesACrash(t *testing.T) {
	job := engine.NewJob("dedup-crash")
	orders := connectors.KafkaSource(job, "orders", codec.String())
	connectors.KafkaSink(Dedup(orders, "dedup", time.Hour), "unique-orders", codec.String())
	h := weirtest.New(t, job, weirtest.Partitions(2))
	at := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	send := func(id string) {
		t.Helper()
		if err := weirtest.SendValue(h, "orders", codec.String(), id, id, at); err != nil {
			t.Fatal(err)
		}
	}
	send("a")
	send("b")
	if err := h.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	send("c")
	if err := h.Crash(); err != nil { // c's record is replayed
		t.Fatal(err)
	}
	send("a")
	send("c")
	if err := h.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	got := keysOf(weirtest.CommittedOutputs(h, "unique-orders", codec.String()))
	if fmt.Sprint(got) != "[a b c]" {
		t.Errorf("committed outputs %v, want [a b c]: a deduplicated across the crash, c once", got)
	}
	// The cleanup timers restored with the state fire: after the hour,
	// a and b pass again.
	if err := h.AdvanceTime(2 * time.Hour); err != nil {
		t.Fatal(err)
	}
	send("a")
	send("b")
	if err := h.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if got := keysOf(weirtest.CommittedOutputs(h, "unique-orders", codec.String())); fmt.Sprint(got) != "[a b c a b]" {
		t.Errorf("committed outputs %v, want [a b c a b]", got)
	}
	for _, k := range []string{"a", "b", "c"} {
		if _, ok, err := seenIn(h, k); err != nil || (ok != (k != "c")) {
			t.Errorf("state of %s: present %v (%v); a and b were seen again, c's entry was cleaned up", k, ok, err)
		}
	}
}

func keysOf(rs []weirtest.Record[string]) []string {
	var ks []string
	for _, r := range rs {
		ks = append(ks, r.Key)
	}
	return ks
}

// seenIn reads the dedup operator's state of key through a handle of the
// same declaration, as the operator does.
func seenIn(h *weirtest.Harness, key string) (bool, bool, error) {
	reg := state.NewRegistry("dedup")
	seen := state.NewValue(reg, "seen", codec.JSON[bool](), state.WithTTL(time.Hour))
	return seen.Get(h.Scope(0, []byte(key)))
}
