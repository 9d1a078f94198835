// Map, Filter and FlatMap: the stateless, per-record operators. Each runs
// inside the task that owns the record, one record at a time, in offset
// order.
//
// User functions return errors rather than panic. What happens to a record
// whose function fails is the operator's error policy (engine.OnError,
// else the job's): under fail an error names the record and stops the task
// at it; dead-letter and skip drop the record at this operator and go on.
// An error marked engine.Retryable is retried first. A panic in a user
// function is recovered and treated as an error, so it never takes the
// process down.

package operators

import (
	"time"

	"github.com/weirstream/weir/engine"
)

// Option configures Map, Filter and FlatMap.
type Option[T any] func(*config[T])

type config[T any] struct {
	invalid *engine.OutputTag[T]
}

// Invalid routes the records the operator's function fails on (an error or
// a panic, after any retries) to the side output tag, instead of the error
// policy: a validating Map sends what it rejects aside, and
// engine.SideOutput(stream, tag) reads it, under its key and event time.
func Invalid[T any](tag engine.OutputTag[T]) Option[T] {
	return func(c *config[T]) { c.invalid = &tag }
}

// invalidRoute sets up g to divert failures to the Invalid side output of
// the operator, if the options ask for one, and reports whether it did;
// cur is the record in hand (which the operator then keeps up to date),
// and sides builds (or returns) the operator's side outputs in the task.
func invalidRoute[T any](g *engine.Guard, opts []Option[T], cur *engine.Record[T], sides func() (engine.SideOutputs, error)) (bool, error) {
	var c config[T]
	for _, o := range opts {
		o(&c)
	}
	if c.invalid == nil {
		return false, nil
	}
	ss, err := sides()
	if err != nil {
		return false, err
	}
	tag := *c.invalid
	g.Divert(func(error) error {
		return tag.Emit(sideCtx{sides: ss, rec: engine.Record[struct{}]{Key: cur.Key, Timestamp: cur.Timestamp}}, cur.Value)
	})
	return true, nil
}

// sideCtx serves OutputTag.Emit for a record in hand.
type sideCtx struct {
	sides engine.SideOutputs
	rec   engine.Record[struct{}]
}

func (s sideCtx) SideOutput(id string) (any, engine.Record[struct{}]) {
	return s.sides.Lookup(id), s.rec
}

// Map applies fn to every record's value. The key and event time pass
// through unchanged.
func Map[T, U any](in engine.Stream[T], fn func(T) (U, error), opts ...Option[T]) engine.Stream[U] {
	out := engine.Derive[U](in, in.Job().UniqueName("map"))
	in.Subscribe(func(t *engine.Task) (engine.Emit[T], error) {
		name := out.Name()
		stats := t.Stats(name)
		down, err := out.Build(t)
		if err != nil {
			return nil, err
		}
		g := t.Guard(name, engine.ClassError)
		var cur engine.Record[T]
		track, err := invalidRoute(g, opts, &cur, func() (engine.SideOutputs, error) { return out.BuildSides(t) })
		if err != nil {
			return nil, err
		}
		return func(r engine.Record[T]) (err error) {
			stats.In++
			if track {
				cur = r
			}
			u, ok, err := engine.Apply(g, fn, r.Value)
			if !ok {
				return err
			}
			stats.Out++
			return down(engine.Record[U]{Key: r.Key, Value: u, Timestamp: r.Timestamp})
		}, nil
	})
	return out
}

// Filter keeps the records for which keep returns true. A panic in keep
// is a failure (see Invalid).
func Filter[T any](in engine.Stream[T], keep func(T) bool, opts ...Option[T]) engine.Stream[T] {
	out := engine.Derive[T](in, in.Job().UniqueName("filter"))
	in.Subscribe(func(t *engine.Task) (engine.Emit[T], error) {
		name := out.Name()
		stats := t.Stats(name)
		down, err := out.Build(t)
		if err != nil {
			return nil, err
		}
		pred := func(v T) (bool, error) { return keep(v), nil }
		g := t.Guard(name, engine.ClassError)
		var cur engine.Record[T]
		track, err := invalidRoute(g, opts, &cur, func() (engine.SideOutputs, error) { return out.BuildSides(t) })
		if err != nil {
			return nil, err
		}
		return func(r engine.Record[T]) error {
			stats.In++
			if track {
				cur = r
			}
			keep, ok, err := engine.Apply(g, pred, r.Value)
			if !ok || !keep {
				return err
			}
			stats.Out++
			return down(r)
		}, nil
	})
	return out
}

// FlatMap calls fn once per record; fn emits zero or more values through
// the collector, each under the input's key and event time.
func FlatMap[T, U any](in engine.Stream[T], fn func(T, Collector[U]) error, opts ...Option[T]) engine.Stream[U] {
	out := engine.Derive[U](in, in.Job().UniqueName("flatmap"))
	in.Subscribe(func(t *engine.Task) (engine.Emit[T], error) {
		name := out.Name()
		stats := t.Stats(name)
		down, err := out.Build(t)
		if err != nil {
			return nil, err
		}
		sides, err := out.BuildSides(t)
		if err != nil {
			return nil, err
		}
		c := &collector[U]{down: down, stats: stats, sides: sides}
		g := t.Guard(name, engine.ClassError)
		var cur engine.Record[T]
		track, err := invalidRoute(g, opts, &cur, func() (engine.SideOutputs, error) { return sides, nil })
		if err != nil {
			return nil, err
		}
		call := func(v T) (struct{}, error) { return struct{}{}, fn(v, c) }
		return func(r engine.Record[T]) error {
			stats.In++
			if track {
				cur = r
			}
			c.key, c.ts = r.Key, r.Timestamp
			c.downErr = nil
			_, _, err := engine.Apply(g, call, r.Value)
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
	sides   engine.SideOutputs
	key     []byte
	ts      time.Time
	downErr error
}

// SideOutput serves engine.OutputTag.Emit: a FlatMap function can route
// records (invalid ones, say) to a side output of its collector.
func (c *collector[U]) SideOutput(id string) (any, engine.Record[struct{}]) {
	return c.sides.Lookup(id), engine.Record[struct{}]{Key: c.key, Timestamp: c.ts}
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
