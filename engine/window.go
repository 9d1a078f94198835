package engine

import (
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

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
	trigger   windowing.Trigger
	lateness  time.Duration
	late      *OutputTag[IN]
	lateTopic string
	lateCodec codec.Codec[IN]
}

// AllowedLateness keeps a window's state for d after the watermark passed
// its end: a record that arrives in that time still updates the window,
// and the window fires again with the update (Flink's allowedLateness).
// Default: 0.
func AllowedLateness[IN any](d time.Duration) WindowOpt[IN] {
	return func(c *windowConfig[IN]) { c.lateness = d }
}

// LateOutput sends records later than every window they belong to (past
// end + allowed lateness) to tag, as Flink's sideOutputLateData, instead
// of the late-data topic. Late records are counted either way, in the
// operator's late records (weir_records_late_total).
func LateOutput[IN any](tag OutputTag[IN]) WindowOpt[IN] {
	return func(c *windowConfig[IN]) { c.late = &tag }
}

// WithTrigger sets when windows fire (Flink's triggers): on a count of
// records, on processing time, or early and repeatedly with a continuous
// trigger. Default: once, when the watermark passes the window's end.
// Global windows need one of these.
func WithTrigger[IN any](t windowing.Trigger) WindowOpt[IN] {
	return func(c *windowConfig[IN]) { c.trigger = t }
}

// LateTopic writes late records to topic, encoded with c, instead of the
// default late-data topic. The topic must exist.
func LateTopic[IN any](topic string, c codec.Codec[IN]) WindowOpt[IN] {
	return func(cfg *windowConfig[IN]) { cfg.lateTopic, cfg.lateCodec = topic, c }
}

// Headers of a record in a late-data topic: why it is there.
const (
	HeaderLateOperator  = "weir.late.operator"
	HeaderLateReason    = "weir.late.reason"
	HeaderLateEventTime = "weir.late.event-time"
	HeaderLateWatermark = "weir.late.watermark"
)

// timer kinds of a window
const (
	windowFire    byte = 0 // the watermark passed the window's end
	windowCleanup byte = 1 // ... and its allowed lateness: state goes
	windowEarly   byte = 2 // a continuous trigger's periodic firing
)

// WindowAggregate aggregates each key's records per window of assigner,
// and emits each window's result when the watermark passes its end (its
// event-time trigger), with the window's last millisecond as event time.
// State holds one accumulator per key and window, never the records.
// Session windows merge as records bridge them, their accumulators merged
// with fn.Merge. Window state and timers live in the state store.
func WindowAggregate[K comparable, IN, ACC, OUT any](in KeyedStream[K, IN], name string, assigner windowing.Assigner,
	fn AggregateFunction[IN, ACC, OUT], acc codec.Codec[ACC], opts ...WindowOpt[IN]) Stream[Windowed[K, OUT]] {
	return windowOperator(in, name, assigner, opts, func(reg *state.Registry) contents[K, IN, OUT] {
		return &aggContents[K, IN, ACC, OUT]{fn: fn, accs: state.NewValue(reg, "acc", acc)}
	})
}

// ProcessWindowFunction sees all of a window's records at once, with the
// window: for what an incremental aggregate cannot do (medians, sorting,
// the first and last record). State holds every record of the window.
type ProcessWindowFunction[K comparable, IN, OUT any] interface {
	Process(key K, w windowing.Window, records []IN, out Collector[OUT]) error
}

// WindowProcess applies fn to each key's records per window of assigner,
// when the watermark passes the window's end. The records are kept in list
// state (one store key per record, so adding costs the same whatever the
// window holds), encoded with c; session windows merge their lists.
func WindowProcess[K comparable, IN, OUT any](in KeyedStream[K, IN], name string, assigner windowing.Assigner,
	fn ProcessWindowFunction[K, IN, OUT], c codec.Codec[IN], opts ...WindowOpt[IN]) Stream[Windowed[K, OUT]] {
	return windowOperator(in, name, assigner, opts, func(reg *state.Registry) contents[K, IN, OUT] {
		return &listContents[K, IN, OUT]{fn: fn, recs: state.NewList(reg, "records", c)}
	})
}

func windowOperator[K comparable, IN, OUT any](in KeyedStream[K, IN], name string, assigner windowing.Assigner,
	opts []WindowOpt[IN], newContents func(*state.Registry) contents[K, IN, OUT]) Stream[Windowed[K, OUT]] {
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
	if err := cfg.trigger.Validate(); err != nil {
		job.buildErr(fmt.Errorf("%s: %w", out.Name(), err))
	}
	if ws := assigner.Assign(nil, 0); len(ws) == 1 && ws[0] == windowing.GlobalWindow && cfg.trigger.Kind == windowing.EventTimeTrigger {
		job.buildErr(fmt.Errorf("%s: a global window never ends, so the event-time trigger never fires it: give it WithTrigger", out.Name()))
	}
	reg := state.NewRegistry(out.Name())
	cont := newContents(reg)
	counts := state.NewValue(reg, "trigger-count", codec.Key[int64]())
	sessions := state.NewValue(reg, "sessions", codec.JSON[[]windowing.Window]())
	if err := reg.Err(); err != nil {
		job.buildErr(err)
	}
	job.AddStatefulOperator(out.Name(), out.n.stage)
	lateness := windowing.Millis(cfg.lateness.Milliseconds())
	// Nothing is dropped silently: without a side output, late records go
	// to a topic, by default <group>-<operator>-late, created by Weir.
	var lateTopic *InternalTopic
	if cfg.late == nil {
		if cfg.lateTopic != "" {
			job.AddSinkTopic(cfg.lateTopic)
		} else {
			lateTopic = job.AddInternalTopic(out.Name()+"-late", in.n.stage)
			cfg.lateCodec = codec.JSON[IN]()
		}
	}
	in.Subscribe(func(t *Task) (Emit[IN], error) {
		opName := out.Name()
		stats := t.Stats(opName)
		timers := t.timerOwner(opName, nil) // before downstream's: see timerOwner
		down, err := out.Build(t)
		if err != nil {
			return nil, err
		}
		var lateEmit Emit[IN]
		if cfg.late != nil {
			sides, err := buildSides(t, out.n)
			if err != nil {
				return nil, err
			}
			lateEmit, _ = sides[cfg.late.id].(Emit[IN])
		} else {
			topic := cfg.lateTopic
			if lateTopic != nil {
				topic = lateTopic.Name()
			}
			lateEmit = lateToTopic(t, opName, topic, cfg.lateCodec, cfg.lateness)
		}
		c := &keyedCtx[K]{task: t, keys: in.Key, timers: timers, guard: t.Guard(opName, ClassError)}
		w := &windowOp[K, IN, OUT]{c: c, contents: cont, sessions: sessions, assigner: assigner,
			lateness: lateness, stats: stats, op: opName, trigger: cfg.trigger, counts: counts,
			col: &windowCollector[K, OUT]{c: c, down: down, stats: stats}}
		timers.fire = w.onTimer
		w.timers = timers
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
				stats.Late++ // counted, and sent on
				if lateEmit != nil {
					return lateEmit(r)
				}
			}
			return nil
		}, nil
	})
	return out
}

// lateToTopic writes late records to topic with headers saying why, in
// the task's checkpoint epoch like any output.
func lateToTopic[IN any](t *Task, op, topic string, c codec.Codec[IN], lateness time.Duration) Emit[IN] {
	return func(r Record[IN]) error {
		b, err := c.Encode(r.Value)
		if err != nil {
			return &OperatorError{Operator: op, Err: fmt.Errorf("encoding a late record: %w", err)}
		}
		wm := watermarkTime(t.watermark).UTC().Format(time.RFC3339Nano)
		t.Produce(&kgo.Record{Topic: topic, Key: r.Key, Value: b, Timestamp: r.Timestamp, Headers: []kgo.RecordHeader{
			{Key: HeaderLateOperator, Value: []byte(op)},
			{Key: HeaderLateReason, Value: []byte(fmt.Sprintf("every window of the record ended before the watermark minus the allowed lateness (%v)", lateness))},
			{Key: HeaderLateEventTime, Value: []byte(r.Timestamp.UTC().Format(time.RFC3339Nano))},
			{Key: HeaderLateWatermark, Value: []byte(wm)},
		}})
		return nil
	}
}

// aggContents keeps a window's accumulator.
type aggContents[K comparable, IN, ACC, OUT any] struct {
	fn   AggregateFunction[IN, ACC, OUT]
	accs *state.Value[ACC]
}

func (a *aggContents[K, IN, ACC, OUT]) get(c *keyedCtx[K]) (ACC, bool, error) {
	acc, ok, err := a.accs.Get(c)
	if err == nil && !ok {
		acc = a.fn.Zero()
	}
	return acc, ok, err
}

func (a *aggContents[K, IN, ACC, OUT]) add(c *keyedCtx[K], v IN) error {
	acc, _, err := a.get(c)
	if err != nil {
		return err
	}
	return a.accs.Set(c, a.fn.Add(acc, v))
}

func (a *aggContents[K, IN, ACC, OUT]) absorb(c *keyedCtx[K], from []byte) error {
	into := c.ns
	c.ns = from
	other, ok, err := a.accs.Get(c)
	if err == nil {
		a.accs.Clear(c)
	}
	c.ns = into
	if err != nil || !ok {
		return err
	}
	acc, _, err := a.get(c)
	if err != nil {
		return err
	}
	return a.accs.Set(c, a.fn.Merge(acc, other))
}

func (a *aggContents[K, IN, ACC, OUT]) emit(c *keyedCtx[K], out Collector[OUT]) (bool, error) {
	acc, ok, err := a.accs.Get(c)
	if err != nil || !ok {
		return false, err
	}
	return true, out.Collect(a.fn.Result(acc))
}

func (a *aggContents[K, IN, ACC, OUT]) clear(c *keyedCtx[K]) error {
	a.accs.Clear(c)
	return nil
}

// listContents keeps every record of a window.
type listContents[K comparable, IN, OUT any] struct {
	fn   ProcessWindowFunction[K, IN, OUT]
	recs *state.List[IN]
}

func (l *listContents[K, IN, OUT]) add(c *keyedCtx[K], v IN) error { return l.recs.Add(c, v) }

func (l *listContents[K, IN, OUT]) absorb(c *keyedCtx[K], from []byte) error {
	into := c.ns
	c.ns = from
	vs, err := l.recs.Get(c)
	if err == nil {
		err = l.recs.Clear(c)
	}
	c.ns = into
	if err != nil {
		return err
	}
	for _, v := range vs {
		if err := l.recs.Add(c, v); err != nil {
			return err
		}
	}
	return nil
}

func (l *listContents[K, IN, OUT]) emit(c *keyedCtx[K], out Collector[OUT]) (bool, error) {
	vs, err := l.recs.Get(c)
	if err != nil || len(vs) == 0 {
		return false, err
	}
	win := decodeWindow(c.ns)
	_, err = c.guard.Do(func() error { return l.fn.Process(c.key, win, vs, out) })
	return true, err
}

func (l *listContents[K, IN, OUT]) clear(c *keyedCtx[K]) error { return l.recs.Clear(c) }

// contents is what a window keeps for a key, in the window's namespace of
// the scope: an accumulator (WindowAggregate) or every record
// (WindowProcess). Its methods act on the scope's current key and window.
type contents[K comparable, IN, OUT any] interface {
	// add puts v in the window.
	add(c *keyedCtx[K], v IN) error
	// absorb moves window from's contents into the current window (a
	// session merge), leaving from empty.
	absorb(c *keyedCtx[K], from []byte) error
	// emit computes the window's output and passes it on; ok is false
	// when the window holds nothing.
	emit(c *keyedCtx[K], out Collector[OUT]) (ok bool, err error)
	clear(c *keyedCtx[K]) error
}

// windowOp is one window operator in one task.
type windowOp[K comparable, IN, OUT any] struct {
	c        *keyedCtx[K]
	contents contents[K, IN, OUT]
	sessions *state.Value[[]windowing.Window]
	assigner windowing.Assigner
	trigger  windowing.Trigger
	counts   *state.Value[int64] // CountTrigger's records since the last firing
	lateness windowing.Millis
	timers   *timerOwner
	stats    *OpStats
	op       string
	buf      []windowing.Window
	col      *windowCollector[K, OUT]
}

// windowCollector emits a window's outputs with its key, bounds and, as
// event time, its last millisecond.
type windowCollector[K comparable, OUT any] struct {
	c     *keyedCtx[K]
	win   windowing.Window // the window firing
	down  Emit[Windowed[K, OUT]]
	stats *OpStats
}

func (w *windowCollector[K, OUT]) Collect(v OUT) error {
	w.stats.Out++
	return w.down(Record[Windowed[K, OUT]]{
		Key:       w.c.rec.Key,
		Value:     Windowed[K, OUT]{Key: w.c.key, Start: w.win.Start.Time(), End: w.win.End.Time(), Value: v},
		Timestamp: w.win.MaxTimestamp().Time(),
	})
}

func encodeWindow(w windowing.Window) []byte {
	return append(orderedMillis(int64(w.Start)), orderedMillis(int64(w.End))...)
}

func decodeWindow(b []byte) windowing.Window {
	return windowing.Window{Start: windowing.Millis(millisAt(b)), End: windowing.Millis(millisAt(b[8:]))}
}

// timerKey packs a window timer: the record key, the window, the kind.
func timerKey(key []byte, w windowing.Window, kind byte) []byte {
	return timerSubject(key, encodeWindow(w), []byte{kind})
}

func (o *windowOp[K, IN, OUT]) isLate(w windowing.Window) bool {
	wm := windowing.Millis(o.c.task.watermark)
	return o.c.task.watermark != minWatermark && w.MaxTimestamp()+o.lateness <= wm
}

// add puts r in its windows; it reports whether r was late for all of them.
func (o *windowOp[K, IN, OUT]) add(r Record[IN]) (late bool, err error) {
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
		if err := o.update(w, r.Value); err != nil {
			return false, err
		}
	}
	return late, nil
}

// update adds v to window w, then acts on the trigger: by default it
// fires w at once if the watermark is already past its end (a late record
// within the allowed lateness: Flink's EventTimeTrigger fires on it) and
// otherwise sets its timer.
func (o *windowOp[K, IN, OUT]) update(w windowing.Window, v IN) error {
	o.c.ns = encodeWindow(w)
	defer func() { o.c.ns = nil }()
	if err := o.contents.add(o.c, v); err != nil {
		return err
	}
	global := w == windowing.GlobalWindow
	if !global && (o.lateness > 0 || o.trigger.Kind == windowing.CountTrigger || o.trigger.Kind == windowing.ProcessingTimeTrigger) {
		// State goes when the watermark passes end + lateness, whichever
		// trigger fires the window.
		o.timers.register(EventTime, int64(w.MaxTimestamp()+o.lateness), timerKey(o.c.rec.Key, w, windowCleanup))
	}
	switch o.trigger.Kind {
	case windowing.CountTrigger:
		n, _, err := o.counts.Get(o.c)
		if err != nil {
			return err
		}
		if n+1 < o.trigger.Count {
			return o.counts.Set(o.c, n+1)
		}
		o.counts.Clear(o.c)
		return o.fire(w)
	case windowing.ProcessingTimeTrigger:
		o.timers.register(ProcessingTime, int64(w.MaxTimestamp()), timerKey(o.c.rec.Key, w, windowFire))
		return nil
	case windowing.ContinuousEventTimeTrigger:
		ts := o.c.rec.Timestamp.UnixMilli()
		next := ts - mod(ts, int64(o.trigger.Interval)) + int64(o.trigger.Interval)
		if global || next < int64(w.MaxTimestamp()) {
			o.timers.register(EventTime, next, timerKey(o.c.rec.Key, w, windowEarly))
		}
	case windowing.ContinuousProcessingTimeTrigger:
		now := o.c.task.clock.Now().UnixMilli()
		o.timers.register(ProcessingTime, now-mod(now, int64(o.trigger.Interval))+int64(o.trigger.Interval), timerKey(o.c.rec.Key, w, windowEarly))
	}
	if global {
		return nil
	}
	if o.c.task.watermark != minWatermark && int64(w.MaxTimestamp()) <= o.c.task.watermark {
		return o.fire(w) // late, within the allowed lateness: fire again now
	}
	o.timers.register(EventTime, int64(w.MaxTimestamp()), timerKey(o.c.rec.Key, w, windowFire))
	return nil
}

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

// fire emits window w (the scope's namespace must be w's), purging it if
// the trigger says so.
func (o *windowOp[K, IN, OUT]) fire(w windowing.Window) error {
	_, err := o.fireOK(w)
	return err
}

// fireOK is fire, reporting whether the window held anything.
func (o *windowOp[K, IN, OUT]) fireOK(w windowing.Window) (bool, error) {
	o.col.win = w
	ok, err := o.contents.emit(o.c, o.col)
	if err != nil || !ok || !o.trigger.Purge {
		return ok, err
	}
	return true, o.contents.clear(o.c)
}

// addMerging adds a record to its session: the new window [ts, ts+gap)
// and every session of the key it touches merge into one.
func (o *windowOp[K, IN, OUT]) addMerging(v IN, nw windowing.Window) (late bool, err error) {
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
	// Move the absorbed sessions' contents into the merged window.
	o.c.ns = encodeWindow(target)
	for _, w := range absorbed {
		if err := o.contents.absorb(o.c, encodeWindow(w)); err != nil {
			return false, err
		}
		o.timers.delete(EventTime, int64(w.MaxTimestamp()), timerKey(o.c.rec.Key, w, windowFire))
		o.timers.delete(EventTime, int64(w.MaxTimestamp()+o.lateness), timerKey(o.c.rec.Key, w, windowCleanup))
	}
	o.c.ns = nil
	rest := slices.DeleteFunc(live, func(w windowing.Window) bool { return slices.Contains(absorbed, w) })
	if err := o.sessions.Set(o.c, append(rest, target)); err != nil {
		return false, err
	}
	return false, o.update(target, v)
}

// onTimer fires or cleans up a window.
func (o *windowOp[K, IN, OUT]) onTimer(tk []byte, at int64, domain TimeDomain) error {
	key, parts, err := splitTimerSubject(tk, 17)
	if err != nil {
		return err
	}
	win, kind := decodeWindow(parts), parts[16]
	if err := o.c.setKey(key, int64(win.MaxTimestamp())); err != nil {
		return err
	}
	o.c.ns = encodeWindow(win)
	defer func() { o.c.ns = nil }()
	switch kind {
	case windowEarly:
		// A continuous trigger's period: fire, and again a period later
		// while the window is open.
		ok, err := o.fireOK(win)
		if err != nil {
			return err
		}
		// A window cleaned up (or purged empty) stops its periods until a
		// record registers them again.
		next := at + int64(o.trigger.Interval)
		if ok && (win == windowing.GlobalWindow || next < int64(win.MaxTimestamp())) {
			o.timers.register(domain, next, tk)
		}
		return nil
	case windowFire:
		o.col.win = win
		ok, err := o.contents.emit(o.c, o.col)
		if err != nil || !ok {
			return err
		}
		if o.lateness > 0 {
			return nil // kept for late records until the cleanup timer
		}
	}
	if err := o.contents.clear(o.c); err != nil {
		return err
	}
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
