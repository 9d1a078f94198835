package shared

import (
	"time"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/state"
)

// BuildCounter is a keyed counter: each input value is a key, records go
// through a repartition topic by it, and each emits its key's count so far
// (value state). Its state is one counter per distinct key, whatever the
// input's length: what grows with a backlog is the engine's, not the job's.
func BuildCounter(job *engine.Job, in, out string) {
	src := connectors.KafkaSource(job, in, codec.String())
	byKey := operators.KeyBy(src, func(s string) string { return s }, operators.KeyByName("by-key"))
	counts := operators.Process(byKey, "counts", &counter{})
	connectors.KafkaSink(counts, out, codec.JSON[int64]())
}

type counter struct{ n *state.Value[int64] }

func (c *counter) Open(r *state.Registry) error {
	c.n = state.NewValue(r, "n", codec.JSON[int64]())
	return nil
}

func (c *counter) Process(ctx operators.Context[string], _ string, out operators.Collector[int64]) error {
	n, _, err := c.n.Get(ctx)
	if err != nil {
		return err
	}
	if err := c.n.Set(ctx, n+1); err != nil {
		return err
	}
	return out.Collect(n + 1)
}

func (c *counter) OnTimer(operators.Context[string], time.Time, engine.TimeDomain, operators.Collector[int64]) error {
	return nil
}
