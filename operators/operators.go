// Package operators holds the stateless, per-record transformations of a
// stream: Map, Filter and FlatMap. Each runs inside the task that owns the
// record, one record at a time, in offset order.
//
// User functions return errors rather than panic; an error names the
// record that caused it and stops the task at that record under the fail
// policy. A panic in a user function is recovered and treated the same way,
// so it never takes the process down.
package operators

import (
	"fmt"
	"time"

	"github.com/weirstream/weir/engine"
)

// Map applies fn to every record's value. The key and event time pass
// through unchanged.
func Map[T, U any](in engine.Stream[T], fn func(T) (U, error)) engine.Stream[U] {
	out := engine.Derive[U](in, "map")
	in.Subscribe(func(t *engine.Task) (engine.Emit[T], error) {
		name := out.Name()
		stats := t.Stats(name)
		down, err := out.Build(t)
		if err != nil {
			return nil, err
		}
		return func(r engine.Record[T]) (err error) {
			stats.In++
			u, err := call1(name, fn, r.Value)
			if err != nil {
				return err
			}
			stats.Out++
			return down(engine.Record[U]{Key: r.Key, Value: u, Timestamp: r.Timestamp})
		}, nil
	})
	return out
}

// Filter keeps the records for which keep returns true.
func Filter[T any](in engine.Stream[T], keep func(T) bool) engine.Stream[T] {
	out := engine.Derive[T](in, "filter")
	in.Subscribe(func(t *engine.Task) (engine.Emit[T], error) {
		name := out.Name()
		stats := t.Stats(name)
		down, err := out.Build(t)
		if err != nil {
			return nil, err
		}
		pred := func(v T) (bool, error) { return keep(v), nil }
		return func(r engine.Record[T]) error {
			stats.In++
			ok, err := call1(name, pred, r.Value)
			if err != nil || !ok {
				return err
			}
			stats.Out++
			return down(r)
		}, nil
	})
	return out
}

// Collector receives the records an operator emits for one input record.
// It is valid only during the call it is passed to.
type Collector[T any] = engine.Collector[T]

// FlatMap calls fn once per record; fn emits zero or more values through
// the collector, each under the input's key and event time.
func FlatMap[T, U any](in engine.Stream[T], fn func(T, Collector[U]) error) engine.Stream[U] {
	out := engine.Derive[U](in, "flatmap")
	in.Subscribe(func(t *engine.Task) (engine.Emit[T], error) {
		name := out.Name()
		stats := t.Stats(name)
		down, err := out.Build(t)
		if err != nil {
			return nil, err
		}
		c := &collector[U]{down: down, stats: stats}
		return func(r engine.Record[T]) error {
			stats.In++
			c.key, c.ts = r.Key, r.Timestamp
			c.downErr = nil
			_, err := call1(name, func(v T) (struct{}, error) { return struct{}{}, fn(v, c) }, r.Value)
			if c.downErr != nil {
				// A failure further down keeps its own operator's name.
				return c.downErr
			}
			return err
		}, nil
	})
	return out
}

type collector[U any] struct {
	down    engine.Emit[U]
	stats   *engine.OpStats
	key     []byte
	ts      time.Time
	downErr error
}

func (c *collector[U]) Collect(v U) error {
	c.stats.Out++
	if err := c.down(engine.Record[U]{Key: c.key, Value: v, Timestamp: c.ts}); err != nil {
		if c.downErr == nil {
			c.downErr = err
		}
		return err
	}
	return nil
}

// call1 calls a user function, turning an error or a panic into an
// *engine.OperatorError naming the operator.
func call1[T, U any](op string, fn func(T) (U, error), v T) (u U, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &engine.OperatorError{Operator: op, Err: fmt.Errorf("panic: %v", p)}
		}
	}()
	u, err = fn(v)
	if err != nil {
		return u, &engine.OperatorError{Operator: op, Err: err}
	}
	return u, nil
}
