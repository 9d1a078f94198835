package operators

import (
	"fmt"
	"sync"

	"github.com/weirstream/weir/engine"
)

// Union merges streams of one type into one, as Flink's DataStream.union:
// every record of every input, each keeping its key and event time, in
// the order each task processes them. The inputs must be in one stage
// (sources of the job's first stage, or streams keyed into one stage with
// KeyByBoth); their watermark is the task's, the least of its inputs'. The
// union has event time only if every input has.
func Union[T any](first engine.Stream[T], more ...engine.Stream[T]) engine.Stream[T] {
	ins := append([]engine.Stream[T]{first}, more...)
	job := first.Job()
	base := first
	for _, in := range ins {
		if !in.EventTime() {
			base = in // the union has event time only if every input has
			break
		}
	}
	out := engine.Derive[T](base, job.UniqueName("union"))
	for _, in := range ins[1:] {
		if in.Stage() != first.Stage() {
			job.TopologyError(fmt.Errorf("%s: %s is in stage %d and %s in stage %d; a union reads one stage (key the streams into one with KeyByBoth)",
				out.Name(), first.Name(), first.Stage(), in.Name(), in.Stage()))
		}
	}
	// The union's downstream operators are built once per task, by the
	// first input built there, and shared with the others.
	var mu sync.Mutex
	type built struct {
		down engine.Emit[T]
		left int // inputs still to take it
	}
	byTask := map[*engine.Task]*built{}
	for _, in := range ins {
		in.Subscribe(func(t *engine.Task) (engine.Emit[T], error) {
			mu.Lock()
			defer mu.Unlock()
			b, ok := byTask[t]
			if !ok {
				down, err := out.Build(t)
				if err != nil {
					return nil, err
				}
				b = &built{down: down, left: len(ins)}
				byTask[t] = b
			}
			if b.left--; b.left == 0 {
				delete(byTask, t)
			}
			stats := t.Stats(out.Name())
			down := b.down
			return func(r engine.Record[T]) error {
				stats.In++
				stats.Out++
				return down(r)
			}, nil
		})
	}
	return out
}
