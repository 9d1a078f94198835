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

// Join joins two keyed streams of one stage by key alone, as Flink SQL's
// regular join and Kafka Streams' KStream-KStream join without a time
// bound: each record joins every record of its key the other side has
// kept, in either order of arrival, and is kept for the ones to come. The
// output's event time is the later of the two records'.
//
// Both sides are kept in list state, per key. With JoinTTL(d) a record is
// kept for d of processing time (Flink's table.exec.state.ttl), then
// dropped (by a timer, also for keys no record comes back for); without
// it, forever: state grows with the number of records, so set a TTL on an
// unbounded stream. It is an inner join, with no retraction; for a
// bounded match in event time use IntervalJoin, for the latest value of a
// key JoinTable.
//
// Both streams must be read by one stage (KeyByBoth). The kept records are
// encoded as JSON unless JoinCodecs says otherwise.
func Join[K comparable, L, R, OUT any](left engine.KeyedStream[K, L], right engine.KeyedStream[K, R], name string,
	join func(key K, l L, r R) (OUT, error), opts ...JoinOpt) engine.Stream[OUT] {
	job := left.Job()
	out := engine.Derive[OUT](left.Stream, name)
	cfg := joinOptions(opts)
	lc, rc, err := joinCodecs[L, R](cfg)
	if err != nil {
		job.TopologyError(fmt.Errorf("%s: %w", out.Name(), err))
	}
	if cfg.lowerExclusive || cfg.upperExclusive || cfg.leftLate != nil || cfg.rightLate != nil {
		job.TopologyError(fmt.Errorf("%s: a regular join has no bounds and no late records (those options are IntervalJoin's)", out.Name()))
	}
	if cfg.ttl < 0 {
		job.TopologyError(fmt.Errorf("%s: JoinTTL %v is negative", out.Name(), cfg.ttl))
	}
	checkTwoInputs(job, out.Name(), "a regular join", false, left, right)
	var hopts []state.HandleOpt
	if cfg.ttl > 0 {
		hopts = append(hopts, state.WithTTL(cfg.ttl))
	}
	reg := state.NewRegistry(out.Name())
	lbuf := state.NewList(reg, "left", stampedCodec[L]{lc}, hopts...)
	rbuf := state.NewList(reg, "right", stampedCodec[R]{rc}, hopts...)
	if err := reg.Err(); err != nil {
		job.TopologyError(err)
	}
	job.AddStatefulOperator(out.Name(), out.Stage())

	get := perTask(func(t *engine.Task) (*regularJoiner[K, L, R, OUT], error) {
		timers := t.Timers(out.Name()) // before downstream's: see Task.Timers
		down, err := out.Build(t)
		if err != nil {
			return nil, err
		}
		c := &keyedCtx[K]{task: t, keys: left.Key, timers: timers, guard: t.Guard(out.Name(), engine.ClassError)}
		stats := t.Stats(out.Name())
		rj := &regularJoiner[K, L, R, OUT]{c: c, lbuf: lbuf, rbuf: rbuf, ttl: cfg.ttl, stats: stats, op: out.Name(),
			pairs: pairs[K, L, R, OUT]{c: c, join: join, down: down, stats: stats}}
		timers.OnFire(rj.onTimer)
		return rj, nil
	})
	left.Subscribe(func(t *engine.Task) (engine.Emit[L], error) {
		rj, err := get(t)
		if err != nil {
			return nil, err
		}
		return func(r engine.Record[L]) error {
			return regularSide(rj, r, rj.lbuf, rj.rbuf, func(l L, rv R, ts int64) error { return rj.pairs.emit(l, rv, ts) })
		}, nil
	})
	right.Subscribe(func(t *engine.Task) (engine.Emit[R], error) {
		rj, err := get(t)
		if err != nil {
			return nil, err
		}
		return func(r engine.Record[R]) error {
			return regularSide(rj, r, rj.rbuf, rj.lbuf, func(rv R, l L, ts int64) error { return rj.pairs.emit(l, rv, ts) })
		}, nil
	})
	return out
}

// JoinTTL keeps each record of a regular Join for d of processing time
// (Flink's table.exec.state.ttl); 0, the default, keeps them forever.
func JoinTTL(d time.Duration) JoinOpt { return func(c *joinConfig) { c.ttl = d } }

type regularJoiner[K comparable, L, R, OUT any] struct {
	c     *keyedCtx[K]
	lbuf  *state.List[stamped[L]]
	rbuf  *state.List[stamped[R]]
	ttl   time.Duration
	pairs pairs[K, L, R, OUT]
	stats *engine.OpStats
	op    string
}

// regularSide keeps a record of one side and joins it with every record
// the other side kept for its key.
func regularSide[K comparable, L, R, OUT, OWN, OTHER any](j *regularJoiner[K, L, R, OUT], r engine.Record[OWN],
	own *state.List[stamped[OWN]], other *state.List[stamped[OTHER]], pair func(OWN, OTHER, int64) error) error {
	j.stats.In++
	ts := r.Timestamp.UnixMilli()
	if err := j.c.setKey(r.Key, ts); err != nil {
		return &engine.OperatorError{Operator: j.op, Err: err}
	}
	if err := own.Add(j.c, stamped[OWN]{v: r.Value, ts: ts}); err != nil {
		return &engine.OperatorError{Operator: j.op, Err: err}
	}
	if j.ttl > 0 {
		// A timer per key and second drops what expired, also for keys
		// no record comes back for.
		at := j.c.task.Now().Add(j.ttl).Truncate(time.Second).Add(time.Second)
		j.c.timers.Register(engine.ProcessingTime, windowing.MillisOf(at), r.Key)
	}
	others, err := other.Get(j.c)
	if err != nil {
		return &engine.OperatorError{Operator: j.op, Err: err}
	}
	for _, o := range others {
		if err := pair(r.Value, o.v, max(ts, o.ts)); err != nil {
			return err
		}
	}
	return nil
}

// onTimer drops a key's expired records: reading a list with a TTL
// deletes what expired.
func (j *regularJoiner[K, L, R, OUT]) onTimer(key []byte, at windowing.Millis, _ engine.TimeDomain) error {
	if err := j.c.setKey(key, int64(at)); err != nil {
		return err
	}
	if _, err := j.lbuf.Get(j.c); err != nil {
		return err
	}
	_, err := j.rbuf.Get(j.c)
	return err
}

// stamped is a kept record with its event time.
type stamped[T any] struct {
	v  T
	ts int64
}

// stampedCodec encodes a kept record: its event time (8 bytes), then the
// record with the side's codec.
type stampedCodec[T any] struct{ c codec.Codec[T] }

func (s stampedCodec[T]) Encode(v stamped[T]) ([]byte, error) {
	b, err := s.c.Encode(v.v)
	if err != nil {
		return nil, err
	}
	return append(binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(b)), uint64(v.ts)), b...), nil
}

func (s stampedCodec[T]) Decode(b []byte) (stamped[T], error) {
	if len(b) < 8 {
		return stamped[T]{}, fmt.Errorf("kept join record: %d bytes, want at least 8", len(b))
	}
	v, err := s.c.Decode(b[8:])
	return stamped[T]{v: v, ts: int64(binary.BigEndian.Uint64(b))}, err
}
