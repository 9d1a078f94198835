package engine

import (
	"bytes"
	"container/heap"
	"encoding/binary"
	"time"

	"github.com/weirstream/weir/windowing"
)

// clock is the processing-time clock of a job's tasks. Tests and harnesses
// inject their own; a running job uses the system clock.
type clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// TimeDomain says which clock a timer follows.
type TimeDomain uint8

const (
	// EventTime timers fire when the task's watermark passes them.
	EventTime TimeDomain = iota
	// ProcessingTime timers fire when the task's clock passes them.
	ProcessingTime
)

func (d TimeDomain) String() string {
	if d == EventTime {
		return "event-time"
	}
	return "processing-time"
}

// minWatermark is the watermark before any event time is known: the
// windowing package's, as a task keeps it (int64 Unix ms).
const minWatermark = int64(windowing.MinWatermark)

func watermarkTime(ms int64) time.Time {
	if ms == minWatermark {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// timerState is the state name timers live under, in their operator's
// part of the store (see the layout in package state): user state names
// cannot start with a NUL, so the two never meet, and a timer belongs to
// its operator's changelog like the rest of the operator's state.
const timerState = "\x00timers"

// Timers are one keyed operator's timers in one task (Flink's
// InternalTimerService): what an operator registers to be called back at
// an event time (when the task's watermark passes it) or a processing
// time (when the task's clock does). A timer is (domain, time, subject):
// the subject is the operator's own bytes, usually the record key it is
// for plus what the operator needs to act (a window, a join side);
// registering the same timer twice keeps one.
//
// The task's state store holds timers durably, in the operator's part of
// the store (so they are checkpointed and restored with its state), keyed
// so that a scan yields them in (time, subject) order: len(op) op |
// len(timerState) timerState | domain | time (sign-flipped big-endian) |
// subject. Firing works from an in-memory queue per domain, loaded from
// the store once when the task starts, as Flink's heap timers do: a scan
// of the store per watermark move would cost a merge iterator per
// record. The task owns them; nothing here takes a lock.
type Timers struct {
	task   *Task
	prefix []byte // len(op) op | len(timerState) timerState
	fire   func(subject []byte, at windowing.Millis, domain TimeDomain) error
	queues [2]timerQueue
	loaded bool
}

// Timers registers the named operator's timers in the task; the operator
// sets OnFire before its first record. An operator registers before it
// builds the operators downstream of it, so the task's timers are in
// topology order, which is the order a watermark fires them in: a timer
// that a downstream operator sets for a time the watermark passed, while
// an upstream window fires at that watermark, fires at the same watermark,
// as Flink's forwarding of the watermark operator by operator does.
func (t *Task) Timers(op string) *Timers {
	p := binary.AppendUvarint(nil, uint64(len(op)))
	p = append(p, op...)
	p = binary.AppendUvarint(p, uint64(len(timerState)))
	p = append(p, timerState...)
	o := &Timers{task: t, prefix: p}
	if t.store != nil {
		t.store.Uncached(p) // the queues are the timers' memory
	}
	o.queues[EventTime].init()
	o.queues[ProcessingTime].init()
	t.timers = append(t.timers, o)
	return o
}

// OnFire sets what a due timer calls, in the task's goroutine, with the
// timer's subject, time and domain. Timers of a task fire in time order,
// then subject order; the timer is gone from the store when fire runs, and
// an error fails the task with a TimerError (or meets the operator's
// error policy, when it comes from user code run through its Guard).
func (o *Timers) OnFire(fire func(subject []byte, at windowing.Millis, domain TimeDomain) error) {
	o.fire = fire
}

func (o *Timers) domainPrefix(d TimeDomain) []byte {
	return append(append([]byte(nil), o.prefix...), byte(d))
}

// orderedMillis encodes ms so that byte order is numeric order (the sign
// bit flipped, big-endian); millisAt decodes it.
func orderedMillis(ms int64) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(ms)^(1<<63))
}

func millisAt(b []byte) int64 { return int64(binary.BigEndian.Uint64(b[:8]) ^ (1 << 63)) }

func (o *Timers) key(d TimeDomain, at int64, key []byte) []byte {
	k := o.domainPrefix(d)
	k = append(k, orderedMillis(at)...)
	return append(k, key...)
}

// load fills the queues from the store: the timers a previous run of the
// task left. It runs once, before the first timer is registered or fired.
func (o *Timers) load() error {
	if o.loaded {
		return nil
	}
	o.loaded = true
	for _, d := range []TimeDomain{EventTime, ProcessingTime} {
		lower := o.domainPrefix(d)
		upper := append(o.domainPrefix(d), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
		if err := o.task.store.Scan(lower, upper, func(k, _ []byte) bool {
			rest := k[len(lower):]
			o.queues[d].push(millisAt(rest), bytes.Clone(rest[8:]))
			return true
		}); err != nil {
			return err
		}
	}
	return nil
}

// Register sets a timer of domain d at time at for subject. Registering
// a timer that is set already does nothing.
func (o *Timers) Register(d TimeDomain, at windowing.Millis, subject []byte) {
	o.register(d, int64(at), subject)
}

// Delete removes a timer; deleting one that is not set does nothing.
func (o *Timers) Delete(d TimeDomain, at windowing.Millis, subject []byte) {
	o.delete(d, int64(at), subject)
}

func (o *Timers) register(d TimeDomain, at int64, key []byte) {
	if err := o.load(); err != nil {
		o.task.timerErr = err
		return
	}
	if o.queues[d].push(at, key) {
		o.task.store.Set(o.key(d, at, key), nil)
	}
}

func (o *Timers) delete(d TimeDomain, at int64, key []byte) {
	if err := o.load(); err != nil {
		o.task.timerErr = err
		return
	}
	if o.queues[d].remove(at, key) {
		o.task.store.Delete(o.key(d, at, key))
	}
}

// fireDue fires, in (time, key) order, every timer of domain d at or before
// upTo, including timers registered while firing that are due too.
func (o *Timers) fireDue(d TimeDomain, upTo int64) error {
	if err := o.load(); err != nil {
		return err
	}
	q := &o.queues[d]
	for {
		at, key, ok := q.popDue(upTo)
		if !ok {
			return nil
		}
		o.task.store.Delete(o.key(d, at, key))
		// A timer due after a record's watermark fires while the record
		// is in hand; a dead letter of the timer must not name the record.
		cur := o.task.cur
		o.task.cur, o.task.curTimer = nil, timerInHand{set: true, at: at, domain: d, key: key}
		err := o.fire(key, windowing.Millis(at), d)
		o.task.cur, o.task.curTimer = cur, timerInHand{}
		if err != nil {
			return &TimerError{Timer: at, Domain: d, Key: key, Err: err}
		}
	}
}

// timerQueue orders one domain's timers by (time, key), with each (time,
// key) at most once, as Flink deduplicates timers.
type timerQueue struct {
	h   timerHeap
	set map[string]struct{} // time|key of the timers in h
}

func (q *timerQueue) init() { q.set = map[string]struct{}{} }

func timerID(at int64, key []byte) string { return string(orderedMillis(at)) + string(key) }

// push adds a timer and reports whether it was new.
func (q *timerQueue) push(at int64, key []byte) bool {
	id := timerID(at, key)
	if _, ok := q.set[id]; ok {
		return false
	}
	q.set[id] = struct{}{}
	heap.Push(&q.h, timerEntry{at: at, key: bytes.Clone(key)})
	return true
}

// remove deletes a timer and reports whether it was there. The heap entry
// goes lazily, when it reaches the top.
func (q *timerQueue) remove(at int64, key []byte) bool {
	id := timerID(at, key)
	if _, ok := q.set[id]; !ok {
		return false
	}
	delete(q.set, id)
	return true
}

// popDue removes and returns the earliest live timer at or before upTo.
func (q *timerQueue) popDue(upTo int64) (int64, []byte, bool) {
	for len(q.h) > 0 && q.h[0].at <= upTo {
		e := heap.Pop(&q.h).(timerEntry)
		id := timerID(e.at, e.key)
		if _, live := q.set[id]; !live {
			continue // deleted
		}
		delete(q.set, id)
		return e.at, e.key, true
	}
	return 0, nil, false
}

type timerEntry struct {
	at  int64
	key []byte
}

type timerHeap []timerEntry

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return bytes.Compare(h[i].key, h[j].key) < 0
}
func (h timerHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)   { *h = append(*h, x.(timerEntry)) }
func (h *timerHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// advanceWatermark moves the task's event time to wm (never back) and fires
// the event-time timers it passes, operator by operator in topology order.
//
// Records in flight (see InFlight) hold it: it goes no further than just
// below the earliest of them, and the rest of the way once their results
// are out (flushInFlight).
func (t *Task) advanceWatermark(wm int64) error {
	if len(t.inflight) > 0 {
		t.wmTarget = max(t.wmTarget, wm)
		wm = t.watermarkHold(t.wmTarget)
	}
	if wm <= t.watermark {
		return nil
	}
	t.watermark = wm
	for _, o := range t.timers {
		if err := o.fireDue(EventTime, wm); err != nil {
			return err
		}
	}
	if len(t.inflight) > 0 && t.watermarkHold(t.watermark) < t.watermark {
		// Timers sent records in flight that the watermark has passed
		// already: their results must come out before anything else.
		for _, f := range t.inflight {
			if err := f.Flush(true); err != nil {
				return err
			}
		}
	}
	return nil
}

// fireProcessingTimers fires the processing-time timers the clock passed.
func (t *Task) fireProcessingTimers() error {
	if len(t.timers) == 0 {
		return nil
	}
	now := t.clock.Now().UnixMilli()
	for _, o := range t.timers {
		if err := o.fireDue(ProcessingTime, now); err != nil {
			return err
		}
	}
	return nil
}
