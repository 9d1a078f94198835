package engine

import (
	"fmt"
	"sync"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/state"
	"github.com/weirstream/weir/windowing"
)

// WindowJoin joins two keyed streams of one stage per window, as Flink's
// join().where().equalTo().window(): when a window fires, every pair of a
// left and a right record of the key in that window is joined, with the
// window's last millisecond as event time. Both sides are kept in list
// state per key and window until it fires. Records later than all their
// windows are counted as the operator's late records and not joined.
// Session windows are not supported here (use tumbling or sliding).
func WindowJoin[K comparable, L, R, OUT any](left KeyedStream[K, L], right KeyedStream[K, R], name string,
	assigner windowing.Assigner, lc codec.Codec[L], rc codec.Codec[R],
	join func(key K, w windowing.Window, l L, r R) (OUT, error)) Stream[OUT] {
	job := left.job
	out := Derive[OUT](left.Stream, name)
	if left.n.stage != right.n.stage {
		job.buildErr(fmt.Errorf("%s: the two streams are in stages %d and %d; key them together (operators.KeyByBoth) so one task sees both", out.Name(), left.n.stage, right.n.stage))
	}
	if err := windowing.ValidateAssigner(assigner); err != nil {
		job.buildErr(fmt.Errorf("%s: %w", out.Name(), err))
	}
	if assigner.Merging() {
		job.buildErr(fmt.Errorf("%s: a window join takes tumbling or sliding windows, not sessions", out.Name()))
	}
	reg := state.NewRegistry(out.Name())
	lbuf := state.NewList(reg, "left", lc)
	rbuf := state.NewList(reg, "right", rc)
	if err := reg.Err(); err != nil {
		job.buildErr(err)
	}
	job.AddStatefulOperator(out.Name(), out.n.stage)

	var joiners sync.Map // *Task -> *windowJoiner, the first subscriber's, taken by the second
	get := func(t *Task) (*windowJoiner[K, L, R, OUT], error) {
		if j, ok := joiners.LoadAndDelete(t); ok {
			return j.(*windowJoiner[K, L, R, OUT]), nil
		}
		timers := t.timerOwner(out.Name(), nil) // before downstream's: see timerOwner
		down, err := out.Build(t)
		if err != nil {
			return nil, err
		}
		wj := &windowJoiner[K, L, R, OUT]{c: &keyedCtx[K]{task: t, keys: left.Key, timers: timers, guard: t.Guard(out.Name(), ClassError)}, lbuf: lbuf, rbuf: rbuf,
			assigner: assigner, join: join, down: down, stats: t.Stats(out.Name()), op: out.Name()}
		timers.fire = wj.onTimer
		joiners.Store(t, wj)
		return wj, nil
	}
	left.Subscribe(func(t *Task) (Emit[L], error) {
		wj, err := get(t)
		if err != nil {
			return nil, err
		}
		return func(r Record[L]) error { return windowJoinAdd(wj, r.Key, r.Timestamp.UnixMilli(), wj.lbuf, r.Value) }, nil
	})
	right.Subscribe(func(t *Task) (Emit[R], error) {
		wj, err := get(t)
		if err != nil {
			return nil, err
		}
		return func(r Record[R]) error { return windowJoinAdd(wj, r.Key, r.Timestamp.UnixMilli(), wj.rbuf, r.Value) }, nil
	})
	return out
}

type windowJoiner[K comparable, L, R, OUT any] struct {
	c        *keyedCtx[K]
	lbuf     *state.List[L]
	rbuf     *state.List[R]
	assigner windowing.Assigner
	join     func(K, windowing.Window, L, R) (OUT, error)
	down     Emit[OUT]
	stats    *OpStats
	op       string
	buf      []windowing.Window
}

// windowJoinAdd buffers one record of either side in each of its windows
// that the watermark has not passed.
func windowJoinAdd[K comparable, L, R, OUT, T any](wj *windowJoiner[K, L, R, OUT], key []byte, ts int64, side *state.List[T], v T) error {
	wj.stats.In++
	if err := wj.c.setKey(key, ts); err != nil {
		return &OperatorError{Operator: wj.op, Err: err}
	}
	wm := wj.c.task.watermark
	wj.buf = wj.assigner.Assign(wj.buf[:0], windowing.Millis(ts))
	late := true
	for _, w := range wj.buf {
		if wm != minWatermark && int64(w.MaxTimestamp()) <= wm {
			continue
		}
		late = false
		wj.c.ns = encodeWindow(w)
		err := side.Add(wj.c, v)
		wj.c.ns = nil
		if err != nil {
			return &OperatorError{Operator: wj.op, Err: err}
		}
		wj.c.timers.register(EventTime, int64(w.MaxTimestamp()), timerKey(key, w, windowFire))
	}
	if late {
		wj.stats.Late++
	}
	return nil
}

// onTimer joins a window's pairs and drops its buffers.
func (wj *windowJoiner[K, L, R, OUT]) onTimer(tk []byte, _ int64, _ TimeDomain) error {
	key, parts, err := splitTimerSubject(tk, 17)
	if err != nil {
		return err
	}
	win := decodeWindow(parts)
	if err := wj.c.setKey(key, int64(win.MaxTimestamp())); err != nil {
		return err
	}
	wj.c.ns = encodeWindow(win)
	defer func() { wj.c.ns = nil }()
	ls, err := wj.lbuf.Get(wj.c)
	if err != nil {
		return err
	}
	rs, err := wj.rbuf.Get(wj.c)
	if err != nil {
		return err
	}
	for _, l := range ls {
		for _, r := range rs {
			var v OUT
			if ok, err := wj.c.guard.Do(func() error {
				var err error
				v, err = wj.join(wj.c.key, win, l, r)
				return err
			}); !ok {
				if err != nil {
					return err
				}
				continue
			}
			wj.stats.Out++
			if err := wj.down(Record[OUT]{Key: key, Value: v, Timestamp: win.MaxTimestamp().Time()}); err != nil {
				return err
			}
		}
	}
	if err := wj.lbuf.Clear(wj.c); err != nil {
		return err
	}
	return wj.rbuf.Clear(wj.c)
}
