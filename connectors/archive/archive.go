// Package archive writes a stream to files on a local directory or an
// S3-compatible object store, exactly once, partitioned by event time or
// a field, as JSON lines or Parquet: Kafka's long-term copy, for querying
// with DuckDB, Spark or Athena, as Kafka Connect's S3 sink and Flink's
// FileSink keep it.
//
// How exactly once holds. A record's row goes into the sink's state (the
// task's store, with its changelog in the checkpoint's Kafka transaction),
// appended to the open file of its partition (dt=.../hour=...). A file
// rolls when it reaches its size or record count, or is old or idle
// enough at a checkpoint; it is then sealed, and the seal is part of the
// next checkpoint. Once Kafka committed that checkpoint, the file is
// written (a rename, or a PutObject that shows the object only whole)
// under a name made from the task and the position of its first record in
// the task's archived stream, and its rows leave the state. A crash before
// the commit replays the records and seals the same file again, which was
// never visible; a crash after the commit, before the rows left the
// state, writes the same file again under the same name. So a reader sees
// each record in exactly one file, and never a partial one. Leftovers of
// uploads a crash cut (temporary files, multipart parts) are removed when
// the task starts again.
//
// Files stay open across checkpoints (their rows are state), so file size
// does not depend on the checkpoint interval, unlike Flink's bulk formats.
// The price is that each archived record is also written to the sink's
// changelog until its file is written.
package archive

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/state"
	"github.com/weirstream/weir/windowing"
)

// Opt configures a Sink.
type Opt interface{ apply(*config) }

type optFunc func(*config)

func (f optFunc) apply(c *config) { f(c) }

type config struct {
	prefix          string
	rollSize        int64
	rollRecords     int
	rollInterval    time.Duration
	rollInactivity  time.Duration
	maxUnpublished  int
	tempDir         string
	partitionBy     any // func(engine.Record[T]) string
	partitionLayout string
}

// Defaults, as Flink's DefaultRollingPolicy has them, but for the size:
// a file is built in memory from its rows before it is written.
const (
	DefaultRollSize       = 64 << 20
	DefaultRollInterval   = time.Minute
	DefaultRollInactivity = time.Minute
	// DefaultPartitionLayout partitions by the hour of event time (UTC),
	// Hive-style, as DuckDB's and Spark's hive_partitioning read it.
	DefaultPartitionLayout = "dt=2006-01-02/hour=15"
)

// Prefix puts the archive's files under prefix (a folder of the directory
// or bucket): <prefix>/<name>/<partition>/<task>-<first>.<ext>.
func Prefix(p string) Opt { return optFunc(func(c *config) { c.prefix = strings.Trim(p, "/") }) }

// RollSize closes a file once its rows reach n bytes (before compression).
func RollSize(n int64) Opt { return optFunc(func(c *config) { c.rollSize = n }) }

// RollRecords closes a file once it holds n records (0: no limit).
func RollRecords(n int) Opt { return optFunc(func(c *config) { c.rollRecords = n }) }

// RollInterval closes a file at the first checkpoint after it has been
// open for d (processing time).
func RollInterval(d time.Duration) Opt { return optFunc(func(c *config) { c.rollInterval = d }) }

// RollInactivity closes a file at the first checkpoint after it got no
// record for d (processing time).
func RollInactivity(d time.Duration) Opt {
	return optFunc(func(c *config) { c.rollInactivity = d })
}

// MaxUnpublished is how many committed files may wait for the store
// (while it is unreachable) before the task stops taking input and waits
// for it, keeping memory and state bounded; 16 by default.
func MaxUnpublished(n int) Opt { return optFunc(func(c *config) { c.maxUnpublished = n }) }

// TempDir is where files are built before they are uploaded; the
// system's temporary directory by default.
func TempDir(dir string) Opt { return optFunc(func(c *config) { c.tempDir = dir }) }

// PartitionByEventTime partitions files by the record's event time (UTC)
// formatted with layout (time.Format), DefaultPartitionLayout unless set.
func PartitionByEventTime(layout string) Opt {
	return optFunc(func(c *config) { c.partitionLayout = layout; c.partitionBy = nil })
}

// PartitionBy partitions files by what fn returns for a record, a
// relative path of one or more folders ("country=FR", "2024/01"); its
// type must be the sink's.
func PartitionBy[T any](fn func(engine.Record[T]) string) Opt {
	return optFunc(func(c *config) { c.partitionBy = fn })
}

// fileMeta describes a file: open (rows still added), or sealed.
type fileMeta struct {
	Bucket string `json:"b"`
	First  int64  `json:"f"`
	Count  int    `json:"n"`
	Bytes  int64  `json:"s"`
	Opened int64  `json:"o"` // Unix ms, the task's clock
	Last   int64  `json:"l"`
	// Cp is, for a sealed file, the checkpoint whose commit lets it be
	// written; -1 until a barrier names it.
	Cp int64 `json:"c"`
	// changed says an open file's description changed since the last
	// barrier, which writes it to state (once per checkpoint, not per
	// record).
	changed bool
}

const unnamedCp = -1

// Sink archives in's records under name (the operator is archive:name,
// the files under <prefix>/<name>/) to store, in format.
func Sink[T any](in engine.Stream[T], name string, store Store, format Format[T], opts ...Opt) {
	job := in.Job()
	cfg := config{
		rollSize: DefaultRollSize, rollInterval: DefaultRollInterval, rollInactivity: DefaultRollInactivity,
		maxUnpublished: 16, partitionLayout: DefaultPartitionLayout,
	}
	for _, o := range opts {
		o.apply(&cfg)
	}
	op := job.ClaimName("archive:" + name)
	bad := func(err error) { job.TopologyError(fmt.Errorf("archive %s: %w", name, err)) }
	var partition func(engine.Record[T]) string
	switch fn := cfg.partitionBy.(type) {
	case nil:
		layout := cfg.partitionLayout
		partition = func(r engine.Record[T]) string { return r.Timestamp.UTC().Format(layout) }
	case func(engine.Record[T]) string:
		partition = fn
	default:
		bad(fmt.Errorf("PartitionBy takes a func(engine.Record[%T]) string, not %T", *new(T), fn))
	}
	switch {
	case name == "" || strings.ContainsAny(name, "/\\"):
		bad(errors.New("needs a name without slashes"))
	case store == nil || format == nil:
		bad(errors.New("needs a store and a format"))
	case cfg.rollSize <= 0 || cfg.rollRecords < 0 || cfg.rollInterval <= 0 || cfg.rollInactivity <= 0 || cfg.maxUnpublished <= 0:
		bad(errors.New("roll size, interval and inactivity, and MaxUnpublished must be positive (RollRecords 0 or more)"))
	}
	if format != nil {
		if err := checkFormat(format); err != nil {
			bad(err)
		}
	}
	reg := state.NewRegistry(op)
	s := &sink[T]{
		op: op, store: store, format: format, cfg: cfg, partition: partition,
		dir:         path.Join(cfg.prefix, name),
		openState:   state.NewMap(reg, "open", codec.String(), codec.JSON[fileMeta]()),
		sealedState: state.NewMap(reg, "sealed", codec.String(), codec.JSON[fileMeta]()),
		rows:        state.NewList(reg, "rows", codec.Bytes()),
		seq:         state.NewValue(reg, "seq", codec.JSON[int64]()),
	}
	if err := reg.Err(); err != nil {
		bad(err)
	}
	job.AddStatefulOperator(op, in.Stage())
	in.Subscribe(func(t *engine.Task) (engine.Emit[T], error) { return s.build(t) })
}

type sink[T any] struct {
	op          string
	store       Store
	format      Format[T]
	cfg         config
	partition   func(engine.Record[T]) string
	dir         string
	openState   *state.Map[string, fileMeta]
	sealedState *state.Map[string, fileMeta]
	rows        *state.List[[]byte]
	seq         *state.Value[int64]
}

// scope is the sink's state of one task under a fixed key: the sink's
// state is the task's, not a record key's.
type scope struct {
	t   *engine.Task
	key []byte
}

func (s scope) TaskStore() *state.TaskStore { return s.t.Store() }
func (s scope) CurrentKey() []byte          { return s.key }
func (s scope) Namespace() []byte           { return nil }
func (s scope) ProcessingTime() time.Time   { return s.t.Now() }

// taskSink is the sink in one task, owned by its goroutine. open and
// sealed mirror the state, so a record costs no read.
type taskSink[T any] struct {
	*sink[T]
	t       *engine.Task
	g       *engine.Guard
	stats   *engine.OpStats
	log     *zap.Logger
	base    string // the task's file name prefix, "<task>-"
	openSc  scope
	sealSc  scope
	seqSc   scope
	open    map[string]*fileMeta
	sealed  map[string]*fileMeta // by object name
	next    int64                // the position of the next record in the task's archived stream
	saved   int64                // next as state has it
	waiting int                  // sealed files committed and not yet written
}

func (s *sink[T]) build(t *engine.Task) (engine.Emit[T], error) {
	ts := &taskSink[T]{
		sink: s, t: t, g: t.Guard(s.op, engine.ClassEncode), stats: t.Stats(s.op),
		log:    t.Logger().With(zap.String("operator", s.op), zap.Stringer("task", t.ID())),
		base:   t.ID().String() + "-",
		openSc: scope{t, []byte("open")}, sealSc: scope{t, []byte("sealed")}, seqSc: scope{t, []byte("seq")},
		open: map[string]*fileMeta{}, sealed: map[string]*fileMeta{},
	}
	if err := ts.load(); err != nil {
		return nil, &engine.OperatorError{Operator: s.op, Err: err}
	}
	if err := s.store.Clean(t.Context(), s.dir+"/", ts.base); err != nil {
		ts.log.Warn("removing what interrupted uploads left; tried again at the next start", zap.Error(err))
	}
	// What the restored state holds sealed was sealed before a committed
	// checkpoint: its files may be written now.
	ts.publish(ts.t.Checkpoint()-1, false)
	t.OnBarrier(ts.onBarrier)
	t.OnCommitted(func(cp int64) error { ts.publish(cp, false); return nil })
	return ts.emit, nil
}

func (ts *taskSink[T]) load() error {
	next, _, err := ts.seq.Get(ts.seqSc)
	if err != nil {
		return err
	}
	ts.next, ts.saved = next, next
	if err := ts.openState.Range(ts.openSc, func(b string, m fileMeta) bool {
		ts.open[b] = &m
		return true
	}); err != nil {
		return err
	}
	return ts.sealedState.Range(ts.sealSc, func(name string, m fileMeta) bool {
		ts.sealed[name] = &m
		if m.Cp != unnamedCp {
			ts.waiting++
		}
		return true
	})
}

func (ts *taskSink[T]) emit(r engine.Record[T]) error {
	ts.stats.In++
	row, ok, err := engine.Apply(ts.g, ts.format.Row, r.Value)
	if !ok {
		return err
	}
	bucket, ok, err := engine.Apply(ts.g, ts.bucketOf, r)
	if !ok {
		return err
	}
	now := ts.t.Now().UnixMilli()
	m := ts.open[bucket]
	if m == nil {
		m = &fileMeta{Bucket: bucket, First: ts.next, Opened: now, Cp: unnamedCp}
		ts.open[bucket] = m
	}
	if err := ts.rows.Add(ts.rowsScope(m.First), row); err != nil {
		return &engine.OperatorError{Operator: ts.op, Err: err}
	}
	m.Count++
	m.Bytes += int64(len(row))
	m.Last = now
	m.changed = true
	ts.next++
	if m.Bytes >= ts.cfg.rollSize || (ts.cfg.rollRecords > 0 && m.Count >= ts.cfg.rollRecords) {
		if err := ts.seal(m); err != nil {
			return &engine.OperatorError{Operator: ts.op, Err: err}
		}
	}
	if ts.waiting >= ts.cfg.maxUnpublished {
		// The store has been unreachable for a while: hold the input
		// here rather than let files pile up in state.
		ts.publish(ts.t.Checkpoint()-1, true)
	}
	return nil
}

// bucketOf is the partition path of r's file: the user's function (under
// the guard: it may fail or panic), checked to stay inside the archive.
func (ts *taskSink[T]) bucketOf(r engine.Record[T]) (string, error) {
	b := ts.partition(r)
	if b == "" {
		return ".", nil
	}
	if !fs.ValidPath(b) {
		return "", fmt.Errorf("partition path %q: want a relative path without \"..\", \".\" or empty parts", b)
	}
	return b, nil
}

func (ts *taskSink[T]) rowsScope(first int64) scope {
	return scope{ts.t, []byte("rows/" + strconv.FormatInt(first, 10))}
}

// name is where file m goes.
func (ts *taskSink[T]) name(m *fileMeta) string {
	return path.Join(ts.dir, m.Bucket, fmt.Sprintf("%s%020d.%s", ts.base, m.First, ts.format.Ext()))
}

// seal closes open file m: no more rows go to it, and the next barrier
// names the checkpoint that lets it be written.
func (ts *taskSink[T]) seal(m *fileMeta) error {
	delete(ts.open, m.Bucket)
	if err := ts.openState.Delete(ts.openSc, m.Bucket); err != nil {
		return err
	}
	m.Cp = unnamedCp
	name := ts.name(m)
	ts.sealed[name] = m
	return ts.sealedState.Put(ts.sealSc, name, *m)
}

// onBarrier seals the files due by age or idleness (all of them once the
// input ended: the final watermark passed), writes what changed of the
// open files and the record position to state, and names this checkpoint
// on every file sealed since the last barrier.
func (ts *taskSink[T]) onBarrier() error {
	now := ts.t.Now().UnixMilli()
	ended := ts.t.Watermark() == windowing.MaxMillis
	for _, b := range slices.Sorted(maps.Keys(ts.open)) {
		m := ts.open[b]
		var err error
		switch {
		case ended || now-m.Opened >= ts.cfg.rollInterval.Milliseconds() || now-m.Last >= ts.cfg.rollInactivity.Milliseconds():
			err = ts.seal(m)
		case m.changed:
			m.changed = false
			err = ts.openState.Put(ts.openSc, b, *m)
		}
		if err != nil {
			return &engine.OperatorError{Operator: ts.op, Err: err}
		}
	}
	if ts.next != ts.saved {
		if err := ts.seq.Set(ts.seqSc, ts.next); err != nil {
			return &engine.OperatorError{Operator: ts.op, Err: err}
		}
		ts.saved = ts.next
	}
	cp := ts.t.Checkpoint()
	for name, m := range ts.sealed {
		if m.Cp == unnamedCp {
			m.Cp = cp
			if err := ts.sealedState.Put(ts.sealSc, name, *m); err != nil {
				return &engine.OperatorError{Operator: ts.op, Err: err}
			}
		}
	}
	return nil
}

// publish writes every sealed file whose checkpoint is committed (at or
// before cp), in name order. A file that fails stays sealed and is tried
// again at the next commit; with wait, publish retries until every such
// file is written or the replica stops.
func (ts *taskSink[T]) publish(cp int64, wait bool) {
	var due []string
	for name, m := range ts.sealed {
		if m.Cp != unnamedCp && m.Cp <= cp {
			due = append(due, name)
		}
	}
	slices.Sort(due)
	ts.waiting = len(due)
	pause := 100 * time.Millisecond
	for _, name := range due {
		for {
			err := ts.write(name, ts.sealed[name])
			if err == nil {
				ts.waiting--
				break
			}
			ctx := ts.t.Context()
			ts.log.Warn("writing an archive file failed; it is tried again", zap.String("file", name), zap.Error(err))
			if !wait || ctx.Err() != nil {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(pause):
			}
			pause = min(2*pause, 10*time.Second)
		}
	}
}

// write builds file m from its rows and puts it in the store, then drops
// its rows from the state.
func (ts *taskSink[T]) write(name string, m *fileMeta) (err error) {
	start := time.Now()
	size := 0
	defer func() { ts.t.Observer().ArchiveFile(ts.op, m.Count, size, time.Since(start), err) }()
	sc := ts.rowsScope(m.First)
	rows, err := ts.rows.Get(sc)
	if err != nil {
		return err
	}
	if len(rows) != m.Count {
		return fmt.Errorf("archive %s: file %s has %d rows in state, its description says %d (state %w)", ts.op, name, len(rows), m.Count, state.ErrCorrupt)
	}
	f, err := os.CreateTemp(ts.cfg.tempDir, "weir-archive-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if err := ts.format.Write(f, rows); err != nil {
		return fmt.Errorf("building %s: %w", name, err)
	}
	end, err := f.Seek(0, 1)
	if err != nil {
		return err
	}
	size = int(end)
	if _, err := f.Seek(0, 0); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ts.t.Context(), 5*time.Minute)
	defer cancel()
	if err := ts.store.Put(ctx, name, f, end); err != nil {
		return fmt.Errorf("writing %s to %s: %w", name, ts.store, err)
	}
	if err := ts.rows.Clear(sc); err != nil {
		return err
	}
	delete(ts.sealed, name)
	if err := ts.sealedState.Delete(ts.sealSc, name); err != nil {
		return err
	}
	ts.stats.Out += int64(m.Count)
	return nil
}
