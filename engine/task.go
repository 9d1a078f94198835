package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/weirstream/weir/checkpoint"
	"github.com/weirstream/weir/observe"
	"github.com/weirstream/weir/state"
)

// Producer is where sinks send records: a franz-go client in a running
// job, an in-memory recorder in tests and benchmarks. Produce must call
// promise exactly once, on any goroutine.
type Producer interface {
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
	ctx      context.Context
	log      *zap.Logger
	obs      observe.Observer
	producer Producer
	clock    Clock
	// store is the task's part of the replica's state store; nil for a
	// job without state.
	store *state.TaskStore
	// watermark is the task's event time (Unix ms), minWatermark before any.
	watermark int64
	timers    []*timerOwner
	// timerErr is a store error met while registering a timer, which has
	// no error to return; the record that registered it fails with it.
	timerErr error
	et       *eventTime

	sources map[string]SourceFunc // by topic
	stats   []*OpStats
	byName  map[string]*OpStats

	// next is, per input topic, the offset of the next record to process:
	// what a checkpoint commits.
	next  map[string]kgo.EpochOffset
	epoch *checkpoint.Epoch
	ack   func(*kgo.Record, error) // acknowledges a record of epoch
	err   error                    // the record error that stopped the task, if any
}

// taskEnv is what a replica (or a local harness) gives each of its tasks.
type taskEnv struct {
	ctx      context.Context
	log      *zap.Logger
	obs      observe.Observer
	producer Producer
	clock    Clock
	store    *state.Store // nil for a job without state
}

func newTask(env taskEnv, id TaskID, j *Job) (*Task, error) {
	t := &Task{
		id:        id,
		ctx:       env.ctx,
		log:       env.log.With(zap.Stringer("task", id)),
		obs:       env.obs,
		producer:  env.producer,
		clock:     env.clock,
		watermark: minWatermark,
		et:        newEventTime(),
		sources:   make(map[string]SourceFunc, len(j.sources)),
		byName:    make(map[string]*OpStats),
		next:      make(map[string]kgo.EpochOffset, len(j.sources)),
	}
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
	t.epoch.Add()
	t.producer.Produce(t.ctx, r, t.ack)
}

// newEpoch opens the epoch following prev and the one promise that
// acknowledges its records, so producing allocates no closure per record.
func (t *Task) newEpoch(prev *checkpoint.Epoch) {
	ep := checkpoint.NewEpoch(prev)
	t.epoch = ep
	t.ack = func(_ *kgo.Record, err error) { ep.Ack(err) }
}

// process runs one fetched batch of one input partition through the chain,
// a record at a time in offset order. On the first error it stops: the
// failing record's offset stays the partition's next offset.
func (t *Task) process(b batch) error {
	src := t.sources[b.topic]
	next := t.next[b.topic]
	for _, r := range b.records {
		err := src(r)
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
	}
	t.next[b.topic] = next
	if b.highWatermark >= 0 {
		t.obs.ConsumerLag(b.topic, t.id.Partition, max(0, b.highWatermark-next.Offset))
	}
	return nil
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

// snapshot is what a barrier captures: the offsets of exactly the records
// processed before it, and the epoch holding their outputs.
type snapshot struct {
	task    TaskID
	offsets map[string]kgo.EpochOffset
	epoch   *checkpoint.Epoch
	err     error
	// stateful is set when the task has a store with writes flushed at
	// this barrier, to commit to Pebble once Kafka has the offsets.
	stateful bool
}

// barrier cuts the task between two records: it seals the current epoch,
// opens the next and returns the offsets processed so far.
func (t *Task) barrier() snapshot {
	// Tell downstream stages where event time is, inside this epoch.
	t.sendWatermark(true)
	sealed := t.epoch
	t.newEpoch(sealed)
	sealed.Seal()
	if t.store != nil {
		// The changelog (exactly-once checkpoints) will write these into
		// the transaction; until then they wait in the pending generation,
		// off Pebble, until the offsets are committed.
		_ = t.store.Flush()
	}
	offs := make(map[string]kgo.EpochOffset, len(t.next))
	for k, v := range t.next {
		offs[k] = v
	}
	return snapshot{task: t.id, offsets: offs, epoch: sealed, err: t.err, stateful: t.store != nil}
}

// flushStats publishes the counts gathered since the last call.
func (t *Task) flushStats() {
	for _, s := range t.stats {
		if d := s.In - s.sentIn; d != 0 {
			t.obs.RecordsIn(s.name, int(d))
			s.sentIn = s.In
		}
		if d := s.Out - s.sentOut; d != 0 {
			t.obs.RecordsOut(s.name, int(d))
			s.sentOut = s.Out
		}
		if d := s.Failed - s.sentFailed; d != 0 {
			t.obs.RecordsFailed(s.name, int(d))
			s.sentFailed = s.Failed
		}
		if d := s.Late - s.sentLate; d != 0 {
			t.obs.RecordsLate(s.name, int(d))
			s.sentLate = s.Late
		}
	}
}

// batch is one fetch's records of one input partition.
type batch struct {
	topic         string
	records       []*kgo.Record
	highWatermark int64 // -1 when unknown
}

// inbox queues fetched batches for a task. The poll loop pushes, the task
// pops; when more than high records wait, the task's partitions are paused
// so the broker, not this process, holds the backlog, and resumed when the
// task has drained to half of it.
type inbox struct {
	high          int
	pause, resume func()
	notify        chan struct{}

	mu struct {
		sync.Mutex
		batches []batch
		records int
		paused  bool
	}
}

func newInbox(high int, pause, resume func()) *inbox {
	return &inbox{high: high, pause: pause, resume: resume, notify: make(chan struct{}, 1)}
}

func (q *inbox) push(b batch) {
	q.mu.Lock()
	q.mu.batches = append(q.mu.batches, b)
	q.mu.records += len(b.records)
	pause := !q.mu.paused && q.mu.records >= q.high
	if pause {
		q.mu.paused = true
	}
	q.mu.Unlock()
	if pause {
		q.pause()
	}
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

func (q *inbox) pop() (batch, bool) {
	q.mu.Lock()
	if len(q.mu.batches) == 0 {
		q.mu.Unlock()
		return batch{}, false
	}
	b := q.mu.batches[0]
	q.mu.batches[0] = batch{}
	q.mu.batches = q.mu.batches[1:]
	q.mu.records -= len(b.records)
	resume := q.mu.paused && q.mu.records <= q.high/2
	if resume {
		q.mu.paused = false
	}
	q.mu.Unlock()
	if resume {
		q.resume()
	}
	return b, true
}

// barrierChunk is how many records a task processes between two looks at
// its control channel: the most a barrier waits behind.
const barrierChunk = 256

func inputOffsetKey(topic string) string { return "input/" + topic }

// taskCmd runs fn in a running task's goroutine at its next cut between
// records: a barrier, or the Pebble commit after Kafka committed one.
type taskCmd struct {
	fn   func(*Task)
	done chan struct{}
}

// do runs fn in the task's goroutine and waits for it, or for stop.
func (r *taskRunner) do(fn func(*Task), stop <-chan struct{}) bool {
	c := taskCmd{fn: fn, done: make(chan struct{})}
	select {
	case r.ctrl <- c:
	case <-stop:
		return false
	case <-r.done:
		return false
	}
	<-c.done
	return true
}

// commitState writes the state flushed at the barrier of checkpoint id to
// Pebble: only ever after Kafka has committed that checkpoint's offsets,
// which it records with the state (under "input/<topic>"), so a restart
// can tell whether the local state matches what the group committed.
func (t *Task) commitState(id int64, offsets map[string]kgo.EpochOffset) error {
	if t.store == nil {
		return nil
	}
	in := make(map[string]int64, len(offsets))
	for topic, eo := range offsets {
		in[inputOffsetKey(topic)] = eo.Offset
	}
	if err := t.store.CommitPending(id, in); err != nil {
		return fmt.Errorf("task %s: committing state of checkpoint %d: %w", t.id, id, err)
	}
	return nil
}

// taskRunner is the goroutine that owns a task in a running job.
type taskRunner struct {
	t     *Task
	in    *inbox
	ctrl  chan taskCmd
	stop  chan struct{}
	done  chan struct{}
	fatal func(error)
}

func (r *taskRunner) run() {
	defer close(r.done)
	defer r.t.flushStats()
	tick := time.NewTicker(tickInterval)
	defer tick.Stop()
	for {
		select {
		case <-r.stop:
			return
		case c := <-r.ctrl:
			c.fn(r.t)
			close(c.done)
		case <-tick.C:
			if r.t.err == nil {
				if err := r.t.tick(); err != nil {
					r.t.err = err
					r.fatal(err)
				}
			}
			r.t.flushStats()
		case <-r.in.notify:
			for {
				b, ok := r.in.pop()
				if !ok {
					break
				}
				// A fetch can hold thousands of records; cut it in chunks and
				// answer commands between them, so a checkpoint waits for at
				// most one chunk, not a whole fetch.
				for len(b.records) > 0 {
					n := min(len(b.records), barrierChunk)
					if r.t.err == nil {
						if err := r.t.process(batch{topic: b.topic, records: b.records[:n], highWatermark: b.highWatermark}); err != nil {
							r.t.err = err
							r.fatal(err)
						}
					}
					b.records = b.records[n:]
					select {
					case c := <-r.ctrl:
						c.fn(r.t)
						close(c.done)
					case <-r.stop:
						return
					default:
					}
				}
			}
			r.t.flushStats()
		}
	}
}

// tickInterval is how often a task checks the clock: idle inputs,
// processing-time timers, watermarks for downstream stages.
const tickInterval = 20 * time.Millisecond
