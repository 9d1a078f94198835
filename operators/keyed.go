package operators

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/state"
	"github.com/weirstream/weir/windowing"
)

// Collector receives the records an operator's function emits while it
// handles one input record, timer or window. It is valid only during the
// call it is passed to.
type Collector[T any] interface {
	// Collect emits v under the current record's key and event time.
	Collect(v T) error
	// SideOutput serves engine.OutputTag.Emit: tag.Emit(out, v) routes v
	// to the side output engine.SideOutput(stream, tag) reads.
	engine.SideEmitter
}

// TimestampedCollector is a Collector that can also stamp an output with
// an event time of its own: a join's result with the later of its two
// sides' times, say, rather than the time of the side that came last.
// Process functions' collectors are; use CollectAt.
type TimestampedCollector[T any] interface {
	Collector[T]
	// CollectAt emits v under the current key, at event time ts. An
	// output stamped behind the watermark is late for the operators
	// after this one.
	CollectAt(v T, ts time.Time) error
}

// CollectAt emits v at event time ts through out, which must be a
// TimestampedCollector.
func CollectAt[T any](out Collector[T], v T, ts time.Time) error {
	tc, ok := out.(TimestampedCollector[T])
	if !ok {
		return fmt.Errorf("operators: CollectAt: %T cannot stamp its outputs", out)
	}
	return tc.CollectAt(v, ts)
}

// TimerService registers and deletes the current key's timers. Timers are
// kept in the state store with the rest of the task's state, so they
// survive restarts; registering the same (key, time) twice keeps one timer,
// as in Flink.
type TimerService interface {
	RegisterEventTimeTimer(at time.Time)
	RegisterProcessingTimeTimer(at time.Time)
	DeleteEventTimeTimer(at time.Time)
	DeleteProcessingTimeTimer(at time.Time)
}

// Context is what a keyed function sees of the record or timer it
// handles: the key, the times, timers, side outputs and, being a
// state.Scope, the key's state. It is valid only during the call it is
// passed to.
type Context[K comparable] interface {
	state.Scope
	// Key is the current key.
	Key() K
	// Timestamp is the record's event time, or the timer's time in OnTimer.
	Timestamp() time.Time
	// Watermark is the task's current event-time watermark: no record
	// older than it is expected any more. The zero time before any.
	Watermark() time.Time
	// Timers registers timers for the current key.
	Timers() TimerService
	// SideOutput serves engine.OutputTag.Emit.
	engine.SideEmitter
}

// keyedCtx is the Context of one keyed operator in one task, reset for
// each record and timer.
type keyedCtx[K comparable] struct {
	task   *engine.Task
	keys   interface{ Decode([]byte) (K, error) }
	timers *engine.Timers
	rec    engine.Record[struct{}] // current key and time
	// key is rec.Key decoded, once keyOK. A key codec that decodes any
	// bytes (codec.TotalDecoder) is decoded on first need (Key); any
	// other at once, so that a key it refuses fails its record.
	key   K
	keyOK bool
	lazy  int8               // 0 not known yet, 1 decode on need, -1 at once
	sides engine.SideOutputs // side-output emitters by tag
	ns    []byte             // state namespace, e.g. a window; nil for plain keyed state
	// guard runs the operator's user code (see engine.Guard).
	guard *engine.Guard
}

func (c *keyedCtx[K]) SideOutput(id string) (any, engine.Record[struct{}]) {
	return c.sides.Lookup(id), c.rec
}

// setKey makes key (encoded) and ts current. A key that does not decode
// fails the record: a keyed operator must never see a wrong key.
func (c *keyedCtx[K]) setKey(key []byte, ts int64) error {
	c.rec.Key, c.rec.Timestamp = key, time.UnixMilli(ts)
	if c.lazy == 0 {
		c.lazy = -1
		if _, ok := c.keys.(codec.TotalDecoder); ok {
			c.lazy = 1
		}
	}
	if c.lazy > 0 {
		c.keyOK = false
		return nil
	}
	k, err := c.keys.Decode(key)
	if err != nil {
		return fmt.Errorf("decoding key %q: %w", key, err)
	}
	c.key, c.keyOK = k, true
	return nil
}

// Key returns the current key, decoded.
func (c *keyedCtx[K]) Key() K {
	if !c.keyOK {
		c.key, _ = c.keys.Decode(c.rec.Key) // a TotalDecoder: never fails
		c.keyOK = true
	}
	return c.key
}

func (c *keyedCtx[K]) Timestamp() time.Time        { return c.rec.Timestamp }
func (c *keyedCtx[K]) Watermark() time.Time        { return watermarkTime(c.task) }
func (c *keyedCtx[K]) Timers() TimerService        { return timerService{c.timers, c.rec.Key} }
func (c *keyedCtx[K]) TaskStore() *state.TaskStore { return c.task.Store() }
func (c *keyedCtx[K]) CurrentKey() []byte          { return c.rec.Key }
func (c *keyedCtx[K]) Namespace() []byte           { return c.ns }
func (c *keyedCtx[K]) ProcessingTime() time.Time   { return c.task.Now() }

// behind reports whether ts is at or before the task's watermark.
func behind(t *engine.Task, ts windowing.Millis) bool {
	return windowing.IsLate(ts, t.Watermark())
}

// timerService is the TimerService of one key.
type timerService struct {
	o   *engine.Timers
	key []byte
}

func (s timerService) RegisterEventTimeTimer(at time.Time) {
	s.o.Register(engine.EventTime, windowing.MillisOf(at), s.key)
}
func (s timerService) RegisterProcessingTimeTimer(at time.Time) {
	s.o.Register(engine.ProcessingTime, windowing.MillisOf(at), s.key)
}
func (s timerService) DeleteEventTimeTimer(at time.Time) {
	s.o.Delete(engine.EventTime, windowing.MillisOf(at), s.key)
}
func (s timerService) DeleteProcessingTimeTimer(at time.Time) {
	s.o.Delete(engine.ProcessingTime, windowing.MillisOf(at), s.key)
}

// keyedCollector emits a keyed function's outputs under the current key.
type keyedCollector[K comparable, T any] struct {
	ctx   *keyedCtx[K]
	down  engine.Emit[T]
	stats *engine.OpStats
	err   error // the first failure downstream, which keeps its operator's name
}

func (c *keyedCollector[K, T]) Collect(v T) error { return c.CollectAt(v, c.ctx.rec.Timestamp) }

func (c *keyedCollector[K, T]) CollectAt(v T, ts time.Time) error {
	c.stats.Out++
	if err := c.down(engine.Record[T]{Key: c.ctx.rec.Key, Value: v, Timestamp: ts}); err != nil {
		if c.err == nil {
			c.err = err
		}
		return err
	}
	return nil
}

func (c *keyedCollector[K, T]) SideOutput(id string) (any, engine.Record[struct{}]) {
	return c.ctx.SideOutput(id)
}

// orderedMillis encodes ms so that byte order is numeric order (the sign
// bit flipped, big-endian); millisAt decodes it.
func orderedMillis(ms int64) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(ms)^(1<<63))
}

func millisAt(b []byte) int64 { return int64(binary.BigEndian.Uint64(b[:8]) ^ (1 << 63)) }

// timerSubject packs what an operator's timer is about into the timer's
// subject: the record key (length-prefixed), then the operator's own parts
// (a window, a side and a timestamp). splitTimerSubject undoes it.
func timerSubject(key []byte, parts ...[]byte) []byte {
	b := appendSubjectKey(nil, key)
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// appendSubjectKey appends a timer subject's first part, the record key
// with its length, to b.
func appendSubjectKey(b, key []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(key))), key...)
}

func splitTimerSubject(tk []byte, rest int) (key, parts []byte, err error) {
	n, w := binary.Uvarint(tk)
	if w <= 0 || len(tk) != w+int(n)+rest {
		return nil, nil, fmt.Errorf("malformed timer %x", tk)
	}
	return tk[w : w+int(n)], tk[w+int(n):], nil
}

// encodeWindow is a window as a state namespace: its bounds, in order.
func encodeWindow(w windowing.Window) []byte { return appendWindow(make([]byte, 0, 16), w) }

// appendWindow appends w's encoding (encodeWindow) to b.
func appendWindow(b []byte, w windowing.Window) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(w.Start)^(1<<63))
	return binary.BigEndian.AppendUint64(b, uint64(w.End)^(1<<63))
}

func decodeWindow(b []byte) windowing.Window {
	return windowing.Window{Start: windowing.Millis(millisAt(b)), End: windowing.Millis(millisAt(b[8:]))}
}
