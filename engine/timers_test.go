package engine

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"go.uber.org/zap"

	"github.com/weirstream/weir/observe"
	"github.com/weirstream/weir/state"
	"github.com/weirstream/weir/windowing"
)

type firedTimer struct {
	at      int64
	subject string
}

func compareFired(a, b firedTimer) int {
	return cmp.Or(cmp.Compare(a.at, b.at), cmp.Compare(a.subject, b.subject))
}

// timerModel is what Timers must do: a set of timers, fired in (time,
// subject) order.
type timerModel struct{ set map[firedTimer]bool }

func (m *timerModel) popDue(upTo int64) (firedTimer, bool) {
	var first firedTimer
	found := false
	for t := range m.set {
		if t.at <= upTo && (!found || compareFired(t, first) < 0) {
			first, found = t, true
		}
	}
	if found {
		delete(m.set, first)
	}
	return first, found
}

// TestTimersSpillPastTheirMemory runs random registrations, deletions,
// watermark moves and restarts (from the last commit, as a failed task
// does) against a model, with the timers' memory so small that most
// timers are only in the store, and with no bound: both fire exactly the
// model's timers, in its order. A fired timer sometimes sets another, due
// at once or later, as a window's cleanup or a user's timer does.
func TestTimersSpillPastTheirMemory(t *testing.T) {
	for _, limit := range []int64{1, 64 << 10, 0} {
		for seed := range uint64(3) {
			t.Run(fmt.Sprintf("memory=%d/seed=%d", limit, seed), func(t *testing.T) {
				runTimerModel(t, limit, seed)
			})
		}
	}
}

// timerJob returns an in-memory store and a job with one stateful
// operator, "op", for tasks whose timers a test drives.
func timerJob(t *testing.T) (*state.Store, *Job) {
	t.Helper()
	store, err := state.Open("", state.InMemory(state.NewMemFS()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	j := NewJob("timers")
	j.AddStatefulOperator("op", 0)
	j.resolveInternalTopics("g")
	return store, j
}

// newTimerTask builds a task of j over store, its timers bounded by mem
// (nil: no bound).
func newTimerTask(t *testing.T, store *state.Store, j *Job, mem *timerMemory) *Task {
	t.Helper()
	task, err := newTask(taskEnv{
		ctx: context.Background(), log: zap.NewNop(), obs: observe.Nop{}, producer: &offsetProducer{next: map[string]int64{}},
		clock: systemClock{}, store: store, timerMem: mem,
	}, TaskID{}, j)
	if err != nil {
		t.Fatal(err)
	}
	return task
}

func runTimerModel(t *testing.T, limit int64, seed uint64) {
	store, j := timerJob(t)
	var mem *timerMemory
	if limit > 0 {
		mem = newTimerMemory(limit)
	}
	rnd := rand.New(rand.NewPCG(seed, 7))
	var task *Task
	var timers *Timers
	var fired []firedTimer
	// follow is what firing a timer sets, the same in the model and the
	// engine: a timer for a related subject, due now or later.
	follow := func(f firedTimer) (firedTimer, bool) {
		h := 0
		for _, c := range f.subject {
			h = h*31 + int(c)
		}
		h += int(f.at)
		if h%4 != 0 || len(f.subject) > 6 {
			return firedTimer{}, false
		}
		return firedTimer{at: f.at + int64(h%3)*7, subject: f.subject + "+"}, true
	}
	start := func() {
		if task != nil {
			task.releaseTimers()
		}
		task = newTimerTask(t, store, j, mem)
		timers = task.Timers("op")
		timers.OnFire(func(subject []byte, at windowing.Millis, _ TimeDomain) error {
			f := firedTimer{int64(at), string(subject)}
			fired = append(fired, f)
			if n, ok := follow(f); ok {
				timers.Register(EventTime, windowing.Millis(n.at), []byte(n.subject))
			}
			return nil
		})
	}
	start()
	model := &timerModel{set: map[firedTimer]bool{}}
	committed := &timerModel{set: map[firedTimer]bool{}}
	var wm, committedWM int64 = -1, -1
	for step := range 6000 {
		switch r := rnd.IntN(100); {
		case r < 55:
			f := firedTimer{at: wm + 1 + rnd.Int64N(10_000), subject: fmt.Sprintf("k%d", rnd.IntN(2000))}
			timers.Register(EventTime, windowing.Millis(f.at), []byte(f.subject))
			model.set[f] = true
		case r < 65:
			f := firedTimer{at: wm + 1 + rnd.Int64N(10_000), subject: fmt.Sprintf("k%d", rnd.IntN(2000))}
			for g := range model.set { // half the time, one that is set
				if rnd.IntN(2) == 0 {
					f = g
				}
				break
			}
			timers.Delete(EventTime, windowing.Millis(f.at), []byte(f.subject))
			delete(model.set, f)
		case r < 95:
			wm += rnd.Int64N(40)
			fired = fired[:0]
			if err := task.advanceWatermark(wm); err != nil {
				t.Fatal(err)
			}
			var want []firedTimer
			for {
				f, ok := model.popDue(wm)
				if !ok {
					break
				}
				want = append(want, f)
				if n, ok := follow(f); ok {
					model.set[n] = true
				}
			}
			if !slices.Equal(fired, want) {
				t.Fatalf("step %d: watermark %d fired %v, want %v", step, wm, fired, want)
			}
		case r < 98:
			task.saveTimers() // as a barrier does
			task.store.Flush()
			if err := task.store.CommitPending(int64(step+1), nil); err != nil {
				t.Fatal(err)
			}
			committed.set = maps.Clone(model.set)
			committedWM = wm
		default: // fail: back to the last commit
			task.store.AbortPending()
			model.set = maps.Clone(committed.set)
			wm = committedWM
			start()
			task.watermark = max(wm, minWatermark)
		}
		if task.timerErr != nil {
			t.Fatal(task.timerErr)
		}
		// A queue holds at most 2*timerKeep timers past the share before
		// it shrinks, and a refill past it reads timerKeep more.
		if mem != nil && mem.used.Load() > max(limit, 0)+3*timerKeep*timerCost([]byte("k0000+++")) {
			t.Fatalf("step %d: %d bytes of timers in memory, the share is %d (queue: %d timers, %d entries, %d bytes)", step, mem.used.Load(), limit,
				len(timers.queues[0].set), len(timers.queues[0].h), timers.queues[0].bytes)
		}
	}
	if mem != nil {
		var held int64
		for i := range timers.queues {
			held += timers.queues[i].bytes
		}
		if got := mem.used.Load(); got != held {
			t.Fatalf("the replica counts %d bytes of timers, the live task holds %d", got, held)
		}
	}
}

// TestTimerQueueShrinkCountsATimerSetTwiceOnce: a timer deleted and set
// again is in the heap twice. When a shrink lets it go, the share must
// give back its cost once, or the replica counts less memory than its
// queues hold.
func TestTimerQueueShrinkCountsATimerSetTwiceOnce(t *testing.T) {
	mem := newTimerMemory(1)
	var q timerQueue
	q.init(mem)
	for at := range int64(10) {
		q.push(at, []byte("k"), false)
	}
	q.remove(9, []byte("k"))
	q.push(9, []byte("k"), false) // in the heap twice now
	q.shrink(func(timerEntry) { t.Fatal("a shrink saved a timer the store has") })
	var held int64
	for id := range q.set {
		held += timerCost([]byte(id[8:]))
	}
	if q.bytes != held || mem.used.Load() != held {
		t.Fatalf("after the shrink the queue counts %d bytes and the share %d; its %d timers cost %d", q.bytes, mem.used.Load(), len(q.set), held)
	}
}

// A timer set and then fired or deleted between two barriers never
// reaches the store, so its checkpoint writes nothing for it (a session's
// timer, replaced at each record, cost two writes and two changelog
// records each time); one still set at a barrier is written then, once.
func TestTimersBetweenBarriersStayOutOfTheStore(t *testing.T) {
	store, j := timerJob(t)
	task := newTimerTask(t, store, j, nil)
	timers := task.Timers("op")
	var fired []string
	timers.OnFire(func(subject []byte, _ windowing.Millis, _ TimeDomain) error {
		fired = append(fired, string(subject))
		return nil
	})
	timers.Register(EventTime, 10, []byte("fires"))
	timers.Register(EventTime, 20, []byte("deleted"))
	timers.Register(EventTime, 30, []byte("kept"))
	timers.Delete(EventTime, 20, []byte("deleted"))
	if err := task.advanceWatermark(15); err != nil {
		t.Fatal(err)
	}
	task.saveTimers()
	muts := task.store.Flush()
	if len(muts) != 1 || muts[0].Tombstone || !bytes.HasSuffix(muts[0].Key, []byte("kept")) {
		t.Fatalf("the barrier wrote %d mutations (%v), want the one timer still set", len(muts), muts)
	}
	if err := task.store.CommitPending(1, nil); err != nil {
		t.Fatal(err)
	}
	task.saveTimers()
	if muts := task.store.Flush(); len(muts) != 0 {
		t.Fatalf("a second barrier wrote %v, want nothing: the timer is saved", muts)
	}
	if err := task.advanceWatermark(40); err != nil {
		t.Fatal(err)
	}
	task.saveTimers()
	if muts := task.store.Flush(); len(muts) != 1 || !muts[0].Tombstone {
		t.Fatalf("firing the saved timer wrote %v, want its tombstone", muts)
	}
	if !slices.Equal(fired, []string{"fires", "kept"}) {
		t.Fatalf("fired %v", fired)
	}
}
