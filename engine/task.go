package engine

// This file owns Task, the unit of parallelism: what it owns, the
// record path through its operators (process) and its statistics.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/weirstream/weir/checkpoint"
	"github.com/weirstream/weir/observe"
	"github.com/weirstream/weir/state"
)

// outputs is where sinks send records: a franz-go client in a running
// job, an in-memory recorder in tests and benchmarks. Produce must call
// promise exactly once, on any goroutine.
type outputs interface {
	Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error))
}

// SourceFunc feeds one fetched Kafka record into a task's operator chain.
// It must not retain r or its slices after returning unless it copies them.
type SourceFunc func(r *kgo.Record) error

// OpStats counts one operator's records within one task. Only the task's
// goroutine touches it; the task publishes the counts to the observer after
// each batch, so operators pay an increment, not a hook call, per record.
type OpStats struct {
	name                                  string
	In, Out, Failed, Late                 int64
	sentIn, sentOut, sentFailed, sentLate int64
	// DeadLettered and Skipped count failed records the error policy
	// dead-lettered or skipped; Retried, calls retried (see Guard).
	DeadLettered, Skipped, Retried             int64
	sentDeadLettered, sentSkipped, sentRetried int64
}

// TaskID names a task: a stage and a partition number of the topics that
// stage reads. It prints as Kafka Streams prints its task ids: 0_3.
type TaskID struct {
	Stage     int
	Partition int32
}

func (id TaskID) String() string { return fmt.Sprintf("%d_%d", id.Stage, id.Partition) }

// Task is one partition number of one stage's input topics: the unit of
// parallelism and ownership. One goroutine owns a task and everything in
// it: its operators, their stats and its offsets. Operators receive the
// task when they are built; they may keep it for the task's lifetime and
// must call its methods only from the record path.
type Task struct {
	id       TaskID
	job      *Job
	ctx      context.Context
	log      *zap.Logger
	obs      observe.Observer
	producer outputs
	clock    clock
	// store is the task's part of the replica's state store; nil for a
	// job without state.
	store *state.TaskStore
	// watermark is the task's event time (Unix ms), minWatermark before any.
	watermark int64
	timers    []*Timers
	// inflight are the task's operators with records in flight, and
	// wmTarget the watermark they hold it from (see inflight.go).
	inflight []InFlight
	// committed is called after each checkpoint Kafka committed, with
	// its id (Task.OnCommitted).
	onCommitted []func(cp int64) error
	// origin caches the task's HeaderOrigin (repartition.go): its
	// "<topic>:<partition>@" prefix, and the header of checkpoint cp.
	origin struct {
		prefix []byte
		cp     int64
		hdr    []kgo.RecordHeader
	}
	// onBarrier is called at each barrier, before the state is flushed
	// (Task.OnBarrier).
	onBarrier []func() error
	wmTarget  int64
	// timerErr is a store error met while registering a timer, which has
	// no error to return; the record that registered it fails with it.
	timerErr error
	// timerMem bounds the timers the task's queues keep in memory, with
	// the other tasks of the replica; nil for no bound.
	timerMem *timerMemory
	// stateMem returns the task's share of memory for operators' typed
	// state (StateMemory); nil or 0 for no bound.
	stateMem func() int64
	et       *eventTime

	sources map[string]SourceFunc // by topic
	// lastTopic and lastSource cache source's last lookup.
	lastTopic  string
	lastSource SourceFunc
	stats      []*OpStats
	byName     map[string]*OpStats

	// next is, per input topic, the offset of the next record to process:
	// what a checkpoint commits.
	next  map[string]kgo.EpochOffset
	epoch *checkpoint.Epoch
	ack   func(*kgo.Record, error) // acknowledges a record of epoch
	// produced counts the records produced since the last barrier.
	produced int
	err      error // the record error that stopped the task, if any

	// cp is the checkpoint the task's work belongs to until its next
	// barrier: the last committed one plus one.
	cp int64
	// changelogs are the changelog topics of the job's stateful
	// operators, by operator id; clNext is, per changelog topic, the
	// offset after the last record the committed state includes (see
	// commitMeta).
	changelogs map[string]string
	clNext     map[string]int64
	// clPending is the changelog records written at barriers since the
	// last committed checkpoint, oldest first: a checkpoint cut short
	// leaves its records in the open transaction, so the next one that
	// commits must name their positions too.
	clPending []*changelogAcks
	// clRecs is the last changelog's array of records and clRecAcks its
	// acknowledgements, for the next checkpoint to reuse
	// (changelogRecords).
	clRecs    []kgo.Record
	clRecAcks *changelogAcks
	// trace stamps outputs with provenance headers; nil unless enabled.
	trace *tracer
	// held is what process left of its batch when the replica halted.
	held []*kgo.Record
	// failures is the replica's circuit breaker (nil: none); cur is the
	// input record in hand and curTimer the timer, for dead letters.
	failures *failureControl
	cur      *kgo.Record
	curTimer timerInHand
	// pastRetention counts, by sink topic, outputs older than its
	// retention (see CheckOutput), until flushStats reports them.
	pastRetention    map[string]int
	pastRetentionAll int
	// pastRetentionSent is pastRetentionAll when flushStats last
	// reported pastRetention.
	pastRetentionSent int
	// bounded is set in a bounded run (Config.Until): ended holds the
	// source topics whose input ended, finished is set once every input
	// has (see bounded.go), and finishedFlag tells the runtime.
	bounded      bool
	ended        map[string]bool
	finished     bool
	finishedFlag *atomic.Bool
}

// taskEnv is what a replica (or a local harness) gives each of its tasks.
type taskEnv struct {
	ctx      context.Context
	log      *zap.Logger
	obs      observe.Observer
	producer outputs
	clock    clock
	store    *state.Store // nil for a job without state
	// provenance turns on provenance headers on every output.
	provenance bool
	// checkpoint is the task's last committed checkpoint (0 for none),
	// changelogNext the changelog positions its state includes and
	// eventTime its event time (see Task.saveEventTime).
	checkpoint    int64
	changelogNext map[string]int64
	eventTime     map[string]string
	// offsets is the committed offset of each input partition that has
	// one: where the task stands until it processes a record.
	offsets map[string]kgo.EpochOffset
	// failures is the replica's circuit breaker; nil for none.
	failures *failureControl
	// timerMem is the replica's memory for timers; nil for no bound.
	timerMem *timerMemory
	// stateMem returns the task's share of memory for operators' typed
	// state, which may change as the replica's tasks come and go; nil for
	// no bound.
	stateMem func() int64
	// bounded is set in a bounded run; finished is set when the task has
	// finished its input (see bounded.go).
	bounded  bool
	finished *atomic.Bool
}

func newTask(env taskEnv, id TaskID, j *Job) (*Task, error) {
	t := &Task{
		id:            id,
		job:           j,
		pastRetention: map[string]int{},
		failures:      env.failures,
		timerMem:      env.timerMem,
		stateMem:      env.stateMem,
		ctx:           env.ctx,
		log:           env.log.With(zap.Stringer("task", id)),
		obs:           env.obs,
		producer:      env.producer,
		clock:         env.clock,
		watermark:     minWatermark,
		wmTarget:      minWatermark,
		et:            newEventTime(),
		sources:       make(map[string]SourceFunc, len(j.sources)),
		byName:        make(map[string]*OpStats),
		next:          make(map[string]kgo.EpochOffset, len(j.sources)),
		cp:            env.checkpoint + 1,
		clNext:        map[string]int64{},
		bounded:       env.bounded,
		ended:         map[string]bool{},
		finishedFlag:  env.finished,
	}
	if len(j.changelogs) > 0 {
		t.changelogs = make(map[string]string, len(j.changelogs))
		for op, it := range j.changelogs {
			t.changelogs[op] = it.name
		}
	}
	if env.provenance {
		t.trace = &tracer{task: id.String(), counts: map[string]int{}}
	}
	for topic, off := range env.changelogNext {
		t.clNext[topic] = off
	}
	// A checkpoint commits the offsets of t.next with the task's
	// metadata: without them, work done before the first record (a
	// processing-time timer) would commit its changelog records under the
	// previous metadata, and the next start would restore to before them.
	maps.Copy(t.next, env.offsets)
	t.newEpoch(nil)
	if env.store != nil {
		t.store = env.store.Task(state.TaskID{Stage: uint16(id.Stage), Partition: id.Partition})
	}
	for _, it := range j.internal {
		// Watermarks go to the repartition topics this stage writes, which
		// a stage reads; not to late-data topics, which are outputs.
		if _, read := j.stageOf(it.name); read && it.from == id.Stage {
			t.et.downstream[it.name] = j.partitions
		}
	}
	for _, s := range j.sources {
		if s.internal != nil && s.stage == id.Stage {
			if err := t.addUpstream(s.topic, j.partitions); err != nil {
				return nil, err
			}
		}
	}
	for _, s := range j.sources {
		if s.stage != id.Stage {
			continue
		}
		f, err := s.build(t)
		if err != nil {
			return nil, fmt.Errorf("building %s in task %s: %w", s.name, id, err)
		}
		t.sources[s.topic] = f
	}
	if err := t.restoreEventTime(env.eventTime); err != nil {
		return nil, fmt.Errorf("task %s: %w", id, err)
	}
	return t, nil
}

// ID is the task's stage and partition.
func (t *Task) ID() TaskID { return t.id }

// Partition is the partition number the task owns in each input topic.
func (t *Task) Partition() int32 { return t.id.Partition }

// Logger is the task's logger, tagged with its partition.
func (t *Task) Logger() *zap.Logger { return t.log }

// Stats returns the counters of the named operator in this task.
func (t *Task) Stats(operator string) *OpStats {
	if s, ok := t.byName[operator]; ok {
		return s
	}
	s := &OpStats{name: operator}
	t.byName[operator] = s
	t.stats = append(t.stats, s)
	return s
}

// Produce sends r to Kafka as part of the task's current checkpoint epoch:
// the input offsets behind it are committed only once Kafka has
// acknowledged it. It may block when the producer's buffer is full; that is
// the backpressure that keeps memory bounded. r must not be modified after.
func (t *Task) Produce(r *kgo.Record) {
	if t.trace != nil && r.Context != controlRecord {
		t.trace.stamp(r, t.cp)
	}
	t.produced++
	t.epoch.Add()
	t.producer.Produce(t.ctx, r, t.ack)
}

// newEpoch opens the epoch following prev and the one promise that
// acknowledges its records, so producing allocates no closure per record.
func (t *Task) newEpoch(prev *checkpoint.Epoch) {
	ep := checkpoint.NewEpoch(prev)
	t.epoch = ep
	t.ack = func(r *kgo.Record, err error) {
		if err != nil {
			err = newProduceError(r, err)
		}
		ep.Ack(err)
	}
}

// process runs one fetched batch of one input partition through the chain,
// a record at a time in offset order. On the first error it stops: the
// failing record's offset stays the partition's next offset.
func (t *Task) process(b batch) error {
	src := t.source(b.topic)
	var next kgo.EpochOffset // of the last record processed, if any
	if t.trace != nil {
		defer t.trace.leave()
	}
	t.held = nil
	for i, r := range b.records {
		if t.trace != nil {
			t.trace.enter(r)
		}
		t.cur = r
		err := src(r)
		t.cur = nil
		if err == nil && t.timerErr != nil {
			err, t.timerErr = t.timerErr, nil
		}
		if err != nil {
			// The failing record is the next to process: that, not
			// whatever came before it in this task, is what to commit.
			t.next[b.topic] = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset}
			return t.recordError(r, err)
		}
		next = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset + 1}
		if halted, _ := t.failures.halted(); halted && i+1 < len(b.records) {
			// The circuit breaker tripped: nothing after this record is
			// processed until the replica resumes.
			t.held = b.records[i+1:]
			break
		}
	}
	if next == (kgo.EpochOffset{}) { // none: next stays
		next = t.next[b.topic]
	} else {
		t.next[b.topic] = next
	}
	if b.highWatermark >= 0 {
		t.obs.ConsumerLag(b.topic, t.id.Partition, max(0, b.highWatermark-next.Offset))
	}
	return nil
}

// source returns the source function of topic, nil if the task has none:
// from a one-topic cache, as a task's batches mostly come from one topic.
func (t *Task) source(topic string) SourceFunc {
	if topic != t.lastTopic || t.lastSource == nil {
		t.lastTopic, t.lastSource = topic, t.sources[topic]
	}
	return t.lastSource
}

func (t *Task) recordError(r *kgo.Record, err error) error {
	re := &RecordError{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Err: err}
	var oe *OperatorError
	if errors.As(err, &oe) {
		re.Operator, re.Err = oe.Operator, oe.Err
		t.Stats(oe.Operator).Failed++
	}
	return re
}

// flushStats publishes the counts gathered since the last call. It runs
// after every batch, which may be one record: only counts that changed
// cost a call.
func (t *Task) flushStats() {
	o := t.obs
	for _, s := range t.stats {
		if s.In != s.sentIn {
			o.RecordsIn(s.name, int(s.In-s.sentIn))
			s.sentIn = s.In
		}
		if s.Out != s.sentOut {
			o.RecordsOut(s.name, int(s.Out-s.sentOut))
			s.sentOut = s.Out
		}
		if s.Failed != s.sentFailed || s.Late != s.sentLate || s.DeadLettered != s.sentDeadLettered ||
			s.Skipped != s.sentSkipped || s.Retried != s.sentRetried {
			flushCount(s.name, s.Failed, &s.sentFailed, o.RecordsFailed)
			flushCount(s.name, s.Late, &s.sentLate, o.RecordsLate)
			flushCount(s.name, s.DeadLettered, &s.sentDeadLettered, o.RecordsDeadLettered)
			flushCount(s.name, s.Skipped, &s.sentSkipped, o.RecordsSkipped)
			flushCount(s.name, s.Retried, &s.sentRetried, o.Retries)
		}
	}
	if t.pastRetentionAll != t.pastRetentionSent {
		for topic, n := range t.pastRetention {
			if n > 0 {
				o.SinkRecordsPastRetention(topic, n)
				t.pastRetention[topic] = 0
			}
		}
		t.pastRetentionSent = t.pastRetentionAll
	}
}

// flushCount reports what count gained since it was last sent.
func flushCount(op string, count int64, sent *int64, report func(string, int)) {
	if d := count - *sent; d != 0 {
		report(op, int(d))
		*sent = count
	}
}
