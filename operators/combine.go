package operators

import "github.com/weirstream/weir/engine"

// Combine merges, in each task, the records of in that have the same key
// into one with merge before they go on, as Flink's mini-batch local
// aggregation does ahead of a global one: put it before a KeyBy whose
// keyed operator merges what it gets, and a key with many records in a
// task crosses the repartition topic once per flush instead of once per
// record. Nexmark q5 combines its counts of each window into the window's
// highest so far this way before they are keyed by window.
//
// merge must be associative, and the operator downstream must accept a
// merged record wherever it accepts the records merged into it; the
// records of a key are merged in the order they came. A merged record
// carries the record key of the first of them and the latest of their
// event times.
//
// The records held are not state: they go downstream at every tick of
// the task (every 20 ms), before every barrier, at the end of input, and
// when more than maxHeld keys are held, so a checkpoint never has any
// to keep; keys go in the order their first record came, so that a
// replay of the same records flushed at the same points sends the same
// records. The task's watermark waits behind the earliest event time held,
// so none arrives late downstream. key and merge are user code: an error
// or a panic in either meets the operator's error policy for that record.
func Combine[K comparable, T any](in engine.Stream[T], name string, key func(T) K, merge func(a, b T) T) engine.Stream[T] {
	out := engine.Derive[T](in, in.Job().UniqueName(name))
	in.Subscribe(func(t *engine.Task) (engine.Emit[T], error) {
		down, err := out.Build(t)
		if err != nil {
			return nil, err
		}
		c := &combiner[K, T]{
			task:  t,
			key:   func(v T) (K, error) { return key(v), nil },
			merge: func(p [2]T) (T, error) { return merge(p[0], p[1]), nil },
			guard: t.Guard(out.Name(), engine.ClassError),
			down:  down, stats: t.Stats(out.Name()), held: newHeld[K, engine.Record[T]](),
		}
		t.AddInFlight(c)
		return c.add, nil
	})
	return out
}

// combiner is Combine in one task: the merged records, in the order their
// keys came.
type combiner[K comparable, T any] struct {
	task  *engine.Task
	key   func(T) (K, error)
	merge func([2]T) (T, error)
	guard *engine.Guard
	down  engine.Emit[T]
	stats *engine.OpStats
	held  held[K, engine.Record[T]]
}

func (c *combiner[K, T]) add(r engine.Record[T]) error {
	c.stats.In++
	k, ok, err := engine.Apply(c.guard, c.key, r.Value)
	if !ok {
		return err
	}
	ts := r.Timestamp.UnixMilli()
	if lateInTask(c.task, ts) {
		c.stats.Out++
		return c.down(r)
	}
	h, seen := c.held.at(k, ts)
	if !seen {
		*h = r
		if c.held.full() {
			return c.Flush(false)
		}
		return nil
	}
	v, ok, err := engine.Apply(c.guard, c.merge, [2]T{h.Value, r.Value})
	if !ok {
		return err
	}
	h.Value = v
	if r.Timestamp.After(h.Timestamp) {
		h.Timestamp = r.Timestamp
	}
	return nil
}

// Flush sends every merged record downstream: at each tick and before each
// barrier alike, nothing here waits on anything.
func (c *combiner[K, T]) Flush(bool) error {
	return c.held.flush(func(r *engine.Record[T]) error {
		c.stats.Out++
		return c.down(*r)
	})
}

func (c *combiner[K, T]) Hold() int64 { return c.held.hold }
