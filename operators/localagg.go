package operators

import (
	"encoding/binary"
	"fmt"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/state"
	"github.com/weirstream/weir/windowing"
)

// TwoPhaseWindowAggregate aggregates in's records per key and window of
// assigner in two phases, as Flink SQL's local-global window aggregation
// does: each task first folds its records into an accumulator per key and
// slice of the windows (the window itself for tumbling windows) in
// memory, and only these partial accumulators are repartitioned by key,
// where WindowAggregate merges them into each window's accumulator. A key
// with a thousand records in a slice crosses the repartition topic once
// per flush instead of a thousand times.
//
// The results are WindowAggregate's over KeyBy(in, key): fn.Merge must
// combine any two accumulators exactly (a sum, a count, a maximum), and
// fn.Merge(fn.Zero(), a) must be a.
//
// The partial accumulators are not state: they go downstream at every
// tick of the task (every 20 ms), before every barrier, and when more
// than maxHeld are held, so a checkpoint never has any to keep. The
// task's watermark waits behind those it holds, so none arrives late
// downstream. The assigner must be event-time Tumbling or Sliding windows;
// options apply to the window aggregation (WithTrigger excepted: a count
// or a continuous trigger would see partial accumulators, not records).
// Late records are sent on in the partials and judged late downstream;
// its late output holds those partials.
func TwoPhaseWindowAggregate[K comparable, IN, ACC, OUT any](in engine.Stream[IN], name string, key func(IN) K, keyCodec codec.Codec[K],
	assigner windowing.Assigner, fn state.AggregateFunction[IN, ACC, OUT], acc codec.Codec[ACC], opts ...WindowOpt) engine.Stream[Windowed[K, OUT]] {
	job := in.Job()
	local := engine.Derive[Partial[K, ACC]](in, name+"-local")
	if err := twoPhaseAssigner(assigner); err != nil {
		job.TopologyError(fmt.Errorf("%s: %w", name, err))
	}
	var o windowOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.trigger != (windowing.Trigger{}) {
		job.TopologyError(fmt.Errorf("%s: a two-phase window aggregation fires at the windows' end: WithTrigger would count or time partial accumulators, not records", name))
	}
	slicing, sliced := windowing.SlicingOf(assigner)
	in.Subscribe(func(t *engine.Task) (engine.Emit[IN], error) {
		down, err := local.Build(t)
		if err != nil {
			return nil, err
		}
		p := &localAgg[K, IN, ACC, OUT]{task: t, fn: fn, key: key, assigner: assigner, down: down, stats: t.Stats(local.Name()),
			partials: newHeld[partialKey[K], partialEntry[K, ACC]]()}
		if sliced {
			p.slicing = &slicing
		}
		t.AddInFlight(p)
		return p.add, nil
	})
	keyed := KeyBy(local, func(p Partial[K, ACC]) K { return p.Key },
		KeyByName(name+"-by-key"), KeyByCodecs(keyCodec, codec.Codec[Partial[K, ACC]](partialCodec[K, ACC]{kc: keyCodec, ac: acc})))
	return WindowAggregate(keyed, name, assigner, mergePartials[K, IN, ACC, OUT]{fn}, acc, append([]WindowOpt{SliceWindows()}, opts...)...)
}

// twoPhaseAssigner says why a cannot be aggregated in two phases, if so.
func twoPhaseAssigner(a windowing.Assigner) error {
	if err := windowing.ValidateAssigner(a); err != nil {
		return err
	}
	ws := a.Assign(nil, 0)
	switch {
	case a.Merging():
		return fmt.Errorf("session windows cannot be aggregated in two phases: a session is known only once all its records are together")
	case len(ws) == 1 && ws[0] == windowing.GlobalWindow:
		return fmt.Errorf("a global window cannot be aggregated in two phases: it never ends")
	case !windowing.IsEventTime(a):
		return fmt.Errorf("processing-time windows cannot be aggregated in two phases: the second phase would assign by its own clock")
	}
	return nil
}

// Partial is a partial accumulator of a two-phase window aggregation
// (TwoPhaseWindowAggregate): a key's records of one slice of the windows,
// in one task, between two flushes. Its event time is the slice's last
// millisecond, so the second phase assigns it to the windows that hold
// the slice.
type Partial[K comparable, ACC any] struct {
	Key K   `json:"key"`
	Acc ACC `json:"acc"`
}

// partialKey is a partial's key in a task: the record key and the slice.
type partialKey[K comparable] struct {
	key   K
	slice windowing.Window
}

// localAgg is the first phase in one task: the partial accumulators, in
// the order their keys came, so that a replay of the same records flushed
// at the same points emits the same records.
type localAgg[K comparable, IN, ACC, OUT any] struct {
	task     *engine.Task
	fn       state.AggregateFunction[IN, ACC, OUT]
	key      func(IN) K
	assigner windowing.Assigner
	slicing  *windowing.Slicing // nil: a record's one window is its slice
	down     engine.Emit[Partial[K, ACC]]
	stats    *engine.OpStats
	buf      []windowing.Window
	partials held[partialKey[K], partialEntry[K, ACC]]
}

type partialEntry[K comparable, ACC any] struct {
	pk  partialKey[K]
	acc ACC
}

func (p *localAgg[K, IN, ACC, OUT]) add(r engine.Record[IN]) error {
	p.stats.In++
	ts := windowing.MillisOf(r.Timestamp)
	var slice windowing.Window
	if p.slicing != nil {
		slice = p.slicing.SliceOf(ts)
	} else {
		p.buf = p.assigner.Assign(p.buf[:0], ts)
		switch len(p.buf) {
		case 0:
			return nil // in no window
		case 1:
			slice = p.buf[0]
		default:
			return fmt.Errorf("two-phase window aggregation: the record at %v is in %d windows that cannot be sliced", r.Timestamp, len(p.buf))
		}
	}
	pk := partialKey[K]{key: p.key(r.Value), slice: slice}
	if lateInTask(p.task, int64(slice.MaxTimestamp())) {
		p.stats.Out++
		return p.down(engine.Record[Partial[K, ACC]]{
			Value: Partial[K, ACC]{Key: pk.key, Acc: p.fn.Add(p.fn.Zero(), r.Value)}, Timestamp: slice.MaxTimestamp().Time(),
		})
	}
	e, ok := p.partials.at(pk, int64(slice.MaxTimestamp()))
	if !ok {
		*e = partialEntry[K, ACC]{pk: pk, acc: p.fn.Zero()}
	}
	e.acc = p.fn.Add(e.acc, r.Value)
	if p.partials.full() {
		return p.Flush(false)
	}
	return nil
}

// Flush sends every partial accumulator downstream: at each tick and
// before each barrier alike, nothing here waits on anything.
func (p *localAgg[K, IN, ACC, OUT]) Flush(bool) error {
	return p.partials.flush(func(e *partialEntry[K, ACC]) error {
		p.stats.Out++
		return p.down(engine.Record[Partial[K, ACC]]{
			Value: Partial[K, ACC]{Key: e.pk.key, Acc: e.acc}, Timestamp: e.pk.slice.MaxTimestamp().Time(),
		})
	})
}

func (p *localAgg[K, IN, ACC, OUT]) Hold() int64 { return p.partials.hold }

// mergePartials is the second phase's aggregate function: it merges
// partial accumulators.
type mergePartials[K comparable, IN, ACC, OUT any] struct {
	fn state.AggregateFunction[IN, ACC, OUT]
}

func (m mergePartials[K, IN, ACC, OUT]) Zero() ACC { return m.fn.Zero() }
func (m mergePartials[K, IN, ACC, OUT]) Add(acc ACC, p Partial[K, ACC]) ACC {
	return m.fn.Merge(acc, p.Acc)
}
func (m mergePartials[K, IN, ACC, OUT]) Merge(a, b ACC) ACC { return m.fn.Merge(a, b) }
func (m mergePartials[K, IN, ACC, OUT]) Result(acc ACC) OUT { return m.fn.Result(acc) }

// partialCodec writes a Partial as its key's length, its key and its
// accumulator, each in its codec.
type partialCodec[K comparable, ACC any] struct {
	kc codec.Codec[K]
	ac codec.Codec[ACC]
}

func (c partialCodec[K, ACC]) Encode(p Partial[K, ACC]) ([]byte, error) {
	kb, err := c.kc.Encode(p.Key)
	if err != nil {
		return nil, fmt.Errorf("partial accumulator's key: %w", err)
	}
	ab, err := c.ac.Encode(p.Acc)
	if err != nil {
		return nil, fmt.Errorf("partial accumulator: %w", err)
	}
	b := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen32+len(kb)+len(ab)), uint64(len(kb)))
	return append(append(b, kb...), ab...), nil
}

func (c partialCodec[K, ACC]) Decode(b []byte) (Partial[K, ACC], error) {
	var p Partial[K, ACC]
	n, w := binary.Uvarint(b)
	if w <= 0 || uint64(len(b)-w) < n {
		return p, fmt.Errorf("partial accumulator of %d bytes: malformed key length", len(b))
	}
	var err error
	if p.Key, err = c.kc.Decode(b[w : w+int(n)]); err != nil {
		return p, fmt.Errorf("partial accumulator's key: %w", err)
	}
	if p.Acc, err = c.ac.Decode(b[w+int(n):]); err != nil {
		return p, fmt.Errorf("partial accumulator: %w", err)
	}
	return p, nil
}
