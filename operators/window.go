package operators

import (
	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/windowing"
)

// AggregateFunction aggregates a window incrementally; see engine.AggregateFunction.
type AggregateFunction[IN, ACC, OUT any] = engine.AggregateFunction[IN, ACC, OUT]

// Windowed is a window's result for one key.
type Windowed[K comparable, OUT any] = engine.Windowed[K, OUT]

// WindowAggregate aggregates each key's records per window (tumbling,
// sliding or session, from package windowing) and emits each window's
// result when the watermark passes its end. See engine.WindowAggregate.
func WindowAggregate[K comparable, IN, ACC, OUT any](in engine.KeyedStream[K, IN], name string, assigner windowing.Assigner,
	fn AggregateFunction[IN, ACC, OUT], acc codec.Codec[ACC], opts ...engine.WindowOpt[IN]) engine.Stream[Windowed[K, OUT]] {
	return engine.WindowAggregate(in, name, assigner, fn, acc, opts...)
}

// Count is the aggregate function counting records.
type Count[IN any] struct{}

func (Count[IN]) Zero() int64               { return 0 }
func (Count[IN]) Add(acc int64, _ IN) int64 { return acc + 1 }
func (Count[IN]) Merge(a, b int64) int64    { return a + b }
func (Count[IN]) Result(acc int64) int64    { return acc }

// ProcessWindowFunction sees all of a window's records at once.
type ProcessWindowFunction[K comparable, IN, OUT any] = engine.ProcessWindowFunction[K, IN, OUT]

// WindowProcess applies a process window function per key and window. See
// engine.WindowProcess.
func WindowProcess[K comparable, IN, OUT any](in engine.KeyedStream[K, IN], name string, assigner windowing.Assigner,
	fn ProcessWindowFunction[K, IN, OUT], c codec.Codec[IN], opts ...engine.WindowOpt[IN]) engine.Stream[Windowed[K, OUT]] {
	return engine.WindowProcess(in, name, assigner, fn, c, opts...)
}

// WithTrigger sets when windows fire; see engine.WithTrigger.
func WithTrigger[IN any](t windowing.Trigger) engine.WindowOpt[IN] { return engine.WithTrigger[IN](t) }
