package operators

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/state"
)

// JoinTable joins a keyed stream with a table: the latest value per key of
// a (typically compacted) topic, kept in the state store. Each stream
// record is joined with the table's current value of its key, found or
// not (a left join; return an error or filter afterwards for an inner
// one); a table record with a nil value (a tombstone) deletes its key.
//
// The table topic is read by the stream's stage, so it must be partitioned
// like the stream (same partition count, keys partitioned by murmur2 as
// Weir and the Java client do): the count is checked at start, and a
// mismatch is an error then, not wrong results. Within a task, table
// updates and stream records are applied in the order they are fetched;
// there is no timestamp synchronization between the two yet (Kafka
// Streams' max.task.idle.ms).
func JoinTable[K comparable, L, R, OUT any](stream engine.KeyedStream[K, L], table string, rc codec.Codec[R],
	join func(key K, left L, right R, found bool) (OUT, error)) engine.Stream[OUT] {
	out := engine.Derive[OUT](stream.Stream, stream.Job().UniqueName("join:"+table))
	job := stream.Job()
	reg := state.NewRegistry(out.Name())
	values := state.NewValue(reg, "table", rc)
	if err := reg.Err(); err != nil {
		job.TopologyError(err)
	}
	job.AddStatefulOperator(out.Name(), out.Stage())
	stage := stream.Stage()
	src := "table:" + table
	job.AddTableSource(table, src, stage, func(t *engine.Task) (engine.SourceFunc, error) {
		stats := t.Stats(src)
		c := &keyedCtx[K]{task: t, keys: stream.Key}
		return func(r *kgo.Record) error {
			stats.In++
			if err := c.setKey(r.Key, r.Timestamp.UnixMilli()); err != nil {
				return &engine.OperatorError{Operator: src, Err: err}
			}
			if r.Value == nil {
				values.Clear(c)
				return nil
			}
			v, err := rc.Decode(r.Value)
			if err != nil {
				return &engine.OperatorError{Operator: src, Err: fmt.Errorf("decoding table value: %w", err)}
			}
			return values.Set(c, v)
		}, nil
	})
	stream.Subscribe(func(t *engine.Task) (engine.Emit[L], error) {
		opName := out.Name()
		stats := t.Stats(opName)
		down, err := out.Build(t)
		if err != nil {
			return nil, err
		}
		c := &keyedCtx[K]{task: t, keys: stream.Key, guard: t.Guard(opName, engine.ClassError)}
		return func(r engine.Record[L]) error {
			stats.In++
			if err := c.setKey(r.Key, r.Timestamp.UnixMilli()); err != nil {
				return &engine.OperatorError{Operator: opName, Err: err}
			}
			right, found, err := values.Get(c)
			if err != nil {
				return &engine.OperatorError{Operator: opName, Err: err}
			}
			var v OUT
			if ok, err := c.guard.Do(func() error {
				var err error
				v, err = join(c.Key(), r.Value, right, found)
				return err
			}); !ok {
				return err
			}
			stats.Out++
			return down(engine.Record[OUT]{Key: r.Key, Value: v, Timestamp: r.Timestamp})
		}, nil
	})
	return out
}
