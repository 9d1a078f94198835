package engine

// This file owns operators that keep records in flight (operators.AsyncMap):
// work started for a record runs elsewhere while the task goes on, and its
// result is emitted later from the task's goroutine. The task flushes them
// at ticks, before barriers and at the end of input, and holds its
// watermark behind the earliest record in flight, so no result arrives
// late downstream, as Flink's AsyncWaitOperator holds watermarks behind
// its pending results.

import (
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/observe"
	"github.com/weirstream/weir/windowing"
)

// InFlight is an operator that keeps records in flight across calls. Its
// methods are called from the task's goroutine.
type InFlight interface {
	// Flush emits the results that are ready; with wait, it first waits
	// for every record in flight, so that none is left.
	Flush(wait bool) error
	// Hold returns the earliest event time (Unix ms) among the records in
	// flight, windowing.MaxMillis with none: the task's watermark stays
	// below it until they are out.
	Hold() int64
}

// AddInFlight registers f with the task: it is flushed at every tick (what
// is ready), before each barrier and at the end of input (everything), and
// the task's watermark waits behind its Hold. Call it when building the
// task.
func (t *Task) AddInFlight(f InFlight) { t.inflight = append(t.inflight, f) }

// flushInFlight flushes every in-flight operator of the task, then lets
// the watermark catch up with what their results released.
func (t *Task) flushInFlight(wait bool) error {
	if len(t.inflight) == 0 {
		return nil
	}
	for _, f := range t.inflight {
		if err := f.Flush(wait); err != nil {
			return err
		}
	}
	return t.advanceWatermark(t.wmTarget)
}

// watermarkHold caps wm below the records in flight.
func (t *Task) watermarkHold(wm int64) int64 {
	for _, f := range t.inflight {
		if h := f.Hold(); h != int64(windowing.MaxMillis) && h-1 < wm {
			wm = h - 1
		}
	}
	return wm
}

// InHand is the input record a task was handling when an operator took it
// in flight: the operator keeps it, so that a failure met later is
// dead-lettered as that record (see Guard.FailInHand).
type InHand struct{ r *kgo.Record }

// InHand returns the input record the task is handling.
func (t *Task) InHand() InHand { return InHand{t.cur} }

// FailInHand applies g's error policy to err, which record h met after
// the task went on (a call in flight that failed): nil when the policy
// dead-lettered or skipped it, an error when the task must stop. attempts
// is how many calls were made. It counts for the circuit breaker as a
// failed record.
func (g *Guard) FailInHand(h InHand, err error, attempts int) error {
	return g.t.RunInHand(h, func() error {
		class := g.class
		if isPanic(err) {
			class = ClassPanic
		}
		return g.fail(class, err, attempts)
	})
}

// RunInHand runs fn with h as the record in hand, as if the task were
// handling it again: what fn emits carries its provenance, and a failure
// downstream dead-letters it. An operator emits a result of work in
// flight so.
func (t *Task) RunInHand(h InHand, fn func() error) error {
	prev := t.cur
	t.cur = h.r
	defer func() { t.cur = prev }()
	if t.trace != nil && h.r != nil {
		origin, path := t.trace.origin, t.trace.path
		t.trace.enter(h.r)
		defer func() { t.trace.origin, t.trace.path = origin, path }()
	}
	return fn()
}

// Succeeded counts a record whose work in flight succeeded, for the
// circuit breaker.
func (g *Guard) Succeeded() { g.count(false) }

// Panicked wraps a value recovered from a panic in user code run outside
// the guard (in flight) as the error the guard classes as a panic.
func Panicked(p any) error { return &panicError{p} }

// Observer is what the task reports to (metrics): an operator with work
// in flight reports its calls there, from any goroutine.
func (t *Task) Observer() observe.Observer { return t.obs }
