package engine

import (
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/state"
	"github.com/weirstream/weir/windowing"
)

// AggregateFunction aggregates a window's records incrementally: state
// holds the accumulator, never the records (Flink's AggregateFunction).
// Merge combines the accumulators of session windows that a record joins.
type AggregateFunction[IN, ACC, OUT any] interface {
	Zero() ACC
	Add(acc ACC, in IN) ACC
	Merge(a, b ACC) ACC
	Result(acc ACC) OUT
}

// Windowed is a window's result for one key.
type Windowed[K comparable, OUT any] struct {
	Key   K         `json:"key"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	Value OUT       `json:"value"`
}

// WindowOpt configures a window operator.
type WindowOpt[IN any] func(*windowConfig[IN])

type windowConfig[IN any] struct {
	lateness time.Duration
	late     *OutputTag[IN]
}

// AllowedLateness keeps a window's state for d after the watermark passed
// its end: a record that arrives in that time still updates the window,
// and the window fires again with the update (Flink's allowedLateness).
// Default: 0.
func AllowedLateness[IN any](d time.Duration) WindowOpt[IN] {
	return func(c *windowConfig[IN]) { c.lateness = d }
}

// LateOutput sends records later than every window they belong to (past
// end + allowed lateness) to tag, instead of only counting them (Flink's
// sideOutputLateData). Late records are counted either way, in the
// operator's failed records.
func LateOutput[IN any](tag OutputTag[IN]) WindowOpt[IN] {
	return func(c *windowConfig[IN]) { c.late = &tag }
}

// timer kinds of a window
const (
	windowFire    byte = 0 // the watermark passed the window's end
	windowCleanup byte = 1 // ... and its allowed lateness: state goes
)

// WindowAggregate aggregates each key's records per window of assigner,
// and emits each window's result when the watermark passes its end (its
// event-time trigger), with the window's last millisecond as event time.
// Session windows merge as records bridge them, their accumulators merged
// with fn.Merge. Window state and timers live in the state store.
func WindowAggregate[K comparable, IN, ACC, OUT any](in KeyedStream[K, IN], name string, assigner windowing.Assigner,
	fn AggregateFunction[IN, ACC, OUT], acc codec.Codec[ACC], opts ...WindowOpt[IN]) Stream[Windowed[K, OUT]] {
	var cfg windowConfig[IN]
	for _, o := range opts {
		o(&cfg)
	}
	out := Derive[Windowed[K, OUT]](in.Stream, name)
	job := in.job
	if err := windowing.ValidateAssigner(assigner); err != nil {
		job.buildErr(fmt.Errorf("%s: %w", out.Name(), err))
	}
	if cfg.lateness < 0 {
		job.buildErr(fmt.Errorf("%s: allowed lateness %v is negative", out.Name(), cfg.lateness))
	}
	reg := state.NewRegistry(out.Name())
	accs := state.NewValue(reg, "acc", acc)
	sessions := state.NewValue(reg, "sessions", codec.JSON[[]windowing.Window]())
	if err := reg.Err(); err != nil {
		job.buildErr(err)
	}
	job.stateful = true
	lateness := windowing.Millis(cfg.lateness.Milliseconds())
	in.Subscribe(func(t *Task) (Emit[IN], error) {
		opName := out.Name()
		stats := t.Stats(opName)
		down, err := out.Build(t)
		if err != nil {
			return nil, err
		}
		var lateEmit Emit[IN]
		if cfg.late != nil {
			sides, err := buildSides(t, job, out.n)
			if err != nil {
				return nil, err
			}
			lateEmit, _ = sides[cfg.late.id].(Emit[IN])
		}
		c := &keyedCtx[K]{task: t, keys: in.Key}
		w := &windowOp[K, IN, ACC, OUT]{c: c, fn: fn, accs: accs, sessions: sessions, assigner: assigner,
			lateness: lateness, down: down, stats: stats, op: opName}
		c.timers = t.timerOwner(opName, w.onTimer)
		w.timers = c.timers
		return func(r Record[IN]) error {
			stats.In++
			if err := c.setKey(r.Key, r.Timestamp.UnixMilli()); err != nil {
				return &OperatorError{Operator: opName, Err: err}
			}
			late, err := w.add(r)
			if err != nil {
				return &OperatorError{Operator: opName, Err: err}
			}
			if late {
				stats.Failed++ // counted, and sent on when a late output is set
				if lateEmit != nil {
					return lateEmit(r)
				}
			}
			return nil
		}, nil
	})
	return out
}

// windowOp is one window operator in one task.
type windowOp[K comparable, IN, ACC, OUT any] struct {
	c        *keyedCtx[K]
	fn       AggregateFunction[IN, ACC, OUT]
	accs     *state.Value[ACC]
	sessions *state.Value[[]windowing.Window]
	assigner windowing.Assigner
	lateness windowing.Millis
	timers   *timerOwner
	down     Emit[Windowed[K, OUT]]
	stats    *OpStats
	op       string
	buf      []windowing.Window
}

func encodeWindow(w windowing.Window) []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(w.Start)^(1<<63))
	return binary.BigEndian.AppendUint64(b, uint64(w.End)^(1<<63))
}

func decodeWindow(b []byte) windowing.Window {
	return windowing.Window{
		Start: windowing.Millis(binary.BigEndian.Uint64(b[:8]) ^ (1 << 63)),
		End:   windowing.Millis(binary.BigEndian.Uint64(b[8:16]) ^ (1 << 63)),
	}
}

// timerKey packs a window timer: the record key, the window, the kind.
func timerKey(key []byte, w windowing.Window, kind byte) []byte {
	b := binary.AppendUvarint(nil, uint64(len(key)))
	b = append(b, key...)
	b = append(b, encodeWindow(w)...)
	return append(b, kind)
}

func (o *windowOp[K, IN, ACC, OUT]) isLate(w windowing.Window) bool {
	wm := windowing.Millis(o.c.task.watermark)
	return o.c.task.watermark != minWatermark && w.MaxTimestamp()+o.lateness <= wm
}

// add puts r in its windows; it reports whether r was late for all of them.
func (o *windowOp[K, IN, ACC, OUT]) add(r Record[IN]) (late bool, err error) {
	ts := windowing.MillisOf(r.Timestamp)
	o.buf = o.assigner.Assign(o.buf[:0], ts)
	if o.assigner.Merging() {
		return o.addMerging(r.Value, o.buf[0])
	}
	late = true
	for _, w := range o.buf {
		if o.isLate(w) {
			continue
		}
		late = false
		if err := o.update(w, func(acc ACC) ACC { return o.fn.Add(acc, r.Value) }); err != nil {
			return false, err
		}
	}
	return late, nil
}

// update applies f to window w's accumulator, then fires w at once if the
// watermark is already past its end (a late record within the allowed
// lateness: Flink's EventTimeTrigger fires on it) or sets its timers.
func (o *windowOp[K, IN, ACC, OUT]) update(w windowing.Window, f func(ACC) ACC) error {
	o.c.ns = encodeWindow(w)
	defer func() { o.c.ns = nil }()
	acc, ok, err := o.accs.Get(o.c)
	if err != nil {
		return err
	}
	if !ok {
		acc = o.fn.Zero()
	}
	acc = f(acc)
	if err := o.accs.Set(o.c, acc); err != nil {
		return err
	}
	if o.lateness > 0 {
		o.timers.register(EventTime, int64(w.MaxTimestamp()+o.lateness), timerKey(o.c.rec.Key, w, windowCleanup))
	}
	if o.c.task.watermark != minWatermark && int64(w.MaxTimestamp()) <= o.c.task.watermark {
		return o.emit(w, acc) // late, within the allowed lateness: fire again now
	}
	o.timers.register(EventTime, int64(w.MaxTimestamp()), timerKey(o.c.rec.Key, w, windowFire))
	return nil
}

func (o *windowOp[K, IN, ACC, OUT]) emit(w windowing.Window, acc ACC) error {
	o.stats.Out++
	return o.down(Record[Windowed[K, OUT]]{
		Key:       o.c.rec.Key,
		Value:     Windowed[K, OUT]{Key: o.c.key, Start: w.Start.Time(), End: w.End.Time(), Value: o.fn.Result(acc)},
		Timestamp: w.MaxTimestamp().Time(),
	})
}

// addMerging adds a record to its session: the new window [ts, ts+gap)
// and every session of the key it touches merge into one.
func (o *windowOp[K, IN, ACC, OUT]) addMerging(v IN, nw windowing.Window) (late bool, err error) {
	live, _, err := o.sessions.Get(o.c)
	if err != nil {
		return false, err
	}
	all := append(slices.Clone(live), nw)
	merged, members := windowing.MergeWindows(all)
	var target windowing.Window
	var absorbed []windowing.Window
	for i, m := range members {
		if slices.Contains(m, len(all)-1) {
			target = merged[i]
			for _, j := range m {
				if j != len(all)-1 {
					absorbed = append(absorbed, all[j])
				}
			}
		}
	}
	if o.isLate(target) {
		return true, nil
	}
	// Fold the absorbed sessions' accumulators into the merged window's.
	acc := o.fn.Zero()
	for _, w := range absorbed {
		o.c.ns = encodeWindow(w)
		a, ok, err := o.accs.Get(o.c)
		if err != nil {
			return false, err
		}
		if ok {
			acc = o.fn.Merge(acc, a)
		}
		o.accs.Clear(o.c)
		o.timers.delete(EventTime, int64(w.MaxTimestamp()), timerKey(o.c.rec.Key, w, windowFire))
		o.timers.delete(EventTime, int64(w.MaxTimestamp()+o.lateness), timerKey(o.c.rec.Key, w, windowCleanup))
	}
	o.c.ns = nil
	rest := slices.DeleteFunc(live, func(w windowing.Window) bool { return slices.Contains(absorbed, w) })
	if err := o.sessions.Set(o.c, append(rest, target)); err != nil {
		return false, err
	}
	err = o.update(target, func(ACC) ACC { return o.fn.Add(acc, v) })
	return false, err
}

// onTimer fires or cleans up a window.
func (o *windowOp[K, IN, ACC, OUT]) onTimer(tk []byte, _ int64, _ TimeDomain) error {
	n, w := binary.Uvarint(tk)
	if w <= 0 || len(tk) < w+int(n)+17 {
		return fmt.Errorf("malformed window timer %x", tk)
	}
	key := tk[w : w+int(n)]
	win := decodeWindow(tk[w+int(n):])
	kind := tk[len(tk)-1]
	if err := o.c.setKey(key, int64(win.MaxTimestamp())); err != nil {
		return err
	}
	o.c.ns = encodeWindow(win)
	defer func() { o.c.ns = nil }()
	acc, ok, err := o.accs.Get(o.c)
	if err != nil || !ok {
		return err
	}
	if kind == windowFire {
		if err := o.emit(win, acc); err != nil {
			return err
		}
		if o.lateness > 0 {
			return nil // kept for late records until the cleanup timer
		}
	}
	o.accs.Clear(o.c)
	if o.assigner.Merging() {
		o.c.ns = nil
		live, _, err := o.sessions.Get(o.c)
		if err != nil {
			return err
		}
		live = slices.DeleteFunc(live, func(x windowing.Window) bool { return x == win })
		if len(live) == 0 {
			o.sessions.Clear(o.c)
			return nil
		}
		return o.sessions.Set(o.c, live)
	}
	return nil
}
