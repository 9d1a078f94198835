package weirtest

import (
	"time"

	"github.com/weirstream/weir/engine"
)

// Captured holds what a stream carried, for a test to read without a sink
// or a codec: a job's main output, or a side output.
type Captured[T any] struct {
	recs []Captive[T]
}

// Captive is one captured record.
type Captive[T any] struct {
	Key       string
	Value     T
	Timestamp time.Time
	// Task is the task that carried it.
	Task engine.TaskID
}

// Capture subscribes to s and keeps every record it carries. Call it while
// building the job, before New.
func Capture[T any](s engine.Stream[T]) *Captured[T] {
	c := &Captured[T]{}
	s.Subscribe(func(t *engine.Task) (engine.Emit[T], error) {
		id := t.ID()
		return func(r engine.Record[T]) error {
			c.recs = append(c.recs, Captive[T]{Key: string(r.Key), Value: r.Value, Timestamp: r.Timestamp, Task: id})
			return nil
		}, nil
	})
	return c
}

// Take returns the records captured since the last Take.
func (c *Captured[T]) Take() []Captive[T] {
	out := c.recs
	c.recs = nil
	return out
}
