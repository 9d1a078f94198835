package operators

import (
	"fmt"
	"sync"
	"time"

	"github.com/weirstream/weir/engine"
)

// perTask shares one operator instance between a two-input operator's
// subscriptions in a task: the first input built there makes it with
// build, the second takes it away.
func perTask[J any](build func(*engine.Task) (J, error)) func(*engine.Task) (J, error) {
	var built sync.Map // *engine.Task -> J
	return func(t *engine.Task) (J, error) {
		if j, ok := built.LoadAndDelete(t); ok {
			return j.(J), nil
		}
		j, err := build(t)
		if err == nil {
			built.Store(t, j)
		}
		return j, err
	}
}

// input is what the two-input checks read of a stream.
type input interface {
	Name() string
	Stage() int
	EventTime() bool
}

// checkTwoInputs reports, as topology errors of operator out (a what),
// two inputs one task does not see together and, when the operator is in
// event time, an input without watermarks.
func checkTwoInputs(job *engine.Job, out, what string, eventTime bool, left, right input) {
	if eventTime {
		for _, side := range []input{left, right} {
			if !side.EventTime() {
				job.TopologyError(fmt.Errorf("%s: %s needs watermarks on both inputs, and %s has none: give its source connectors.WithWatermarks", out, what, side.Name()))
			}
		}
	}
	if left.Stage() != right.Stage() {
		job.TopologyError(fmt.Errorf("%s: the two streams are in stages %d and %d; key them together (operators.KeyByBoth) so one task sees both", out, left.Stage(), right.Stage()))
	}
}

// pairs emits a join's results: user code through the guard, each output
// under the current key at the given event time.
type pairs[K comparable, L, R, OUT any] struct {
	c     *keyedCtx[K]
	join  func(K, L, R) (OUT, error)
	down  engine.Emit[OUT]
	stats *engine.OpStats
}

func (p *pairs[K, L, R, OUT]) emit(l L, r R, ts int64) error {
	var out OUT
	if ok, err := p.c.guard.Do(func() error {
		var err error
		out, err = p.join(p.c.Key(), l, r)
		return err
	}); !ok {
		return err
	}
	p.stats.Out++
	return p.down(engine.Record[OUT]{Key: p.c.rec.Key, Value: out, Timestamp: time.UnixMilli(ts)})
}
