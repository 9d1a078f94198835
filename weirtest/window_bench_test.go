package weirtest_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/internal/local"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/state"
	"github.com/weirstream/weir/windowing"
)

// The window benchmarks count records per key and window through one
// local task (source with record-time watermarks -> key by record key ->
// WindowAggregate with the Count aggregate -> KafkaSink), one record per
// Process call and a checkpoint every 10k records, as BenchmarkKeyedState
// does; beside each, the same windowed count done by a plain Go loop over a
// map with no engine, the ceiling. One op is one input record.
//
// Event time advances steadily and the watermark follows the records
// (bound 0), so windows fire continually and state stays bounded. Keys
// come round-robin: with 1k keys at 10 records per ms a key has 10 records
// in each 1s window (hot keys); with 100k keys at 100 records per ms it has
// one, and each key has a live window per second of window span (large
// state: 100k tumbling, 500k sliding windows).
// Each variant first runs untimed until its state is steady (a window's
// span and a bit), then times b.N more records.
//
// Windows are aligned, so every key's window ends at the same instant and
// they fire in a burst once per second of event time: 10k records apart with
// 1k keys, 100k with 100k keys. Time several of those periods, or the burst
// (or its absence) skews records/s: the 1k-key variants do at the default
// -benchtime, the 100k-key ones need -benchtime=400000x or more.
//
//	go test -run '^$' -bench 'BenchmarkWindows/.*/1k-keys' -benchmem ./weirtest/
//	go test -run '^$' -bench 'BenchmarkWindows/.*/100k-keys' -benchmem -benchtime=400000x ./weirtest/

// windowCase is one window assigner and how its keys' records are spread.
type windowCase struct {
	name string
	// assigner makes the assigner; sessions set their gap from the time
	// between two records of a key (windowWorkload.visit).
	assigner func(visit time.Duration) windowing.Assigner
	sessions bool
	// warmMs is the event time to run untimed before timing, in ms.
	warmMs func(w *windowWorkload) int
}

func windowCases() []windowCase {
	return []windowCase{
		{
			name:     "tumbling-count",
			assigner: func(time.Duration) windowing.Assigner { return windowing.Tumbling(time.Second) },
			warmMs:   func(*windowWorkload) int { return 2000 },
		},
		{
			name:     "sliding-5-per-record",
			assigner: func(time.Duration) windowing.Assigner { return windowing.Sliding(5*time.Second, time.Second) },
			warmMs:   func(*windowWorkload) int { return 6000 },
		},
		{
			// Half the keys are active at a time, in phases of
			// sessionVisits visits each; a key's records come one visit
			// apart and the gap is two visits, so a key's session takes
			// sessionVisits records (merging at each) and closes two
			// visits after its phase ends.
			name:     "sessions",
			assigner: func(visit time.Duration) windowing.Assigner { return windowing.Sessions(2 * visit) },
			sessions: true,
			warmMs:   func(w *windowWorkload) int { return (2*w.phase + 2*w.half) / w.perMs },
		},
	}
}

// sessionVisits is how many records a key's session gets.
const sessionVisits = 4

// windowWorkload generates the input: record i has key keys[key(i)] and
// event time base + i/perMs ms.
type windowWorkload struct {
	keys  [][]byte
	perMs int
	// Sessions: half the keys are active per phase of phase records.
	sessions    bool
	half, phase int
	base        windowing.Millis
}

func newWindowWorkload(nkeys, perMs int, sessions bool) *windowWorkload {
	w := &windowWorkload{
		keys:     keys(nkeys),
		perMs:    perMs,
		sessions: sessions,
		half:     nkeys / 2,
		base:     windowing.MillisOf(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)),
	}
	w.phase = sessionVisits * w.half
	return w
}

// visit is how long a key waits between two of its records in sessions.
func (w *windowWorkload) visit() time.Duration {
	return time.Duration(w.half/w.perMs) * time.Millisecond
}

func (w *windowWorkload) key(i int) int {
	if !w.sessions {
		return i % len(w.keys)
	}
	return (i/w.phase%2)*w.half + i%w.half
}

func (w *windowWorkload) ts(i int) windowing.Millis { return w.base + windowing.Millis(i/w.perMs) }

// fill makes r record i. The benchmarks reuse one record: Process is
// synchronous and the engine copies what it keeps.
func (w *windowWorkload) fill(r *kgo.Record, i int) {
	r.Key = w.keys[w.key(i)]
	r.Offset = int64(i)
	r.Timestamp = w.ts(i).Time()
}

// windowedCodec is a fixed-width codec for a count's result (start, end,
// count; the key travels as the record key): the benchmark measures the
// windows, not encoding/json.
type windowedCodec struct{}

func (windowedCodec) Encode(v operators.Windowed[string, int64]) ([]byte, error) {
	b := make([]byte, 0, 24)
	b = binary.BigEndian.AppendUint64(b, uint64(v.Start.UnixMilli()))
	b = binary.BigEndian.AppendUint64(b, uint64(v.End.UnixMilli()))
	return binary.BigEndian.AppendUint64(b, uint64(v.Value)), nil
}

func (windowedCodec) Decode(b []byte) (operators.Windowed[string, int64], error) {
	if len(b) != 24 {
		return operators.Windowed[string, int64]{}, fmt.Errorf("windowed: %d bytes, want 24", len(b))
	}
	return operators.Windowed[string, int64]{
		Start: time.UnixMilli(int64(binary.BigEndian.Uint64(b))).UTC(),
		End:   time.UnixMilli(int64(binary.BigEndian.Uint64(b[8:]))).UTC(),
		Value: int64(binary.BigEndian.Uint64(b[16:])),
	}, nil
}

// windowOut acknowledges every output at once and counts them; with keep
// set it also records each (key, window) -> count, for the cross-check.
type windowOut struct {
	n    int
	keep map[string]int64
}

func (p *windowOut) Produce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	if r.Topic != "out" { // the state changelog, written at checkpoints
		promise(r, nil)
		return
	}
	p.n++
	if p.keep != nil {
		v, err := windowedCodec{}.Decode(r.Value)
		if err != nil {
			promise(r, err)
			return
		}
		p.keep[fmt.Sprintf("%s [%d, %d)", r.Key, v.Start.UnixMilli(), v.End.UnixMilli())] += v.Value
	}
	promise(r, nil)
}

// windowJob is the benchmarked job: a count per record key and window.
func windowJob(a windowing.Assigner) *engine.Job {
	job := engine.NewJob("bench-windows")
	src := connectors.KafkaSource(job, "in", codec.Bytes(), connectors.WithWatermarks(recordTime()))
	counts := operators.WindowAggregate(operators.KeyByRecordKey(src, codec.String()), "counts", a,
		state.AggregateFunction[[]byte, int64, int64](operators.Count[[]byte]{}), codec.Codec[int64](int64Codec{}))
	connectors.KafkaSink(counts, "out", codec.Codec[operators.Windowed[string, int64]](windowedCodec{}))
	return job
}

// engineWindows runs the workload's records through the job in one task.
type engineWindows struct {
	lt  local.Task
	r   *kgo.Record
	rs  []*kgo.Record
	w   *windowWorkload
	out *windowOut
	// peakDirty is the most dirty-cache bytes seen at a checkpoint.
	peakDirty int
}

func newEngineWindows(w *windowWorkload, a windowing.Assigner, out *windowOut) (*engineWindows, error) {
	lt, err := local.NewTask(context.Background(), windowJob(a), 0, 0, local.Env{Producer: out})
	if err != nil {
		return nil, err
	}
	r := &kgo.Record{Topic: "in"}
	return &engineWindows{lt: lt, r: r, rs: []*kgo.Record{r}, w: w, out: out}, nil
}

func (e *engineWindows) step(i int) error {
	e.w.fill(e.r, i)
	if err := e.lt.Process("in", e.rs); err != nil {
		return err
	}
	if i%checkpointEvery == checkpointEvery-1 {
		e.peakDirty = max(e.peakDirty, e.lt.Store().DirtyBytes())
		return e.lt.Checkpoint(int64(i))
	}
	return nil
}

// windowState is what a task's store holds, by kind: every key live after
// a checkpoint, found by a scan of the task's range.
type windowState struct {
	windows  int // window accumulators (state "acc")
	sessions int // keys' session lists (state "sessions")
	timers   int // event-time timers
	keys     int // all of the above, and anything else
	bytes    int // logical key and value bytes of all keys
}

// timerStateName is the state name the engine keeps timers under
// (engine/timers.go); user state names cannot start with a NUL.
const timerStateName = "\x00timers"

func measureWindowState(ts *state.TaskStore) (windowState, error) {
	var s windowState
	var bad error
	err := ts.Scan(nil, nil, func(k, v []byte) bool {
		s.keys++
		s.bytes += len(k) + len(v)
		// operator: len data | state name: len data | ...
		n, w := binary.Uvarint(k)
		if w <= 0 || len(k) < w+int(n) {
			bad = fmt.Errorf("malformed state key %x", k)
			return false
		}
		rest := k[w+int(n):]
		n, w = binary.Uvarint(rest)
		if w <= 0 || len(rest) < w+int(n) {
			bad = fmt.Errorf("malformed state key %x", k)
			return false
		}
		switch string(rest[w : w+int(n)]) {
		case "acc":
			s.windows++
		case "sessions":
			s.sessions++
		case timerStateName:
			s.timers++
		}
		return true
	})
	return s, errors.Join(err, bad)
}

// plainWindows is the ceiling: the same windowed count in plain Go, with
// no engine and no store. Each key's live windows sit in a small slice
// under a map keyed by the key (a key stays once seen: the key set is
// bounded here, and deleting and re-adding keys doubled the cost); due
// lists, per window max timestamp, the keys with a window ending then, and
// as the watermark (highest time seen - 1ms, as the engine's with bound 0)
// passes a time, that time's windows fire, encoded with the same codec and
// handed to the same producer.
type plainWindows struct {
	assigner windowing.Assigner
	merging  bool
	byKey    map[string]*plainKey
	due      map[windowing.Millis][]*plainKey
	maxTs    windowing.Millis // highest time seen
	fired    windowing.Millis // due lists up to it are done
	started  bool
	buf      []windowing.Window
	p        local.Producer
	ctx      context.Context
	live     int // live windows
}

type plainKey struct {
	key  []byte
	wins []plainWin
}

type plainWin struct {
	w windowing.Window
	n int64
}

var plainPromise = func(*kgo.Record, error) {}

func newPlainWindows(a windowing.Assigner, p local.Producer) *plainWindows {
	return &plainWindows{
		assigner: a,
		merging:  a.Merging(),
		byKey:    map[string]*plainKey{},
		due:      map[windowing.Millis][]*plainKey{},
		p:        p,
		ctx:      context.Background(),
	}
}

func (m *plainWindows) add(key []byte, ts windowing.Millis) error {
	if !m.started {
		m.started, m.maxTs, m.fired = true, ts, ts-1
	}
	wm := m.maxTs - 1
	k := m.byKey[string(key)]
	if k == nil {
		k = &plainKey{key: bytes.Clone(key)}
		m.byKey[string(k.key)] = k
	}
	m.buf = m.assigner.Assign(m.buf[:0], ts)
	if m.merging {
		// The new session absorbs every live one it touches, until
		// none is left that touches the grown cover.
		nw, n := m.buf[0], int64(1)
		for merged := true; merged; {
			merged = false
			for i := 0; i < len(k.wins); i++ {
				if s := k.wins[i]; s.w.Intersects(nw) {
					nw, n = nw.Cover(s.w), n+s.n
					k.wins = append(k.wins[:i], k.wins[i+1:]...)
					m.live--
					i--
					merged = true
				}
			}
		}
		if nw.MaxTimestamp() > wm {
			k.wins = append(k.wins, plainWin{w: nw, n: n})
			m.live++
			m.due[nw.MaxTimestamp()] = append(m.due[nw.MaxTimestamp()], k)
		}
	} else {
	windows:
		for _, w := range m.buf {
			if w.MaxTimestamp() <= wm {
				continue // late
			}
			for i := range k.wins {
				if k.wins[i].w == w {
					k.wins[i].n++
					continue windows
				}
			}
			k.wins = append(k.wins, plainWin{w: w, n: 1})
			m.live++
			m.due[w.MaxTimestamp()] = append(m.due[w.MaxTimestamp()], k)
		}
	}
	// The watermark follows the record.
	m.maxTs = max(m.maxTs, ts)
	for ; m.fired < m.maxTs-1; m.fired++ {
		if err := m.fire(m.fired + 1); err != nil {
			return err
		}
	}
	return nil
}

// fire emits and drops the windows ending at t. A due entry whose window
// has since grown (a session that merged) finds nothing.
func (m *plainWindows) fire(t windowing.Millis) error {
	ks, ok := m.due[t]
	if !ok {
		return nil
	}
	delete(m.due, t)
	c := windowedCodec{}
	for _, k := range ks {
		for i := 0; i < len(k.wins); i++ {
			w := k.wins[i]
			if w.w.MaxTimestamp() != t {
				continue
			}
			v, err := c.Encode(operators.Windowed[string, int64]{Start: w.w.Start.Time(), End: w.w.End.Time(), Value: w.n})
			if err != nil {
				return err
			}
			m.p.Produce(m.ctx, &kgo.Record{Topic: "out", Key: k.key, Value: v, Timestamp: t.Time()}, plainPromise)
			k.wins = append(k.wins[:i], k.wins[i+1:]...)
			m.live--
			i--
		}
	}
	return nil
}

// BenchmarkWindows measures a windowed count per key through the engine
// (engine) beside the plain Go ceiling (plain), per assigner and key count:
//
//	tumbling-count         1s tumbling windows: a record updates one window
//	sliding-5-per-record   5s windows sliding by 1s: a record updates five
//	sessions               sessions of 4 records per key (each one merging),
//	                       half the keys active at a time
//
// Both report records/s, outputs/record and the live windows at the end;
// engine also reports engine/plain against the plain run just before it,
// and the state its store holds after a final checkpoint: window
// accumulators, session lists (sessions), timers, all keys and their bytes
// (state-B, logical keys and values: what the task's range in Pebble
// holds), and the largest dirty cache a checkpoint flushed (dirty-peak-B).
func BenchmarkWindows(b *testing.B) {
	for _, wc := range windowCases() {
		b.Run(wc.name, func(b *testing.B) {
			for _, nk := range []struct {
				name     string
				n, perMs int
			}{{"1k-keys", 1000, 10}, {"100k-keys", 100_000, 100}} {
				b.Run(nk.name, func(b *testing.B) {
					w := newWindowWorkload(nk.n, nk.perMs, wc.sessions)
					warm := wc.warmMs(w) * w.perMs
					var plainNs float64
					b.Run("plain", func(b *testing.B) {
						out := &windowOut{}
						m := newPlainWindows(wc.assigner(w.visit()), out)
						for i := range warm {
							if err := m.add(w.keys[w.key(i)], w.ts(i)); err != nil {
								b.Fatal(err)
							}
						}
						out.n = 0
						i := warm
						for b.Loop() {
							if err := m.add(w.keys[w.key(i)], w.ts(i)); err != nil {
								b.Fatal(err)
							}
							i++
						}
						plainNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
						b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
						b.ReportMetric(float64(out.n)/float64(b.N), "outputs/rec")
						b.ReportMetric(float64(m.live), "windows")
					})
					b.Run("engine", func(b *testing.B) {
						out := &windowOut{}
						e, err := newEngineWindows(w, wc.assigner(w.visit()), out)
						if err != nil {
							b.Fatal(err)
						}
						for i := range warm {
							if err := e.step(i); err != nil {
								b.Fatal(err)
							}
						}
						out.n, e.peakDirty = 0, 0
						i := warm
						for b.Loop() {
							if err := e.step(i); err != nil {
								b.Fatal(err)
							}
							i++
						}
						ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
						b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
						b.ReportMetric(float64(out.n)/float64(b.N), "outputs/rec")
						if plainNs > 0 {
							b.ReportMetric(ns/plainNs, "engine/plain")
						}
						if err := e.lt.Checkpoint(int64(i)); err != nil {
							b.Fatal(err)
						}
						s, err := measureWindowState(e.lt.Store())
						if err != nil {
							b.Fatal(err)
						}
						b.ReportMetric(float64(s.windows), "windows")
						if wc.sessions {
							b.ReportMetric(float64(s.sessions), "sessions")
						}
						b.ReportMetric(float64(s.timers), "timers")
						b.ReportMetric(float64(s.keys), "state-keys")
						b.ReportMetric(float64(s.bytes), "state-B")
						b.ReportMetric(float64(e.peakDirty), "dirty-peak-B")
					})
				})
			}
		})
	}
}

// TestWindowBenchCeiling checks that the plain ceiling of BenchmarkWindows
// does the engine's work: over the same records, the same windows fire
// with the same counts, and as many stay live.
func TestWindowBenchCeiling(t *testing.T) {
	for _, wc := range windowCases() {
		t.Run(wc.name, func(t *testing.T) {
			w := newWindowWorkload(1000, 10, wc.sessions)
			n := 3 * wc.warmMs(w) * w.perMs
			eo := &windowOut{keep: map[string]int64{}}
			e, err := newEngineWindows(w, wc.assigner(w.visit()), eo)
			if err != nil {
				t.Fatal(err)
			}
			po := &windowOut{keep: map[string]int64{}}
			m := newPlainWindows(wc.assigner(w.visit()), po)
			for i := range n {
				if err := e.step(i); err != nil {
					t.Fatal(err)
				}
				if err := m.add(w.keys[w.key(i)], w.ts(i)); err != nil {
					t.Fatal(err)
				}
			}
			if eo.n == 0 || eo.n != po.n || len(eo.keep) != len(po.keep) {
				t.Fatalf("engine fired %d windows (%d distinct), plain %d (%d distinct)", eo.n, len(eo.keep), po.n, len(po.keep))
			}
			for k, v := range eo.keep {
				if po.keep[k] != v {
					t.Fatalf("window %s: engine counted %d, plain %d", k, v, po.keep[k])
				}
			}
			if err := e.lt.Checkpoint(int64(n)); err != nil {
				t.Fatal(err)
			}
			s, err := measureWindowState(e.lt.Store())
			if err != nil {
				t.Fatal(err)
			}
			// Sliced windows (Count slices them: operators.SliceWindows)
			// keep an accumulator per slice, as many per key as it has
			// live windows, and one timer per key: its next window's end.
			timers := m.live
			if _, sliced := windowing.SlicingOf(wc.assigner(w.visit())); sliced {
				timers = len(m.byKey)
			}
			if s.windows != m.live || s.timers != timers {
				t.Fatalf("engine holds %d accumulators and %d timers, want %d and %d", s.windows, s.timers, m.live, timers)
			}
			t.Logf("%d records: %d windows fired, %d live; %+v", n, eo.n, m.live, s)
		})
	}
}
