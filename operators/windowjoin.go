package operators

import (
	"fmt"

	"github.com/weirstream/weir/engine"
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
//
// The buffered records are kept in memory, as they came, while they fit
// the task's share (engine.Task.StateMemory), and in the store, encoded
// as JSON unless JoinCodecs says otherwise: at each checkpoint those
// added since the last one, and all of them when the share is full.
func WindowJoin[K comparable, L, R, OUT any](left engine.KeyedStream[K, L], right engine.KeyedStream[K, R], name string,
	assigner windowing.Assigner, join func(key K, w windowing.Window, l L, r R) (OUT, error), opts ...JoinOpt) engine.Stream[OUT] {
	job := left.Job()
	out := engine.Derive[OUT](left.Stream, name)
	cfg := joinOptions(opts)
	lc, rc, err := joinCodecs[L, R](cfg)
	if err != nil {
		job.TopologyError(fmt.Errorf("%s: %w", out.Name(), err))
	}
	if cfg.ttl != 0 {
		job.TopologyError(fmt.Errorf("%s: JoinTTL is the regular Join's; a window join keeps its records until their window fires", out.Name()))
	}
	if cfg.leftLate != nil || cfg.rightLate != nil {
		job.TopologyError(fmt.Errorf("%s: LeftLateOutput and RightLateOutput are IntervalJoin's; a window join counts its late records", out.Name()))
	}
	if cfg.lowerExclusive || cfg.upperExclusive {
		job.TopologyError(fmt.Errorf("%s: a window join has no bounds to exclude (LowerBoundExclusive and UpperBoundExclusive are IntervalJoin's)", out.Name()))
	}
	checkTwoInputs(job, out.Name(), "a window join", true, left, right)
	if err := windowing.ValidateAssigner(assigner); err != nil {
		job.TopologyError(fmt.Errorf("%s: %w", out.Name(), err))
	}
	if assigner.Merging() {
		job.TopologyError(fmt.Errorf("%s: a window join takes tumbling or sliding windows, not sessions", out.Name()))
	}
	reg := state.NewRegistry(out.Name())
	lbuf := state.NewList(reg, "left", lc)
	rbuf := state.NewList(reg, "right", rc)
	if err := reg.Err(); err != nil {
		job.TopologyError(err)
	}
	job.AddStatefulOperator(out.Name(), out.Stage())

	get := perTask(func(t *engine.Task) (*windowJoiner[K, L, R, OUT], error) {
		timers := t.Timers(out.Name()) // before downstream's: see Task.Timers
		down, err := out.Build(t)
		if err != nil {
			return nil, err
		}
		c := &keyedCtx[K]{task: t, keys: left.Key, timers: timers, guard: t.Guard(out.Name(), engine.ClassError)}
		wj := &windowJoiner[K, L, R, OUT]{c: c, lbuf: storeList[K, L]{lbuf}, rbuf: storeList[K, R]{rbuf},
			assigner: assigner, join: join, down: down, stats: t.Stats(out.Name()), op: out.Name()}
		if mem := stateMemory(t); mem != nil {
			wj.lbuf = newMemList(t, c, lbuf, windowNsLen, mem)
			wj.rbuf = newMemList(t, c, rbuf, windowNsLen, mem)
		}
		timers.OnFire(wj.onTimer)
		return wj, nil
	})
	left.Subscribe(func(t *engine.Task) (engine.Emit[L], error) {
		wj, err := get(t)
		if err != nil {
			return nil, err
		}
		return func(r engine.Record[L]) error {
			return windowJoinAdd(wj, r.Key, r.Timestamp.UnixMilli(), wj.lbuf, r.Value)
		}, nil
	})
	right.Subscribe(func(t *engine.Task) (engine.Emit[R], error) {
		wj, err := get(t)
		if err != nil {
			return nil, err
		}
		return func(r engine.Record[R]) error {
			return windowJoinAdd(wj, r.Key, r.Timestamp.UnixMilli(), wj.rbuf, r.Value)
		}, nil
	})
	return out
}

type windowJoiner[K comparable, L, R, OUT any] struct {
	c *keyedCtx[K]
	// lbuf and rbuf are the sides' records per key and window: in memory
	// while they fit the task's share (memList), else in the store.
	lbuf     listState[K, L]
	rbuf     listState[K, R]
	assigner windowing.Assigner
	join     func(K, windowing.Window, L, R) (OUT, error)
	down     engine.Emit[OUT]
	stats    *engine.OpStats
	op       string
	buf      []windowing.Window
}

// windowJoinAdd buffers one record of either side in each of its windows
// that the watermark has not passed.
func windowJoinAdd[K comparable, L, R, OUT, T any](wj *windowJoiner[K, L, R, OUT], key []byte, ts int64, side listState[K, T], v T) error {
	wj.stats.In++
	if err := wj.c.setKey(key, ts); err != nil {
		return &engine.OperatorError{Operator: wj.op, Err: err}
	}
	wj.buf = wj.assigner.Assign(wj.buf[:0], windowing.Millis(ts))
	late := true
	for _, w := range wj.buf {
		if behind(wj.c.task, w.MaxTimestamp()) {
			continue
		}
		late = false
		wj.c.ns = encodeWindow(w)
		err := side.add(wj.c, v)
		wj.c.ns = nil
		if err != nil {
			return &engine.OperatorError{Operator: wj.op, Err: err}
		}
		wj.c.timers.Register(engine.EventTime, w.MaxTimestamp(), timerKey(key, w, windowFire))
	}
	if late {
		wj.stats.Late++
	}
	return nil
}

// onTimer joins a window's pairs and drops its buffers.
func (wj *windowJoiner[K, L, R, OUT]) onTimer(tk []byte, _ windowing.Millis, _ engine.TimeDomain) error {
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
	ls, err := wj.lbuf.get(wj.c)
	if err != nil {
		return err
	}
	rs, err := wj.rbuf.get(wj.c)
	if err != nil {
		return err
	}
	for _, l := range ls {
		for _, r := range rs {
			var v OUT
			if ok, err := wj.c.guard.Do(func() error {
				var err error
				v, err = wj.join(wj.c.Key(), win, l, r)
				return err
			}); !ok {
				if err != nil {
					return err
				}
				continue
			}
			wj.stats.Out++
			if err := wj.down(engine.Record[OUT]{Key: key, Value: v, Timestamp: win.MaxTimestamp().Time()}); err != nil {
				return err
			}
		}
	}
	if err := wj.lbuf.clear(wj.c); err != nil {
		return err
	}
	return wj.rbuf.clear(wj.c)
}
