package engine

import (
	"fmt"
	"time"

	"github.com/weirstream/weir/state"
)

// Collector receives the records an operator emits while it handles one
// input record or timer. It is valid only during that call.
type Collector[T any] interface {
	// Collect emits v under the current record's key and event time.
	Collect(v T) error
}

// TimestampedCollector is a Collector that can also stamp an output with
// an event time of its own: a join's result with the later of its two
// sides' times, say, rather than the time of the side that came last.
// Process functions' collectors are; use CollectAt.
type TimestampedCollector[T any] interface {
	Collector[T]
	// CollectAt emits v under the current key, at event time ts. An
	// output stamped behind the watermark is late for the operators
	// after this one.
	CollectAt(v T, ts time.Time) error
}

// CollectAt emits v at event time ts through out, which must be a
// TimestampedCollector.
func CollectAt[T any](out Collector[T], v T, ts time.Time) error {
	tc, ok := out.(TimestampedCollector[T])
	if !ok {
		return fmt.Errorf("engine: CollectAt: %T cannot stamp its outputs", out)
	}
	return tc.CollectAt(v, ts)
}

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

// TimerService registers and deletes the current key's timers. Timers are
// kept in the state store with the rest of the task's state, so they
// survive restarts; registering the same (key, time) twice keeps one timer,
// as in Flink.
type TimerService interface {
	RegisterEventTimeTimer(at time.Time)
	RegisterProcessingTimeTimer(at time.Time)
	DeleteEventTimeTimer(at time.Time)
	DeleteProcessingTimeTimer(at time.Time)
}

// Context is what a keyed process function sees of the record or timer it
// handles: the key, the times, timers and, being a state.Scope, the key's
// state. It is valid only during the call it is passed to.
type Context[K comparable] interface {
	state.Scope
	// Key is the current key.
	Key() K
	// Timestamp is the record's event time, or the timer's time in OnTimer.
	Timestamp() time.Time
	// Watermark is the task's current event-time watermark: no record
	// older than it is expected any more.
	Watermark() time.Time
	// Timers registers timers for the current key.
	Timers() TimerService
	// SideOutput serves OutputTag.Emit.
	SideEmitter
}

// KeyedProcessFunction is the lowest-level keyed operator, Flink's
// KeyedProcessFunction: it sees every record of a key with the key's state
// and timers, and emits any number of outputs.
//
// One value serves every task of the job, from several goroutines: keep
// per-key data in state handles (declared in Open), not in fields.
type KeyedProcessFunction[K comparable, IN, OUT any] interface {
	// Open declares the function's state. It runs once, when the job is
	// built; an error fails the job at start.
	Open(r *state.Registry) error
	// Process handles one record.
	Process(c Context[K], in IN, out Collector[OUT]) error
	// OnTimer handles a timer of the current key, at its time, in the
	// given domain. Timers of a task fire in time order, then key order.
	OnTimer(c Context[K], at time.Time, domain TimeDomain, out Collector[OUT]) error
}

// Process applies fn to a keyed stream. Outputs keep the key of the record
// or timer that caused them.
func Process[K comparable, IN, OUT any](in KeyedStream[K, IN], name string, fn KeyedProcessFunction[K, IN, OUT]) Stream[OUT] {
	out := Derive[OUT](in.Stream, name)
	job := in.job
	reg := state.NewRegistry(out.Name())
	if err := fn.Open(reg); err != nil {
		job.buildErr(fmt.Errorf("opening %s: %w", out.Name(), err))
	}
	if err := reg.Err(); err != nil {
		job.buildErr(fmt.Errorf("declaring state of %s: %w", out.Name(), err))
	}
	job.AddStatefulOperator(out.Name(), out.n.stage)
	in.Subscribe(func(t *Task) (Emit[IN], error) {
		opName := out.Name()
		stats := t.Stats(opName)
		timers := t.timerOwner(opName, nil) // before downstream's: see timerOwner
		down, err := out.Build(t)
		if err != nil {
			return nil, err
		}
		sides, err := buildSides(t, out.n)
		if err != nil {
			return nil, err
		}
		c := &keyedCtx[K]{task: t, keys: in.Key, sides: sides, timers: timers, guard: t.Guard(opName, ClassError)}
		col := &keyedCollector[OUT]{ctx: &c.rec, down: down, stats: stats}
		timers.fire = func(key []byte, at int64, domain TimeDomain) error {
			if err := c.setKey(key, at); err != nil {
				return &OperatorError{Operator: opName, Err: err}
			}
			col.err = nil
			_, err := c.guard.Do(func() error { return fn.OnTimer(c, time.UnixMilli(at), domain, col) })
			if col.err != nil {
				return col.err
			}
			return err
		}
		return func(r Record[IN]) error {
			stats.In++
			if err := c.setKey(r.Key, r.Timestamp.UnixMilli()); err != nil {
				return &OperatorError{Operator: opName, Err: err}
			}
			c.rec.Timestamp = r.Timestamp
			col.err = nil
			_, err := c.guard.Do(func() error { return fn.Process(c, r.Value, col) })
			if col.err != nil {
				return col.err // a failure downstream keeps its operator's name
			}
			return err
		}, nil
	})
	return out
}

// keyedCtx is the Context of one keyed operator in one task, reset for
// each record and timer.
type keyedCtx[K comparable] struct {
	task   *Task
	keys   interface{ Decode([]byte) (K, error) }
	timers *timerOwner
	rec    Record[struct{}] // current key and time
	key    K
	sides  map[string]any // side-output emitters by tag
	ns     []byte         // state namespace, e.g. a window; nil for plain keyed state
	// guard runs the operator's user code (see Guard).
	guard *Guard
}

func (c *keyedCtx[K]) SideOutput(id string) (any, Record[struct{}]) { return c.sides[id], c.rec }

// setKey makes key (encoded) and ts current. A key that does not decode
// fails the record: a keyed operator must never see a wrong key.
func (c *keyedCtx[K]) setKey(key []byte, ts int64) error {
	c.rec.Key, c.rec.Timestamp = key, time.UnixMilli(ts)
	k, err := c.keys.Decode(key)
	if err != nil {
		return fmt.Errorf("decoding key %q: %w", key, err)
	}
	c.key = k
	return nil
}

func (c *keyedCtx[K]) Key() K { return c.key }

func (c *keyedCtx[K]) Timestamp() time.Time        { return c.rec.Timestamp }
func (c *keyedCtx[K]) Watermark() time.Time        { return watermarkTime(c.task.watermark) }
func (c *keyedCtx[K]) Timers() TimerService        { return timerService{c.timers, c.rec.Key} }
func (c *keyedCtx[K]) TaskStore() *state.TaskStore { return c.task.store }
func (c *keyedCtx[K]) CurrentKey() []byte          { return c.rec.Key }
func (c *keyedCtx[K]) Namespace() []byte           { return c.ns }
func (c *keyedCtx[K]) ProcessingTime() time.Time   { return c.task.clock.Now() }

type keyedCollector[T any] struct {
	ctx   *Record[struct{}]
	down  Emit[T]
	stats *OpStats
	err   error
}

func (c *keyedCollector[T]) Collect(v T) error { return c.CollectAt(v, c.ctx.Timestamp) }

func (c *keyedCollector[T]) CollectAt(v T, ts time.Time) error {
	c.stats.Out++
	if err := c.down(Record[T]{Key: c.ctx.Key, Value: v, Timestamp: ts}); err != nil {
		if c.err == nil {
			c.err = err
		}
		return err
	}
	return nil
}
