package operators

import (
	"fmt"
	"time"

	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/state"
	"github.com/weirstream/weir/windowing"
)

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
	OnTimer(c Context[K], at time.Time, domain engine.TimeDomain, out Collector[OUT]) error
}

// Process applies fn to a keyed stream. Outputs keep the key of the record
// or timer that caused them. name identifies the operator; name stateful
// operators and keep the names stable, since their state is kept under
// them.
func Process[K comparable, IN, OUT any](in engine.KeyedStream[K, IN], name string, fn KeyedProcessFunction[K, IN, OUT]) engine.Stream[OUT] {
	out := engine.Derive[OUT](in.Stream, name)
	job := in.Job()
	reg := state.NewRegistry(out.Name())
	if err := fn.Open(reg); err != nil {
		job.TopologyError(fmt.Errorf("opening %s: %w", out.Name(), err))
	}
	if err := reg.Err(); err != nil {
		job.TopologyError(fmt.Errorf("declaring state of %s: %w", out.Name(), err))
	}
	job.AddStatefulOperator(out.Name(), out.Stage())
	in.Subscribe(func(t *engine.Task) (engine.Emit[IN], error) {
		opName := out.Name()
		stats := t.Stats(opName)
		timers := t.Timers(opName) // before downstream's: see Task.Timers
		down, err := out.Build(t)
		if err != nil {
			return nil, err
		}
		sides, err := out.BuildSides(t)
		if err != nil {
			return nil, err
		}
		c := &keyedCtx[K]{task: t, keys: in.Key, sides: sides, timers: timers, guard: t.Guard(opName, engine.ClassError)}
		col := &keyedCollector[K, OUT]{ctx: c, down: down, stats: stats}
		timers.OnFire(func(key []byte, at windowing.Millis, domain engine.TimeDomain) error {
			if err := c.setKey(key, int64(at)); err != nil {
				return &engine.OperatorError{Operator: opName, Err: err}
			}
			col.err = nil
			_, err := c.guard.Do(func() error { return fn.OnTimer(c, time.UnixMilli(int64(at)), domain, col) })
			if col.err != nil {
				return col.err
			}
			return err
		})
		return func(r engine.Record[IN]) error {
			stats.In++
			if err := c.setKey(r.Key, r.Timestamp.UnixMilli()); err != nil {
				return &engine.OperatorError{Operator: opName, Err: err}
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
