package operators

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/state"
	"github.com/weirstream/weir/windowing"
)

// IntervalJoin joins two keyed streams by key and time, as Flink's
// interval join: a left record at time l joins every right record of its
// key at time r with l+lower <= r <= l+upper (both bounds inclusive, as
// Flink's default). Records are buffered in the state store until the
// watermark makes further matches impossible, then removed by timers.
// Records behind the watermark on arrival are late: they cannot join any
// more. They are counted in the operator's late records and, as a
// window's, never dropped silently: they go to LeftLateOutput and
// RightLateOutput side outputs (Flink's sideOutputLeftLateData and
// sideOutputRightLateData) or, for a side without one, to the topic
// <group>-<operator>-late, created by Weir, as JSON with headers saying
// why (weir.late.side says which side).
//
// Both streams must be read by one stage: key them together with
// operators.KeyByBoth, or by their record keys in one stage.
//
// The buffered records are kept encoded as JSON unless JoinCodecs says
// otherwise.
func IntervalJoin[K comparable, L, R, OUT any](left engine.KeyedStream[K, L], right engine.KeyedStream[K, R], name string,
	lower, upper time.Duration, join func(key K, l L, r R) (OUT, error), opts ...JoinOpt) engine.Stream[OUT] {
	job := left.Job()
	out := engine.Derive[OUT](left.Stream, name)
	cfg := joinOptions(opts)
	lc, rc, err := joinCodecs[L, R](cfg)
	if err != nil {
		job.TopologyError(fmt.Errorf("%s: %w", out.Name(), err))
	}
	checkTwoInputs(job, out.Name(), "an interval join", true, left, right)
	if lower > upper {
		job.TopologyError(fmt.Errorf("%s: lower bound %v is above upper bound %v", out.Name(), lower, upper))
	}
	if cfg.ttl != 0 {
		job.TopologyError(fmt.Errorf("%s: JoinTTL is the regular Join's; an interval join drops its records when the watermark passes their bound", out.Name()))
	}
	leftLate, rightLate, err := joinLateTags[L, R](cfg)
	if err != nil {
		job.TopologyError(fmt.Errorf("%s: %w", out.Name(), err))
	}
	var lateTopic *engine.InternalTopic
	if leftLate == nil || rightLate == nil {
		lateTopic = job.AddInternalTopic(out.Name()+"-late", out.Stage())
	}
	reg := state.NewRegistry(out.Name())
	lbuf := state.NewMap(reg, "left", codec.Key[int64](), sliceCodec[L]{lc})
	rbuf := state.NewMap(reg, "right", codec.Key[int64](), sliceCodec[R]{rc})
	if err := reg.Err(); err != nil {
		job.TopologyError(err)
	}
	job.AddStatefulOperator(out.Name(), out.Stage())
	lo, hi := lower.Milliseconds(), upper.Milliseconds()
	// Exclusive bounds are inclusive ones a millisecond inside, as Flink
	// implements them.
	if cfg.lowerExclusive {
		lo++
	}
	if cfg.upperExclusive {
		hi--
	}

	// One joiner per task, shared by the two inputs' subscribers: the
	// first to be built makes it, the second takes it away.
	get := perTask(func(t *engine.Task) (*intervalJoiner[K, L, R, OUT], error) {
		timers := t.Timers(out.Name()) // before downstream's: see Task.Timers
		down, err := out.Build(t)
		if err != nil {
			return nil, err
		}
		sides, err := out.BuildSides(t)
		if err != nil {
			return nil, err
		}
		c := &keyedCtx[K]{task: t, keys: left.Key, timers: timers, guard: t.Guard(out.Name(), engine.ClassError)}
		stats := t.Stats(out.Name())
		ij := &intervalJoiner[K, L, R, OUT]{c: c, lbuf: lbuf, rbuf: rbuf, lo: lo, hi: hi, stats: stats, op: out.Name(),
			pairs: pairs[K, L, R, OUT]{c: c, join: join, down: down, stats: stats}}
		reason := "behind the watermark on arrival: no record of the other side can join it any more"
		if leftLate != nil {
			ij.lateLeft, _ = sides.Lookup(leftLate.Name()).(engine.Emit[L])
		} else {
			ij.lateLeft = lateToTopic(t, out.Name(), lateTopic.Name(), codec.JSON[L](), reason, kgo.RecordHeader{Key: HeaderLateSide, Value: []byte("left")})
		}
		if rightLate != nil {
			ij.lateRight, _ = sides.Lookup(rightLate.Name()).(engine.Emit[R])
		} else {
			ij.lateRight = lateToTopic(t, out.Name(), lateTopic.Name(), codec.JSON[R](), reason, kgo.RecordHeader{Key: HeaderLateSide, Value: []byte("right")})
		}
		timers.OnFire(ij.onTimer)
		return ij, nil
	})
	left.Subscribe(func(t *engine.Task) (engine.Emit[L], error) {
		ij, err := get(t)
		if err != nil {
			return nil, err
		}
		return ij.onLeft, nil
	})
	right.Subscribe(func(t *engine.Task) (engine.Emit[R], error) {
		ij, err := get(t)
		if err != nil {
			return nil, err
		}
		return ij.onRight, nil
	})
	return out
}

// JoinOpt configures a join (IntervalJoin, WindowJoin, Join).
type JoinOpt func(*joinConfig)

type joinConfig struct {
	lowerExclusive, upperExclusive bool
	lc, rc                         any // codec.Codec[L], codec.Codec[R]
	leftLate, rightLate            any // engine.OutputTag[L], engine.OutputTag[R]
	ttl                            time.Duration
}

// LeftLateOutput sends left records that arrive behind the watermark to
// tag (Flink's sideOutputLeftLateData) instead of the late-data topic;
// engine.SideOutput(joined, tag) reads them. IntervalJoin only.
func LeftLateOutput[L any](tag engine.OutputTag[L]) JoinOpt {
	return func(c *joinConfig) { c.leftLate = tag }
}

// RightLateOutput is LeftLateOutput for the right side (Flink's
// sideOutputRightLateData).
func RightLateOutput[R any](tag engine.OutputTag[R]) JoinOpt {
	return func(c *joinConfig) { c.rightLate = tag }
}

// joinLateTags returns the late side outputs' tags, nil for a side
// without one.
func joinLateTags[L, R any](c joinConfig) (*engine.OutputTag[L], *engine.OutputTag[R], error) {
	var l *engine.OutputTag[L]
	var r *engine.OutputTag[R]
	var lz L
	var rz R
	if c.leftLate != nil {
		tag, ok := c.leftLate.(engine.OutputTag[L])
		if !ok {
			return nil, nil, fmt.Errorf("LeftLateOutput's tag is %T, the left records are %T", c.leftLate, lz)
		}
		l = &tag
	}
	if c.rightLate != nil {
		tag, ok := c.rightLate.(engine.OutputTag[R])
		if !ok {
			return nil, nil, fmt.Errorf("RightLateOutput's tag is %T, the right records are %T", c.rightLate, rz)
		}
		r = &tag
	}
	return l, r, nil
}

func joinOptions(opts []JoinOpt) joinConfig {
	var c joinConfig
	for _, o := range opts {
		o(&c)
	}
	return c
}

// LowerBoundExclusive makes l+lower excluded (Flink's lowerBoundExclusive).
// IntervalJoin only.
func LowerBoundExclusive() JoinOpt { return func(c *joinConfig) { c.lowerExclusive = true } }

// UpperBoundExclusive makes l+upper excluded (Flink's upperBoundExclusive).
// IntervalJoin only.
func UpperBoundExclusive() JoinOpt { return func(c *joinConfig) { c.upperExclusive = true } }

// JoinCodecs sets how the join keeps the left and the right records in
// its state. Default: codec.JSON of each side's type. Codecs of other
// types than the join's sides fail the job at start.
func JoinCodecs[L, R any](left codec.Codec[L], right codec.Codec[R]) JoinOpt {
	return func(c *joinConfig) { c.lc, c.rc = left, right }
}

// joinCodecs returns the sides' codecs: JoinCodecs', else JSON.
func joinCodecs[L, R any](c joinConfig) (codec.Codec[L], codec.Codec[R], error) {
	lc, rc := codec.JSON[L](), codec.JSON[R]()
	if c.lc == nil {
		return lc, rc, nil
	}
	l, lok := c.lc.(codec.Codec[L])
	r, rok := c.rc.(codec.Codec[R])
	if !lok || !rok {
		var lz L
		var rz R
		return lc, rc, fmt.Errorf("JoinCodecs got codecs of %T and %T, the join's sides are %T and %T", c.lc, c.rc, lz, rz)
	}
	return l, r, nil
}

type intervalJoiner[K comparable, L, R, OUT any] struct {
	c      *keyedCtx[K]
	lbuf   *state.Map[int64, []L]
	rbuf   *state.Map[int64, []R]
	lo, hi int64
	pairs  pairs[K, L, R, OUT]
	// lateLeft and lateRight take each side's late records.
	lateLeft  engine.Emit[L]
	lateRight engine.Emit[R]
	stats     *engine.OpStats
	op        string
}

const (
	joinLeft  byte = 0
	joinRight byte = 1
)

// late: behind the watermark on arrival (a record at the watermark still
// joins, as Flink's interval join does).
func (j *intervalJoiner[K, L, R, OUT]) late(ts int64) bool {
	wm := j.c.task.Watermark()
	return wm != windowing.MinWatermark && windowing.Millis(ts) < wm
}

func (j *intervalJoiner[K, L, R, OUT]) onLeft(r engine.Record[L]) error {
	// A left record at ts matches right records in [ts+lo, ts+hi], and no
	// right record later than ts+hi.
	return joinSide(j, r, j.lbuf, j.rbuf, j.lo, j.hi, max(j.hi, 0), joinLeft, j.lateLeft,
		func(l L, rv R, ts int64) error { return j.pairs.emit(l, rv, ts) })
}

func (j *intervalJoiner[K, L, R, OUT]) onRight(r engine.Record[R]) error {
	// A right record at ts matches left records in [ts-hi, ts-lo], and no
	// left record later than ts-lo.
	return joinSide(j, r, j.rbuf, j.lbuf, -j.hi, -j.lo, -min(j.lo, 0), joinRight, j.lateRight,
		func(rv R, l L, ts int64) error { return j.pairs.emit(l, rv, ts) })
}

// joinSide handles a record of one side: it buffers it, joins it with the
// other side's records at [ts+from, ts+to], and sets the timer that drops
// it once the watermark passes ts+keep.
func joinSide[K comparable, L, R, OUT, OWN, OTHER any](j *intervalJoiner[K, L, R, OUT], r engine.Record[OWN],
	own *state.Map[int64, []OWN], other *state.Map[int64, []OTHER], from, to, keep int64, side byte,
	late engine.Emit[OWN], pair func(OWN, OTHER, int64) error) error {
	j.stats.In++
	ts := r.Timestamp.UnixMilli()
	if err := j.c.setKey(r.Key, ts); err != nil {
		return &engine.OperatorError{Operator: j.op, Err: err}
	}
	if j.late(ts) {
		j.stats.Late++
		if late != nil {
			return late(r)
		}
		return nil
	}
	if err := add(j.c, own, ts, r.Value); err != nil {
		return &engine.OperatorError{Operator: j.op, Err: err}
	}
	var err error
	if rerr := other.Range(j.c, func(ot int64, vs []OTHER) bool {
		if ot < ts+from || ot > ts+to {
			return true
		}
		for _, v := range vs {
			if err = pair(r.Value, v, max(ts, ot)); err != nil {
				return false
			}
		}
		return true
	}); rerr != nil {
		return &engine.OperatorError{Operator: j.op, Err: rerr}
	}
	if err != nil {
		return err
	}
	j.c.timers.Register(engine.EventTime, windowing.Millis(ts+keep), cleanupKey(r.Key, side, ts))
	return nil
}

func add[T any, K comparable](c *keyedCtx[K], m *state.Map[int64, []T], ts int64, v T) error {
	vs, _, err := m.Get(c, ts)
	if err != nil {
		return err
	}
	return m.Put(c, ts, append(vs, v))
}

func cleanupKey(key []byte, side byte, ts int64) []byte {
	return timerSubject(key, []byte{side}, orderedMillis(ts))
}

// onTimer drops a buffered timestamp no later record can match.
func (j *intervalJoiner[K, L, R, OUT]) onTimer(tk []byte, _ windowing.Millis, _ engine.TimeDomain) error {
	key, parts, err := splitTimerSubject(tk, 9)
	if err != nil {
		return err
	}
	side, ts := parts[0], millisAt(parts[1:])
	if err := j.c.setKey(key, ts); err != nil {
		return err
	}
	if side == joinLeft {
		return j.lbuf.Delete(j.c, ts)
	}
	return j.rbuf.Delete(j.c, ts)
}

// sliceCodec encodes the records buffered at one timestamp: each element
// with the stream's codec, length-prefixed.
type sliceCodec[T any] struct{ c codec.Codec[T] }

func (s sliceCodec[T]) Encode(vs []T) ([]byte, error) {
	var b []byte
	for _, v := range vs {
		e, err := s.c.Encode(v)
		if err != nil {
			return nil, err
		}
		b = binary.AppendUvarint(b, uint64(len(e)))
		b = append(b, e...)
	}
	return b, nil
}

func (s sliceCodec[T]) Decode(b []byte) ([]T, error) {
	var vs []T
	for len(b) > 0 {
		n, w := binary.Uvarint(b)
		if w <= 0 || uint64(len(b)-w) < n {
			return nil, fmt.Errorf("buffered records: malformed length")
		}
		v, err := s.c.Decode(b[w : w+int(n)])
		if err != nil {
			return nil, err
		}
		vs = append(vs, v)
		b = b[w+int(n):]
	}
	return vs, nil
}
