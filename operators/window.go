package operators

import (
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/state"
	"github.com/weirstream/weir/windowing"
)

// Windowed is a window's result for one key.
type Windowed[K comparable, OUT any] struct {
	Key   K         `json:"key"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	Value OUT       `json:"value"`
}

// WindowOpt configures a window operator (WindowAggregate,
// WindowProcess).
type WindowOpt func(*windowOptions)

type windowOptions struct {
	slice     bool
	trigger   windowing.Trigger
	lateness  time.Duration
	late      any // engine.OutputTag[IN]
	lateTopic string
	lateCodec any // codec.Codec[IN]
}

// windowConfig is a window operator's options, typed for its input.
type windowConfig[IN any] struct {
	slice     bool
	trigger   windowing.Trigger
	lateness  time.Duration
	late      *engine.OutputTag[IN]
	lateTopic string
	lateCodec codec.Codec[IN]
}

// windowOpts applies opts; options of another type than the operator's
// input (a late-output tag or codec) are an error.
func windowOpts[IN any](opts []WindowOpt) (windowConfig[IN], error) {
	var o windowOptions
	for _, opt := range opts {
		opt(&o)
	}
	cfg := windowConfig[IN]{slice: o.slice, trigger: o.trigger, lateness: o.lateness, lateTopic: o.lateTopic}
	var zero IN
	if o.late != nil {
		tag, ok := o.late.(engine.OutputTag[IN])
		if !ok {
			return cfg, fmt.Errorf("LateOutput's tag is %T, the window's records are %T", o.late, zero)
		}
		cfg.late = &tag
	}
	if o.lateCodec != nil {
		c, ok := o.lateCodec.(codec.Codec[IN])
		if !ok {
			return cfg, fmt.Errorf("LateTopic's codec is %T, the window's records are %T", o.lateCodec, zero)
		}
		cfg.lateCodec = c
	}
	return cfg, nil
}

// AllowedLateness keeps a window's state for d after the watermark passed
// its end: a record that arrives in that time still updates the window,
// and the window fires again with the update (Flink's allowedLateness).
// Default: 0.
func AllowedLateness(d time.Duration) WindowOpt {
	return func(c *windowOptions) { c.lateness = d }
}

// LateOutput sends records later than every window they belong to (past
// end + allowed lateness) to tag, as Flink's sideOutputLateData, instead
// of the late-data topic; engine.SideOutput(windowed, tag) reads them.
// Late records are counted either way, in the operator's late records
// (weir_records_late_total).
func LateOutput[IN any](tag engine.OutputTag[IN]) WindowOpt {
	return func(c *windowOptions) { c.late = tag }
}

// SliceWindows computes sliding windows from slices, as Flink SQL's window
// aggregation does: the windows are cut into slices of the greatest common
// divisor of their size and slide, a record updates the one accumulator
// of its slice instead of one per window it falls in, and a window fires
// with its slices' accumulators merged, earliest first. The results are
// the same as without it when the aggregate function's Merge combines any
// two accumulators exactly (a sum, a count, a maximum); Flink's DataStream
// windows never call it for sliding windows, so it is not the default for
// user functions. Weir's own aggregates (Count) slice without it.
//
// It applies to WindowAggregate over event-time Sliding windows with the
// default trigger; elsewhere it changes nothing.
func SliceWindows() WindowOpt {
	return func(c *windowOptions) { c.slice = true }
}

// WithTrigger sets when windows fire (Flink's triggers): on a count of
// records, on processing time, or early and repeatedly with a continuous
// trigger. Default: once, when the watermark passes the window's end.
// Global windows need one of these.
func WithTrigger(t windowing.Trigger) WindowOpt {
	return func(c *windowOptions) { c.trigger = t }
}

// LateTopic writes late records to topic, encoded with c, instead of the
// default late-data topic. The topic must exist.
func LateTopic[IN any](topic string, c codec.Codec[IN]) WindowOpt {
	return func(o *windowOptions) { o.lateTopic, o.lateCodec = topic, c }
}

// Headers of a record in a late-data topic: why it is there.
const (
	HeaderLateOperator  = "weir.late.operator"
	HeaderLateReason    = "weir.late.reason"
	HeaderLateEventTime = "weir.late.event-time"
	HeaderLateWatermark = "weir.late.watermark"
	// HeaderLateSide is an interval join's: left or right.
	HeaderLateSide = "weir.late.side"
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
// with fn.Merge. Each task keeps its accumulators in memory, typed, and
// writes those changed to the state store at each checkpoint, or all of
// them when they outgrow its share of memory (engine.Task.StateMemory);
// timers live in the state store.
func WindowAggregate[K comparable, IN, ACC, OUT any](in engine.KeyedStream[K, IN], name string, assigner windowing.Assigner,
	fn state.AggregateFunction[IN, ACC, OUT], acc codec.Codec[ACC], opts ...WindowOpt) engine.Stream[Windowed[K, OUT]] {
	if _, exact := fn.(exactMerge); exact {
		opts = append([]WindowOpt{SliceWindows()}, opts...)
	}
	return windowOperator(in, name, assigner, opts, func(reg *state.Registry) contents[K, IN, OUT] {
		accs := state.NewValue(reg, "acc", acc)
		return &aggContents[K, IN, ACC, OUT]{fn: fn, accs: accs, vals: storeValue[K, ACC]{accs}}
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
func WindowProcess[K comparable, IN, OUT any](in engine.KeyedStream[K, IN], name string, assigner windowing.Assigner,
	fn ProcessWindowFunction[K, IN, OUT], c codec.Codec[IN], opts ...WindowOpt) engine.Stream[Windowed[K, OUT]] {
	return windowOperator(in, name, assigner, opts, func(reg *state.Registry) contents[K, IN, OUT] {
		return &listContents[K, IN, OUT]{fn: fn, recs: state.NewList(reg, "records", c)}
	})
}

func windowOperator[K comparable, IN, OUT any](in engine.KeyedStream[K, IN], name string, assigner windowing.Assigner,
	opts []WindowOpt, newContents func(*state.Registry) contents[K, IN, OUT]) engine.Stream[Windowed[K, OUT]] {
	out := engine.Derive[Windowed[K, OUT]](in.Stream, name)
	job := in.Job()
	cfg, err := windowOpts[IN](opts)
	if err != nil {
		job.TopologyError(fmt.Errorf("%s: %w", out.Name(), err))
	}
	if err := windowing.ValidateAssigner(assigner); err != nil {
		job.TopologyError(fmt.Errorf("%s: %w", out.Name(), err))
	}
	if cfg.lateness < 0 {
		job.TopologyError(fmt.Errorf("%s: allowed lateness %v is negative", out.Name(), cfg.lateness))
	}
	if err := cfg.trigger.Validate(); err != nil {
		job.TopologyError(fmt.Errorf("%s: %w", out.Name(), err))
	}
	global := false
	if ws := assigner.Assign(nil, 0); len(ws) == 1 && ws[0] == windowing.GlobalWindow {
		global = true
	}
	procTime := !global && !windowing.IsEventTime(assigner)
	if procTime && cfg.trigger == (windowing.Trigger{}) {
		cfg.trigger = windowing.OnProcessingTime() // Flink's default for processing-time windows
	}
	kind := cfg.trigger.Kind
	switch {
	case procTime && (kind == windowing.EventTimeTrigger || kind == windowing.ContinuousEventTimeTrigger):
		job.TopologyError(fmt.Errorf("%s: an event-time trigger on processing-time windows never fires: use OnProcessingTime (the default), EveryProcessingTime or OnCount", out.Name()))
	case procTime && cfg.lateness > 0:
		job.TopologyError(fmt.Errorf("%s: allowed lateness applies to event-time windows only; processing-time windows have no late records", out.Name()))
	case procTime:
		// The clock, not watermarks, drives them.
	case global && kind == windowing.EventTimeTrigger:
		job.TopologyError(fmt.Errorf("%s: a global window never ends, so the event-time trigger never fires it: give it WithTrigger", out.Name()))
	case global && kind == windowing.ProcessingTimeTrigger:
		job.TopologyError(fmt.Errorf("%s: OnProcessingTime fires at the window's end, which a global window never reaches: use OnCount or a continuous trigger", out.Name()))
	case global && cfg.lateness > 0:
		job.TopologyError(fmt.Errorf("%s: allowed lateness does not apply to a global window, which never ends", out.Name()))
	case !global && !in.EventTime():
		job.TopologyError(fmt.Errorf("%s: an event-time window needs watermarks to fire and to be cleaned up, and its input %s has none: give its source connectors.WithWatermarks", out.Name(), in.Name()))
	case global && kind == windowing.ContinuousEventTimeTrigger && !in.EventTime():
		job.TopologyError(fmt.Errorf("%s: an event-time trigger needs watermarks, and the window's input %s has none: give its source connectors.WithWatermarks", out.Name(), in.Name()))
	}
	reg := state.NewRegistry(out.Name())
	shared := newContents(reg)
	// Sliced: see SliceWindows.
	slicing, sliced := windowing.SlicingOf(assigner)
	_, canSlice := shared.(slicedContents[K, OUT])
	sliced = sliced && canSlice && cfg.slice && cfg.trigger == (windowing.Trigger{})
	counts := state.NewValue(reg, "trigger-count", codec.Key[int64]())
	fireAt := state.NewValue(reg, "trigger-fire-time", codec.Key[int64]())
	sessions := state.NewValue(reg, "sessions", codec.Codec[[]session](sessionsCodec{}))
	if err := reg.Err(); err != nil {
		job.TopologyError(err)
	}
	job.AddStatefulOperator(out.Name(), out.Stage())
	lateness := windowing.Millis(cfg.lateness.Milliseconds())
	// Nothing is dropped silently: without a side output, late records go
	// to a topic, by default <group>-<operator>-late, created by Weir.
	var lateTopic *engine.InternalTopic
	if cfg.late == nil && !procTime { // processing-time windows have no late records
		if cfg.lateTopic != "" {
			job.AddSinkTopic(cfg.lateTopic)
		} else {
			lateTopic = job.AddInternalTopic(out.Name()+"-late", in.Stage())
			cfg.lateCodec = codec.JSON[IN]()
		}
	}
	in.Subscribe(func(t *engine.Task) (engine.Emit[IN], error) {
		opName := out.Name()
		stats := t.Stats(opName)
		timers := t.Timers(opName) // before downstream's: see Task.Timers
		down, err := out.Build(t)
		if err != nil {
			return nil, err
		}
		sides, err := out.BuildSides(t)
		if err != nil {
			return nil, err
		}
		var lateEmit engine.Emit[IN]
		if cfg.late != nil {
			lateEmit, _ = sides.Lookup(cfg.late.Name()).(engine.Emit[IN])
		} else {
			topic := cfg.lateTopic
			if lateTopic != nil {
				topic = lateTopic.Name()
			}
			lateEmit = lateToTopic(t, opName, topic, cfg.lateCodec, fmt.Sprintf("every window of the record ended before the watermark minus the allowed lateness (%v)", cfg.lateness))
		}
		c := &keyedCtx[K]{task: t, keys: in.Key, sides: sides, timers: timers, guard: t.Guard(opName, engine.ClassError)}
		elements, _ := assigner.(windowing.ElementAssigner[IN])
		cont := shared
		var sessionsOf valueState[K, []session] = storeValue[K, []session]{sessions}
		if mem := stateMemory(t); mem != nil {
			if b, ok := shared.(taskBound[K, IN, OUT]); ok {
				cont = b.bind(t, c, mem)
			}
			if assigner.Merging() {
				sessionsOf = newMemState(t, c, sessions, 0, mem)
			}
		}
		w := &windowOp[K, IN, OUT]{c: c, contents: cont, sessions: sessionsOf, assigner: assigner, elements: elements, procTime: procTime,
			lateness: lateness, stats: stats, op: opName, trigger: cfg.trigger, counts: counts, fireAt: fireAt,
			col: &windowCollector[K, OUT]{c: c, down: down, stats: stats}}
		if sliced {
			w.slicing, w.slicer = &slicing, cont.(slicedContents[K, OUT])
		}
		timers.OnFire(w.onTimer)
		w.timers = timers
		return func(r engine.Record[IN]) error {
			stats.In++
			if err := c.setKey(r.Key, r.Timestamp.UnixMilli()); err != nil {
				return &engine.OperatorError{Operator: opName, Err: err}
			}
			late, err := w.add(r)
			if g, ok := err.(guardedError); ok {
				return g.err // the guard named the operator already
			}
			if err != nil {
				return &engine.OperatorError{Operator: opName, Err: err}
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
func lateToTopic[IN any](t *engine.Task, op, topic string, c codec.Codec[IN], reason string, extra ...kgo.RecordHeader) engine.Emit[IN] {
	return func(r engine.Record[IN]) error {
		b, err := c.Encode(r.Value)
		if err != nil {
			return &engine.OperatorError{Operator: op, Err: fmt.Errorf("encoding a late record: %w", err)}
		}
		wm := watermarkTime(t).UTC().Format(time.RFC3339Nano)
		t.Produce(&kgo.Record{Topic: topic, Key: r.Key, Value: b, Timestamp: r.Timestamp, Headers: append([]kgo.RecordHeader{
			{Key: HeaderLateOperator, Value: []byte(op)},
			{Key: HeaderLateReason, Value: []byte(reason)},
			{Key: HeaderLateEventTime, Value: []byte(r.Timestamp.UTC().Format(time.RFC3339Nano))},
			{Key: HeaderLateWatermark, Value: []byte(wm)},
		}, extra...)})
		return nil
	}
}

// aggContents keeps a window's accumulator, or a slice's (SliceWindows),
// in vals: the store (the operator's shared contents) or, once a task
// binds its own (bind), the task's memory.
type aggContents[K comparable, IN, ACC, OUT any] struct {
	fn   state.AggregateFunction[IN, ACC, OUT]
	accs *state.Value[ACC]
	vals valueState[K, ACC]
	// mem is vals when they are in memory, where add folds a record into
	// its accumulator in place.
	mem *memState[K, ACC]
}

// exactMerge marks Weir's aggregate functions whose Merge combines any
// two accumulators exactly: their windows slice without SliceWindows.
type exactMerge interface{ exactMerge() }

// slicedContents is what sliced windows (SliceWindows) need of their
// contents, which keep an accumulator per slice.
type slicedContents[K comparable, OUT any] interface {
	// emitSlices emits the window in the scope's namespace from the
	// accumulators of parts, its slices, merged earliest first, after
	// the whole window's own if one is there (kept before the operator
	// sliced), if there is any; last is the index in parts of the latest
	// slice with an accumulator, -1 if none has. The contents are shared
	// by the operator's tasks, which run at once: buf is scratch space of
	// the calling task's.
	emitSlices(c *keyedCtx[K], parts []windowing.Window, out Collector[OUT], buf *[]byte) (last int, err error)
	// clearSlices drops the accumulators of slices parts.
	clearSlices(c *keyedCtx[K], parts []windowing.Window, buf *[]byte)
}

func (a *aggContents[K, IN, ACC, OUT]) emitSlices(c *keyedCtx[K], parts []windowing.Window, out Collector[OUT], buf *[]byte) (int, error) {
	ns := c.ns
	defer func() { c.ns = ns }()
	acc, ok, err := a.vals.get(c)
	if err != nil {
		return -1, err
	}
	last := -1
	for i, p := range parts {
		*buf = appendWindow((*buf)[:0], p)
		c.ns = *buf
		x, had, err := a.vals.get(c)
		switch {
		case err != nil:
			return -1, err
		case !had:
			continue
		case ok:
			acc = a.fn.Merge(acc, x)
		default:
			acc, ok = x, true
		}
		last = i
	}
	if !ok {
		return last, nil
	}
	return last, out.Collect(a.fn.Result(acc))
}

func (a *aggContents[K, IN, ACC, OUT]) clearSlices(c *keyedCtx[K], parts []windowing.Window, buf *[]byte) {
	ns := c.ns
	for _, p := range parts {
		*buf = appendWindow((*buf)[:0], p)
		c.ns = *buf
		a.vals.clear(c)
	}
	c.ns = ns
}

func (a *aggContents[K, IN, ACC, OUT]) add(c *keyedCtx[K], v IN) (bool, error) {
	if a.mem != nil {
		if sl, cached, err := a.mem.slot(c, true); cached {
			if err != nil {
				return false, err
			}
			existed := sl.has
			if !sl.has {
				sl.v, sl.has = a.fn.Zero(), true
			}
			sl.v = a.fn.Add(sl.v, v)
			a.mem.touch(sl)
			return existed, nil
		}
	}
	acc, existed, err := a.vals.get(c)
	if err != nil {
		return false, err
	}
	if !existed {
		acc = a.fn.Zero()
	}
	return existed, a.vals.set(c, a.fn.Add(acc, v))
}

// absorb merges from's accumulator into the current window's, as Flink's
// mergeNamespaces does: a window without one takes it as it is, without a
// Merge with the zero accumulator.
func (a *aggContents[K, IN, ACC, OUT]) absorb(c *keyedCtx[K], from []byte) error {
	into := c.ns
	c.ns = from
	other, ok, err := a.vals.get(c)
	if err == nil && ok {
		a.vals.clear(c)
	}
	c.ns = into
	if err != nil || !ok {
		return err
	}
	acc, had, err := a.vals.get(c)
	if err != nil {
		return err
	}
	if had {
		other = a.fn.Merge(acc, other)
	}
	return a.vals.set(c, other)
}

func (a *aggContents[K, IN, ACC, OUT]) emit(c *keyedCtx[K], _ windowing.Window, out Collector[OUT]) (bool, error) {
	acc, ok, err := a.vals.get(c)
	if err != nil || !ok {
		return false, err
	}
	return true, out.Collect(a.fn.Result(acc))
}

func (a *aggContents[K, IN, ACC, OUT]) clear(c *keyedCtx[K]) error {
	a.vals.clear(c)
	return nil
}

// bind gives the task its own contents, the accumulators in the task's
// memory (memstate.go), written to the store at each of its barriers.
func (a *aggContents[K, IN, ACC, OUT]) bind(t *engine.Task, c *keyedCtx[K], mem *taskMemory) contents[K, IN, OUT] {
	m := newMemState(t, c, a.accs, windowNsLen, mem)
	return &aggContents[K, IN, ACC, OUT]{fn: a.fn, accs: a.accs, vals: m, mem: m}
}

// taskBound is contents that keep per-task memory: each task binds its
// own when it builds the operator, within the task's share.
type taskBound[K comparable, IN, OUT any] interface {
	bind(t *engine.Task, c *keyedCtx[K], mem *taskMemory) contents[K, IN, OUT]
}

// windowNsLen is the length of a window's namespace (appendWindow).
const windowNsLen = 16

// listContents keeps every record of a window.
type listContents[K comparable, IN, OUT any] struct {
	fn   ProcessWindowFunction[K, IN, OUT]
	recs *state.List[IN]
}

// add does not know whether the window held records: finding out would
// cost a read that appending does not need.
func (l *listContents[K, IN, OUT]) add(c *keyedCtx[K], v IN) (bool, error) {
	return false, l.recs.Add(c, v)
}

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

func (l *listContents[K, IN, OUT]) emit(c *keyedCtx[K], win windowing.Window, out Collector[OUT]) (bool, error) {
	vs, err := l.recs.Get(c)
	if err != nil || len(vs) == 0 {
		return false, err
	}
	_, err = c.guard.Do(func() error { return l.fn.Process(c.Key(), win, vs, out) })
	return true, err
}

func (l *listContents[K, IN, OUT]) clear(c *keyedCtx[K]) error { return l.recs.Clear(c) }

// contents is what a window keeps for a key, in the namespace of the
// window's state window (its own, but for a merged session): an
// accumulator (WindowAggregate) or every record (WindowProcess). Its
// methods act on the scope's current key and namespace. One value serves
// every task of the operator, and tasks run at once: it holds nothing a
// call changes.
type contents[K comparable, IN, OUT any] interface {
	// add puts v in the window; existed reports that the window held
	// something before (false when that is not known).
	add(c *keyedCtx[K], v IN) (existed bool, err error)
	// absorb moves the contents in namespace from into the current one
	// (a session merge), leaving from empty.
	absorb(c *keyedCtx[K], from []byte) error
	// emit computes window w's output and passes it on; ok is false when
	// the window holds nothing.
	emit(c *keyedCtx[K], w windowing.Window, out Collector[OUT]) (ok bool, err error)
	clear(c *keyedCtx[K]) error
}

// windowOp is one window operator in one task.
type windowOp[K comparable, IN, OUT any] struct {
	// timerBuf is timerKey's scratch; the merge fields addMerging's.
	timerBuf    []byte
	mergeBuf    []windowing.Window
	mergeIdx    []int
	mergeGroup  []int
	absorbedBuf []session
	fromNsBuf   []byte
	c           *keyedCtx[K]
	contents    contents[K, IN, OUT]
	sessions    valueState[K, []session]
	assigner    windowing.Assigner
	// elements is assigner, when it sees each record (dynamic sessions).
	elements windowing.ElementAssigner[IN]
	// procTime: the assigner assigns by the task's clock, which also
	// fires and cleans up the windows.
	procTime bool
	trigger  windowing.Trigger
	counts   *state.Value[int64] // CountTrigger's records since the last firing
	// fireAt is a continuous trigger's pending firing time (Flink's
	// "fire-time" state): one per window, the earliest when sessions merge.
	fireAt   *state.Value[int64]
	lateness windowing.Millis
	timers   *engine.Timers
	stats    *engine.OpStats
	op       string
	buf      []windowing.Window
	col      *windowCollector[K, OUT]
	nsBuf    []byte // see namespace
	// contentsNs is the namespace of the contents of the window being
	// handled: its state window's (setWindow).
	contentsNs, stateNsBuf []byte
	// slicing, when not nil, slices the windows (SliceWindows): contents
	// are kept per slice, by slicer.
	slicing    *windowing.Slicing
	slicer     slicedContents[K, OUT]
	sliceBuf   []windowing.Window
	sliceNsBuf []byte
}

// namespace encodes w into a buffer of the operator's, for the scope's
// namespace while one record or timer is handled: the state handles copy
// what they keep, so the per-record path need not allocate it.
func (o *windowOp[K, IN, OUT]) namespace(w windowing.Window) []byte {
	o.nsBuf = appendWindow(o.nsBuf[:0], w)
	return o.nsBuf
}

// setWindow makes w the window being handled: the scope's namespace, for
// the trigger's state, is w's, and the contents' is its state window sw's.
func (o *windowOp[K, IN, OUT]) setWindow(w, sw windowing.Window) {
	o.c.ns = o.namespace(w)
	o.contentsNs = o.c.ns
	if sw != w {
		o.stateNsBuf = appendWindow(o.stateNsBuf[:0], sw)
		o.contentsNs = o.stateNsBuf
	}
}

// windowCollector emits a window's outputs with its key, bounds and, as
// event time, its last millisecond.
type windowCollector[K comparable, OUT any] struct {
	c     *keyedCtx[K]
	win   windowing.Window // the window firing
	down  engine.Emit[Windowed[K, OUT]]
	stats *engine.OpStats
}

func (w *windowCollector[K, OUT]) Collect(v OUT) error {
	w.stats.Out++
	return w.down(engine.Record[Windowed[K, OUT]]{
		Key:       w.c.rec.Key,
		Value:     Windowed[K, OUT]{Key: w.c.Key(), Start: w.win.Start.Time(), End: w.win.End.Time(), Value: v},
		Timestamp: w.win.MaxTimestamp().Time(),
	})
}

// timerKey packs a window timer: the record key, the window, the kind.
func timerKey(key []byte, w windowing.Window, kind byte) []byte {
	return appendTimerKey(nil, key, w, kind)
}

// appendTimerKey appends timerKey(key, w, kind) to b.
func appendTimerKey(b, key []byte, w windowing.Window, kind byte) []byte {
	return append(appendWindow(appendSubjectKey(b, key), w), kind)
}

// timerKey is the current record's timerKey in o's scratch buffer, valid
// until the next call: for Timers.Register and Delete, which copy it.
func (o *windowOp[K, IN, OUT]) timerKey(w windowing.Window, kind byte) []byte {
	o.timerBuf = appendTimerKey(o.timerBuf[:0], o.c.rec.Key, w, kind)
	return o.timerBuf
}

func (o *windowOp[K, IN, OUT]) isLate(w windowing.Window) bool {
	return !o.procTime && behind(o.c.task, w.CleanupTime(o.lateness))
}

// endDomain is the clock a window's end is on: the watermark's, or the
// task's for processing-time windows.
func (o *windowOp[K, IN, OUT]) endDomain() engine.TimeDomain {
	if o.procTime {
		return engine.ProcessingTime
	}
	return engine.EventTime
}

// passed reports whether the window's clock is at or past at.
func (o *windowOp[K, IN, OUT]) passed(at windowing.Millis) bool {
	if o.procTime {
		return windowing.MillisOf(o.c.task.Now()) >= at
	}
	return behind(o.c.task, at)
}

// add puts r in its windows; it reports whether r was late for all of them.
func (o *windowOp[K, IN, OUT]) add(r engine.Record[IN]) (late bool, err error) {
	ts := windowing.MillisOf(r.Timestamp)
	if o.procTime {
		ts = windowing.MillisOf(o.c.task.Now())
	}
	if o.elements != nil {
		// The assigner runs user code (a gap function): guarded, so that
		// a failure meets the operator's error policy.
		var err error
		ok, gerr := o.c.guard.Do(func() error {
			o.buf, err = o.elements.AssignElement(o.buf[:0], r.Value, ts)
			return err
		})
		if !ok {
			if gerr != nil {
				return false, guardedError{gerr}
			}
			return false, nil // dead-lettered or skipped by the policy
		}
	} else {
		o.buf = o.assigner.Assign(o.buf[:0], ts)
	}
	if len(o.buf) == 0 {
		return false, nil
	}
	if o.assigner.Merging() {
		return o.addMerging(r.Value, o.buf[0])
	}
	if o.slicing != nil {
		return o.addSliced(r.Value, ts)
	}
	late = true
	for _, w := range o.buf {
		if o.isLate(w) {
			continue
		}
		late = false
		if err := o.update(w, w, r.Value, false); err != nil {
			return false, err
		}
	}
	return late, nil
}

// addSliced adds a record of event time ts to its slice, and acts for
// each of its windows as update does with the event-time trigger: a
// window already past its end fires at once (a late record within the
// allowed lateness). A key's windows fire in a chain, as Flink SQL's
// sliced windows do: the record that creates a slice sets the end timer
// of the slice's first window not yet past its end, and each firing sets
// the next window's while a slice it holds is left (onTimer). With
// allowed lateness, the window that owns the slice (the last to hold it)
// gets the cleanup timer that drops it. It reports whether r was late for
// every window.
func (o *windowOp[K, IN, OUT]) addSliced(v IN, ts windowing.Millis) (late bool, err error) {
	late = true
	for _, w := range o.buf {
		if !o.isLate(w) {
			late = false
			break
		}
	}
	if late {
		return true, nil
	}
	defer func() { o.c.ns = nil }()
	o.c.ns = o.namespace(o.slicing.SliceOf(ts))
	existed, err := o.contents.add(o.c, v)
	if err != nil {
		return false, err
	}
	if !existed {
		for _, w := range o.buf {
			if !o.isLate(w) && !o.passed(w.MaxTimestamp()) {
				o.timers.Register(engine.EventTime, w.MaxTimestamp(), o.timerKey(w, windowFire))
				break
			}
		}
		if owner := o.buf[len(o.buf)-1]; !o.cleansAtFire() {
			o.timers.Register(engine.EventTime, owner.CleanupTime(o.lateness), o.timerKey(owner, windowCleanup))
		}
	}
	for _, w := range o.buf {
		if o.isLate(w) || !o.passed(w.MaxTimestamp()) {
			continue
		}
		o.setWindow(w, w)
		if _, err := o.fireSliced(w); err != nil {
			return false, err
		}
	}
	return false, nil
}

// fireSliced emits sliced window w (setWindow must have made it the one
// handled); more reports that a slice the next window also holds has an
// accumulator.
func (o *windowOp[K, IN, OUT]) fireSliced(w windowing.Window) (more bool, err error) {
	o.col.win = w
	ns := o.c.ns
	o.c.ns = o.contentsNs
	defer func() { o.c.ns = ns }()
	o.sliceBuf = o.slicing.Slices(o.sliceBuf[:0], w)
	last, err := o.slicer.emitSlices(o.c, o.sliceBuf, o.col, &o.sliceNsBuf)
	return last >= 0 && !o.slicing.Owns(w, o.sliceBuf[last]), err
}

// cleansAtFire reports whether the trigger's end-of-window timer is also
// the window's cleanup (no lateness, and a trigger that fires at the
// window's event-time end): then no separate cleanup timer is set.
func (o *windowOp[K, IN, OUT]) cleansAtFire() bool {
	if o.procTime {
		return o.trigger.Kind == windowing.ProcessingTimeTrigger || o.trigger.Kind == windowing.ContinuousProcessingTimeTrigger
	}
	switch o.trigger.Kind {
	case windowing.EventTimeTrigger, windowing.ContinuousEventTimeTrigger, windowing.ContinuousProcessingTimeTrigger:
		return o.lateness == 0
	}
	return false
}

// update adds v to window w (its contents to state window sw), then acts
// on the trigger as Flink's
// triggers' onElement do: the event-time triggers fire w at once if the
// watermark is already past its end (a late record within the allowed
// lateness) and otherwise set its timer; a count trigger counts; the
// processing-time trigger sets its timer. The continuous processing-time
// trigger sets its period and, unlike Flink's, also fires at the
// window's event-time end.
//
// A window's timers are set by the record that creates its contents; a
// later record of a window that holds something finds them set and does
// not set them again (registering costs a lookup of the timer's id). A
// merged session is new, whatever its contents: only a session the
// record falls into unchanged (isLive) has its timers.
func (o *windowOp[K, IN, OUT]) update(w, sw windowing.Window, v IN, isLive bool) error {
	o.setWindow(w, sw)
	defer func() { o.c.ns = nil }()
	o.c.ns = o.contentsNs
	existed, err := o.contents.add(o.c, v)
	o.c.ns = o.nsBuf
	if err != nil {
		return err
	}
	timersSet := existed && (isLive || !o.assigner.Merging())
	global := w == windowing.GlobalWindow
	if !global && !o.cleansAtFire() && !timersSet {
		// State goes when the watermark passes end + lateness, whichever
		// trigger fires the window (WindowOperator.registerCleanupTimer).
		o.timers.Register(o.endDomain(), w.CleanupTime(o.lateness), o.timerKey(w, windowCleanup))
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
		if !timersSet {
			o.timers.Register(engine.ProcessingTime, w.MaxTimestamp(), o.timerKey(w, windowFire))
		}
		return nil
	case windowing.ContinuousProcessingTimeTrigger:
		// The window's first record sets the first period, aligned to the
		// interval, as Flink's ContinuousProcessingTimeTrigger does. Unlike
		// it, the window also fires at its event-time end (below), so that
		// what came after the last period is not lost.
		_, pending, err := o.fireAt.Get(o.c)
		if err != nil {
			return err
		}
		if !pending {
			now := o.c.task.Now().UnixMilli()
			next := windowing.AddMillis(windowing.Millis(now-mod(now, int64(o.trigger.Interval))), o.trigger.Interval)
			if err := o.setFireAt(engine.ProcessingTime, w, next); err != nil {
				return err
			}
		}
	}
	if global {
		return nil
	}
	if o.passed(w.MaxTimestamp()) {
		return o.fire(w) // late, within the allowed lateness: fire again now
	}
	if !timersSet {
		o.timers.Register(o.endDomain(), w.MaxTimestamp(), o.timerKey(w, windowFire))
	}
	if o.trigger.Kind == windowing.ContinuousEventTimeTrigger {
		// The window's first record sets its first period, aligned to
		// the interval; later records keep it.
		if _, pending, err := o.fireAt.Get(o.c); err != nil || pending {
			return err
		}
		ts := o.c.rec.Timestamp.UnixMilli()
		return o.nextPeriod(w, windowing.Millis(ts-mod(ts, int64(o.trigger.Interval))))
	}
	return nil
}

// nextPeriod sets a continuous event-time trigger's next firing, an
// interval after from, at most the window's end (Flink's
// registerNextFireTimestamp). At the end the end timer fires it: no
// second timer, so it fires once.
func (o *windowOp[K, IN, OUT]) nextPeriod(w windowing.Window, from windowing.Millis) error {
	next := min(windowing.AddMillis(from, o.trigger.Interval), w.MaxTimestamp())
	if next == w.MaxTimestamp() && w != windowing.GlobalWindow {
		return o.fireAt.Set(o.c, int64(next))
	}
	return o.setFireAt(engine.EventTime, w, next)
}

// setFireAt records a continuous trigger's pending firing and sets its
// timer.
func (o *windowOp[K, IN, OUT]) setFireAt(d engine.TimeDomain, w windowing.Window, at windowing.Millis) error {
	o.timers.Register(d, at, o.timerKey(w, windowEarly))
	return o.fireAt.Set(o.c, int64(at))
}

// clearFireAt drops the window's pending continuous firing, timer and all
// (the trigger's clear).
func (o *windowOp[K, IN, OUT]) clearFireAt(w windowing.Window) error {
	at, ok, err := o.fireAt.Get(o.c)
	if err != nil || !ok {
		return err
	}
	o.timers.Delete(o.periodDomain(), windowing.Millis(at), o.timerKey(w, windowEarly))
	o.fireAt.Clear(o.c)
	return nil
}

func (o *windowOp[K, IN, OUT]) periodDomain() engine.TimeDomain {
	if o.trigger.Kind == windowing.ContinuousProcessingTimeTrigger {
		return engine.ProcessingTime
	}
	return engine.EventTime
}

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

// fireTimerDomain is the clock of the timer update sets at a window's end
// to fire it; ok is false for a trigger that sets none (a count trigger
// fires on records).
func (o *windowOp[K, IN, OUT]) fireTimerDomain() (d engine.TimeDomain, ok bool) {
	switch o.trigger.Kind {
	case windowing.CountTrigger:
		return 0, false
	case windowing.ProcessingTimeTrigger:
		return engine.ProcessingTime, true
	}
	return o.endDomain(), true
}

// fire emits window w (setWindow must have made it the one handled), purging its
// contents if the trigger says so (PurgingTrigger's FIRE_AND_PURGE).
func (o *windowOp[K, IN, OUT]) fire(w windowing.Window) error {
	o.col.win = w
	ns := o.c.ns
	o.c.ns = o.contentsNs
	defer func() { o.c.ns = ns }()
	ok, err := o.contents.emit(o.c, w, o.col)
	if err != nil || !ok || !o.trigger.Purge {
		return err
	}
	return o.contents.clear(o.c)
}

// addMerging adds a record to its session: the new window [ts, ts+gap)
// and every session of the key it touches merge into one. As Flink's
// MergingWindowSet, the merged session keeps the first absorbed session's
// state window, where its contents already are, and only the other
// absorbed sessions' contents move into it.
func (o *windowOp[K, IN, OUT]) addMerging(v IN, nw windowing.Window) (late bool, err error) {
	live, _, err := o.sessions.get(o.c)
	if err != nil {
		return false, err
	}
	all := o.mergeBuf[:0]
	for _, s := range live {
		all = append(all, s.W)
	}
	all = append(all, nw)
	o.mergeBuf = all
	target, idx, group := mergeGroupOfLast(all, o.mergeIdx, o.mergeGroup)
	o.mergeIdx, o.mergeGroup = idx, group
	absorbed := o.absorbedBuf[:0]
	for _, j := range group {
		if j != len(all)-1 {
			absorbed = append(absorbed, live[j])
		}
	}
	o.absorbedBuf = absorbed
	if o.isLate(target) {
		return true, nil
	}
	// The record falls into a session it leaves as it is: nothing merges,
	// and the session list does not change.
	for _, s := range live {
		if s.W == target {
			return false, o.update(target, s.State, v, true)
		}
	}
	// The merged session's contents: the first absorbed session's state
	// window, or, for a session of this record alone, its own window.
	sw := target
	if len(absorbed) > 0 {
		sw = absorbed[0].State
	}
	// Move the other absorbed sessions' contents into it, and their
	// trigger state into the merged window (the triggers' onMerge: counts
	// add up, the earliest pending period stays), and drop their timers
	// (their clear). The merged window is not a live session, so it has no
	// trigger state yet; only the trigger in use has state to move, and
	// only the timers update sets are deleted.
	counting := o.trigger.Kind == windowing.CountTrigger
	periodic := o.trigger.Kind == windowing.ContinuousEventTimeTrigger || o.trigger.Kind == windowing.ContinuousProcessingTimeTrigger
	fireDomain, fires := o.fireTimerDomain()
	cleans := !o.cleansAtFire()
	var count, pending int64
	hasPending := false
	for i, s := range absorbed {
		w := s.W
		if i > 0 {
			o.c.ns = o.namespace(sw)
			o.fromNsBuf = appendWindow(o.fromNsBuf[:0], s.State)
			if err := o.contents.absorb(o.c, o.fromNsBuf); err != nil {
				return false, err
			}
		}
		o.c.ns = o.namespace(w)
		if counting {
			n, _, err := o.counts.Get(o.c)
			if err != nil {
				return false, err
			}
			count += n
			o.counts.Clear(o.c)
		}
		if periodic {
			at, ok, err := o.fireAt.Get(o.c)
			if err != nil {
				return false, err
			}
			if ok && (!hasPending || at < pending) {
				pending, hasPending = at, true
			}
			if err := o.clearFireAt(w); err != nil {
				return false, err
			}
		}
		if fires {
			o.timers.Delete(fireDomain, w.MaxTimestamp(), o.timerKey(w, windowFire))
		}
		if cleans {
			o.timers.Delete(o.endDomain(), w.CleanupTime(o.lateness), o.timerKey(w, windowCleanup))
		}
	}
	o.c.ns = o.namespace(target)
	if count > 0 {
		if err := o.counts.Set(o.c, count); err != nil {
			return false, err
		}
	}
	if hasPending {
		if err := o.setFireAt(o.periodDomain(), target, windowing.Millis(pending)); err != nil {
			return false, err
		}
	}
	o.c.ns = nil
	rest := slices.DeleteFunc(live, func(s session) bool { return slices.Contains(absorbed, s) })
	if err := o.sessions.set(o.c, append(rest, session{W: target, State: sw})); err != nil {
		return false, err
	}
	return false, o.update(target, sw, v, false)
}

// mergeGroupOfLast is windowing.MergeWindows(ws) for the one merged
// window that covers ws's last: that window, and which of ws it covers,
// in the order MergeWindows gives them (by start, stable), without
// allocating: idx and group are scratch space, returned grown.
func mergeGroupOfLast(ws []windowing.Window, idx, group []int) (target windowing.Window, _, _ []int) {
	idx = idx[:0]
	for i := range ws {
		idx = append(idx, i)
	}
	// Insertion sort, as MergeWindows: a key has few live sessions.
	for i := 1; i < len(idx); i++ {
		for j := i; j > 0 && ws[idx[j]].Start < ws[idx[j-1]].Start; j-- {
			idx[j], idx[j-1] = idx[j-1], idx[j]
		}
	}
	group = group[:0]
	found := false
	for k, i := range idx {
		if k > 0 && target.Intersects(ws[i]) {
			target = target.Cover(ws[i])
		} else {
			if found {
				break // the group that covers the last is whole
			}
			target, group = ws[i], group[:0]
		}
		group = append(group, i)
		found = found || i == len(ws)-1
	}
	return target, idx, group
}

// stateWindow returns the state window of the key's live session win:
// where its contents are. A window that is not a live session keeps its
// own.
func (o *windowOp[K, IN, OUT]) stateWindow(win windowing.Window) (windowing.Window, error) {
	if !o.assigner.Merging() {
		return win, nil
	}
	ns := o.c.ns
	o.c.ns = nil
	live, _, err := o.sessions.get(o.c)
	o.c.ns = ns
	for _, s := range live {
		if s.W == win {
			return s.State, err
		}
	}
	return win, err
}

// onTimer fires or cleans up a window, as WindowOperator.onEventTime and
// onProcessingTime do with the trigger's answer.
func (o *windowOp[K, IN, OUT]) onTimer(tk []byte, at windowing.Millis, domain engine.TimeDomain) error {
	key, parts, err := splitTimerSubject(tk, 17)
	if err != nil {
		return err
	}
	win, kind := decodeWindow(parts), parts[16]
	if err := o.c.setKey(key, int64(win.MaxTimestamp())); err != nil {
		return err
	}
	sw, err := o.stateWindow(win)
	if err != nil {
		return err
	}
	o.setWindow(win, sw)
	defer func() { o.c.ns = nil }()
	switch kind {
	case windowEarly:
		// A continuous trigger's period: if it is the window's pending
		// one, set the next and fire (empty windows emit nothing, but the
		// periods go on until the window's cleanup).
		pending, ok, err := o.fireAt.Get(o.c)
		if err != nil || !ok || windowing.Millis(pending) != at {
			return err
		}
		o.fireAt.Clear(o.c)
		if domain == engine.ProcessingTime {
			err = o.setFireAt(domain, win, windowing.AddMillis(at, o.trigger.Interval))
		} else {
			err = o.nextPeriod(win, at)
		}
		if err != nil {
			return err
		}
		return o.fire(win)
	case windowFire:
		if o.slicing != nil {
			more, err := o.fireSliced(win)
			if err != nil {
				return err
			}
			if more {
				next := windowing.Window{Start: windowing.AddMillis(win.Start, o.slicing.Slide()), End: windowing.AddMillis(win.End, o.slicing.Slide())}
				o.timers.Register(engine.EventTime, next.MaxTimestamp(), o.timerKey(next, windowFire))
			}
		} else if err := o.fire(win); err != nil {
			return err
		}
		if domain != o.endDomain() || !o.cleansAtFire() {
			return nil // kept for late records until the cleanup timer
		}
	}
	return o.cleanup(win)
}

// cleanup drops everything of window win (setWindow must have made it the
// one handled): its contents, its trigger's state and timers, and, for
// sessions, the window itself.
func (o *windowOp[K, IN, OUT]) cleanup(win windowing.Window) error {
	o.c.ns = o.contentsNs
	err := o.contents.clear(o.c)
	if o.slicing != nil {
		o.sliceBuf = o.slicing.Owned(o.sliceBuf[:0], win)
		o.slicer.clearSlices(o.c, o.sliceBuf, &o.sliceNsBuf)
	}
	o.c.ns = o.nsBuf
	if err != nil {
		return err
	}
	// Only the trigger that keeps state has state to clear, as Flink's
	// Trigger.clear is the trigger's own: a tombstone for every window
	// would cost a write and a changelog record each.
	switch o.trigger.Kind {
	case windowing.CountTrigger:
		o.counts.Clear(o.c)
	case windowing.ContinuousEventTimeTrigger, windowing.ContinuousProcessingTimeTrigger:
		if err := o.clearFireAt(win); err != nil {
			return err
		}
	}
	if o.trigger.Kind == windowing.ProcessingTimeTrigger {
		o.timers.Delete(engine.ProcessingTime, win.MaxTimestamp(), o.timerKey(win, windowFire))
	}
	if o.assigner.Merging() {
		o.c.ns = nil
		live, _, err := o.sessions.get(o.c)
		if err != nil {
			return err
		}
		live = slices.DeleteFunc(live, func(s session) bool { return s.W == win })
		if len(live) == 0 {
			o.sessions.clear(o.c)
			return nil
		}
		return o.sessions.set(o.c, live)
	}
	return nil
}

// guardedError is an error that user code returned through the
// operator's Guard, which has already dealt with it.
type guardedError struct{ err error }

func (g guardedError) Error() string { return g.err.Error() }

// watermarkTime is the task's watermark as a time, the zero time before
// any.
func watermarkTime(t *engine.Task) time.Time {
	wm := t.Watermark()
	if wm == windowing.MinWatermark {
		return time.Time{}
	}
	return time.UnixMilli(int64(wm))
}

// SideOutput serves engine.OutputTag.Emit for a ProcessWindowFunction: a
// side output of the window's key, at the window's last millisecond.
func (w *windowCollector[K, OUT]) SideOutput(id string) (any, engine.Record[struct{}]) {
	return w.c.sides.Lookup(id), engine.Record[struct{}]{Key: w.c.rec.Key, Timestamp: w.win.MaxTimestamp().Time()}
}

// Count is the aggregate function counting records.
type Count[IN any] struct{}

func (Count[IN]) Zero() int64               { return 0 }
func (Count[IN]) Add(acc int64, _ IN) int64 { return acc + 1 }
func (Count[IN]) Merge(a, b int64) int64    { return a + b }
func (Count[IN]) Result(acc int64) int64    { return acc }
func (Count[IN]) exactMerge()               {}
