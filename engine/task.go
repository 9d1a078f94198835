package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
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
	producer Producer
	clock    Clock
	// store is the task's part of the replica's state store; nil for a
	// job without state.
	store *state.TaskStore
	// watermark is the task's event time (Unix ms), minWatermark before any.
	watermark int64
	timers    []*Timers
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
}

// taskEnv is what a replica (or a local harness) gives each of its tasks.
type taskEnv struct {
	ctx      context.Context
	log      *zap.Logger
	obs      observe.Observer
	producer Producer
	clock    Clock
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
}

func newTask(env taskEnv, id TaskID, j *Job) (*Task, error) {
	t := &Task{
		id:            id,
		job:           j,
		pastRetention: map[string]int{},
		failures:      env.failures,
		ctx:           env.ctx,
		log:           env.log.With(zap.Stringer("task", id)),
		obs:           env.obs,
		producer:      env.producer,
		clock:         env.clock,
		watermark:     minWatermark,
		et:            newEventTime(),
		sources:       make(map[string]SourceFunc, len(j.sources)),
		byName:        make(map[string]*OpStats),
		next:          make(map[string]kgo.EpochOffset, len(j.sources)),
		cp:            env.checkpoint + 1,
		clNext:        map[string]int64{},
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
	src := t.sources[b.topic]
	next := t.next[b.topic]
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
// processed before it, the epoch holding their outputs, and the changelog
// records that carry the state they changed.
type snapshot struct {
	task    TaskID
	cp      int64
	offsets map[string]kgo.EpochOffset
	epoch   *checkpoint.Epoch
	err     error
	// fail is an error writing the changelog: the checkpoint cannot commit.
	fail error
	// produced counts the records produced in the epoch, changelog
	// included: with it and unchanged offsets, there is nothing to commit.
	produced int
	// stateful is set when the task has a store whose flushed writes go
	// to Pebble once Kafka has the checkpoint.
	stateful bool
	// clNext is the changelog positions of the last committed state, and
	// clPending the positions the records written at this barrier and at
	// every earlier one not committed since reached once they are
	// acknowledged: together, the positions after this checkpoint.
	// changelog is this barrier's own records.
	clNext    map[string]int64
	clPending []*changelogAcks
	changelog *changelogAcks
	// eventTime is the task's event-time state at the barrier.
	eventTime map[string]string
}

// changelogNext returns the changelog positions the snapshot's state
// includes. Call it only after the snapshot's epoch completed.
func (s snapshot) changelogNext() map[string]int64 {
	next := maps.Clone(s.clNext)
	if next == nil {
		next = map[string]int64{}
	}
	for _, acks := range s.clPending {
		acks.mu.Lock()
		for topic, off := range acks.next {
			if off > next[topic] {
				next[topic] = off
			}
		}
		acks.mu.Unlock()
	}
	return next
}

// clAcks is how many of the task's pending changelog writes the snapshot
// covers: those its commit makes committed (see Task.commitState).
func (s snapshot) clAcks() int { return len(s.clPending) }

// changelogAcks collects, from produce callbacks on any goroutine, the
// offset after the last acknowledged changelog record of each topic.
type changelogAcks struct {
	mu            sync.Mutex
	next          map[string]int64
	records, size int
}

// barrier cuts the task between two records: it writes the state changed
// since the last barrier to the changelog, seals the current epoch, opens
// the next and returns the offsets processed so far.
func (t *Task) barrier() snapshot {
	// Tell downstream stages where event time is, inside this epoch.
	t.sendWatermark(true)
	var cl *changelogAcks
	var fail error
	if t.store != nil {
		cl, fail = t.writeChangelog(t.store.Flush())
		if cl != nil {
			t.clPending = append(t.clPending, cl)
		}
	}
	sealed := t.epoch
	t.newEpoch(sealed)
	sealed.Seal()
	snap := snapshot{
		task: t.id, cp: t.cp, offsets: maps.Clone(t.next), epoch: sealed, err: t.err, fail: fail,
		produced: t.produced, stateful: t.store != nil, clNext: t.clNext, changelog: cl,
		clPending: slices.Clone(t.clPending),
		eventTime: t.saveEventTime(),
	}
	t.produced = 0
	return snap
}

// writeChangelog produces each mutation to its operator's changelog
// topic, in the partition of the task, as part of the current epoch.
// Tombstones are records without a value; a value is never nil, so the
// two stay apart.
func (t *Task) writeChangelog(muts []state.Mutation) (*changelogAcks, error) {
	if len(muts) == 0 {
		return nil, nil
	}
	acks := &changelogAcks{next: map[string]int64{}}
	ep := t.epoch
	promise := func(r *kgo.Record, err error) {
		if err == nil {
			acks.mu.Lock()
			if r.Offset+1 > acks.next[r.Topic] {
				acks.next[r.Topic] = r.Offset + 1
			}
			acks.mu.Unlock()
		} else {
			err = newProduceError(r, err)
		}
		ep.Ack(err)
	}
	for _, m := range muts {
		op, err := state.OperatorOf(m.Key)
		if err != nil {
			return acks, fmt.Errorf("task %s: changelog: %w", t.id, err)
		}
		topic, ok := t.changelogs[op]
		if !ok {
			return acks, fmt.Errorf("task %s: state of operator %q, which declared none (AddStatefulOperator)", t.id, op)
		}
		v := m.Value
		if !m.Tombstone && v == nil {
			v = []byte{}
		}
		acks.records++
		acks.size += len(m.Key) + len(v)
		t.produced++
		ep.Add()
		t.producer.Produce(t.ctx, &kgo.Record{Topic: topic, Partition: t.id.Partition, Key: m.Key, Value: v, Context: controlRecord}, promise)
	}
	return acks, nil
}

// flushStats publishes the counts gathered since the last call.
func (t *Task) flushStats() {
	for _, s := range t.stats {
		flushCount(s.name, s.In, &s.sentIn, t.obs.RecordsIn)
		flushCount(s.name, s.Out, &s.sentOut, t.obs.RecordsOut)
		flushCount(s.name, s.Failed, &s.sentFailed, t.obs.RecordsFailed)
		flushCount(s.name, s.Late, &s.sentLate, t.obs.RecordsLate)
		flushCount(s.name, s.DeadLettered, &s.sentDeadLettered, t.obs.RecordsDeadLettered)
		flushCount(s.name, s.Skipped, &s.sentSkipped, t.obs.RecordsSkipped)
		flushCount(s.name, s.Retried, &s.sentRetried, t.obs.Retries)
	}
	for topic, n := range t.pastRetention {
		if n > 0 {
			t.obs.SinkRecordsPastRetention(topic, n)
			t.pastRetention[topic] = 0
		}
	}
}

// flushCount reports what count gained since it was last sent.
func flushCount(op string, count int64, sent *int64, report func(string, int)) {
	if d := count - *sent; d != 0 {
		report(op, int(d))
		*sent = count
	}
}

// batch is one fetch's records of one input partition.
type batch struct {
	topic         string
	records       []*kgo.Record
	highWatermark int64 // -1 when unknown
	// bytes is what the batch holds (batchBytes), counted once when an
	// inbox with a byte bound queues it.
	bytes int64
}

// inbox queues fetched batches for a task. The poll loop pushes, the task
// pops; when more than high records wait, the task's partitions are paused
// so the broker, not this process, holds the backlog, and resumed when the
// task has drained to half of it.
type inbox struct {
	high          int
	highBytes     int64 // 0: no bound
	pause, resume func()
	notify        chan struct{}

	mu struct {
		sync.Mutex
		batches []batch
		records int
		bytes   int64
		paused  bool
	}
}

func newInbox(high int, highBytes int64, pause, resume func()) *inbox {
	return &inbox{high: high, highBytes: highBytes, pause: pause, resume: resume, notify: make(chan struct{}, 1)}
}

// recordOverhead approximates what a fetched record costs beyond its key
// and value: the kgo.Record and its slices' headers.
const recordOverhead = 200

// batchBytes approximates the memory a batch holds.
func batchBytes(b batch) int64 {
	n := int64(len(b.records)) * recordOverhead
	for _, r := range b.records {
		n += int64(len(r.Key) + len(r.Value))
	}
	return n
}

// overLocked reports whether the queue is past its high marks.
func (q *inbox) overLocked() bool {
	return q.mu.records >= q.high || (q.highBytes > 0 && q.mu.bytes >= q.highBytes)
}

// drainedLocked reports whether a paused queue has drained to half.
func (q *inbox) drainedLocked() bool {
	return q.mu.records <= q.high/2 && (q.highBytes == 0 || q.mu.bytes <= q.highBytes/2)
}

func (q *inbox) push(b batch) {
	if q.highBytes > 0 {
		b.bytes = batchBytes(b) // outside the lock the task pops under
	}
	q.mu.Lock()
	q.mu.batches = append(q.mu.batches, b)
	q.mu.records += len(b.records)
	q.mu.bytes += b.bytes
	pause := !q.mu.paused && q.overLocked()
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

// release drops what the queue holds and resumes its partitions if it
// paused them: its task stopped, and the next one starts empty.
func (q *inbox) release() {
	q.mu.Lock()
	q.mu.batches, q.mu.records, q.mu.bytes = nil, 0, 0
	resume := q.mu.paused
	q.mu.paused = false
	q.mu.Unlock()
	if resume {
		q.resume()
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
	q.mu.bytes -= b.bytes
	resume := q.mu.paused && q.drainedLocked()
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

// taskCmd runs fn in a task's goroutine at its next cut between records:
// a barrier, or the Pebble commit after Kafka committed one. fn gets nil
// while the task is still restoring its state. activate, instead, lets a
// restored task start processing.
type taskCmd struct {
	fn       func(*Task)
	activate bool
	done     chan struct{}
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

// held is a task at a checkpoint's barrier. With exactly-once the task
// waits there, producing nothing, until release brings the outcome: what
// it would produce next must not join the transaction that commits the
// offsets of its barrier.
type held struct {
	tr      *taskRunner
	snap    snapshot
	release chan heldOutcome // nil when the task does not wait
}

// heldOutcome ends a hold: commit says the checkpoint committed, and the
// task commits its state (checkpoint cp, changelog positions clNext) to
// Pebble before it goes on; otherwise it goes on with its state pending,
// to be committed by a later checkpoint.
type heldOutcome struct {
	commit bool
	cp     int64
	clNext map[string]int64
	clAcks int
}

// barrier takes a barrier in the task; with hold, the task then waits for
// h.release (or its stop). It returns a nil held for a task still
// restoring (it has nothing to commit), and false if the task or ctx ended
// first.
func (r *taskRunner) barrier(ctx context.Context, hold bool) (*held, bool) {
	h := &held{tr: r}
	if hold {
		h.release = make(chan heldOutcome, 1)
	}
	ready := make(chan bool, 1)
	c := taskCmd{done: make(chan struct{}), fn: func(t *Task) {
		if t == nil {
			ready <- false
			return
		}
		h.snap = t.barrier()
		ready <- true
		if !hold {
			return
		}
		select {
		case o := <-h.release:
			if o.commit {
				if err := t.commitState(o.cp, o.clNext, o.clAcks); err != nil {
					t.err = err
					r.fatal(err)
				}
			}
		case <-r.stop:
		}
	}}
	select {
	case r.ctrl <- c:
	case <-r.done:
		return nil, false
	case <-ctx.Done():
		return nil, false
	}
	if !<-ready {
		return nil, true
	}
	return h, true
}

// commitState makes checkpoint cp, which Kafka has committed, the task's
// committed checkpoint: it writes the state flushed at its barrier to
// Pebble with the changelog positions that state includes (clNext), so a
// restart restores only the changelog after them. clAcks is how many of
// the pending changelog writes the checkpoint covered (snapshot.clAcks).
func (t *Task) commitState(cp int64, clNext map[string]int64, clAcks int) error {
	t.cp = cp + 1
	t.clNext = clNext
	t.clPending = t.clPending[clAcks:]
	if t.store == nil {
		return nil
	}
	if err := t.store.CommitPending(cp, clNext); err != nil {
		return fmt.Errorf("task %s: committing state of checkpoint %d: %w", t.id, cp, err)
	}
	return nil
}

// taskRunner is the goroutine that owns a task in a running job. It first
// restores the task's state (start), then waits for the runtime to
// activate it, which happens between checkpoints, and only then processes.
type taskRunner struct {
	id    TaskID
	in    *inbox
	ctrl  chan taskCmd
	stop  chan struct{}
	done  chan struct{}
	fatal func(error)
	// start restores the task's state and builds it; ctx ends when the
	// task is stopped. restored is called once start succeeded.
	start    func(ctx context.Context) (*Task, error)
	restored func()
	// ready is set once the task is restored and waits to be activated;
	// active once it was (only the runtime's poll goroutine touches it).
	ready  atomic.Bool
	active bool
	// t is the task; the runner's goroutine sets it, others read it only
	// through commands or after done is closed (nil if it never started).
	t *Task
	// committed is the input offsets of the task's last committed
	// checkpoint; only the checkpointing goroutine touches it.
	committed map[string]kgo.EpochOffset
	// dirty is the bytes in the task's write-back state cache, as of its
	// last batch, for the memory budget.
	dirty atomic.Int64
	// pending is what the task had in hand when the replica halted: it
	// processes it first when the replica resumes.
	pending batch
	// busy is when the task began the chunk of records it is processing
	// (Unix nanoseconds), 0 between chunks: /healthz fails when a task
	// stays on one chunk too long (user code that never returns).
	busy atomic.Int64
}

func (r *taskRunner) halted() bool {
	h, _ := r.t.failures.halted()
	return h
}

func (r *taskRunner) run() {
	defer close(r.done)
	t, ok := r.restore()
	if !ok {
		return
	}
	r.t = t
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
			if halted, _ := r.t.failures.halted(); r.t.err == nil && !halted {
				if err := r.t.tick(); err != nil {
					r.t.err = err
					r.fatal(err)
				}
			}
			r.t.flushStats()
		case <-r.in.notify:
			for {
				// A stopped task takes no more input: what it has not
				// processed is read again by whoever runs it next.
				select {
				case <-r.stop:
					return
				default:
				}
				// A halted replica (its circuit breaker open) processes
				// nothing until it resumes, which notifies every task.
				if halted, _ := r.t.failures.halted(); halted {
					break
				}
				b, ok := r.pending, len(r.pending.records) > 0
				r.pending = batch{}
				if !ok {
					if b, ok = r.in.pop(); !ok {
						break
					}
				}
				// A fetch can hold thousands of records; cut it in chunks and
				// answer commands between them, so a checkpoint waits for at
				// most one chunk, not a whole fetch.
				for len(b.records) > 0 {
					n := min(len(b.records), barrierChunk)
					if r.t.err == nil {
						r.busy.Store(time.Now().UnixNano())
						err := r.t.process(batch{topic: b.topic, records: b.records[:n], highWatermark: b.highWatermark})
						r.busy.Store(0)
						if err != nil {
							r.t.err = err
							r.fatal(err)
						}
					}
					if held := r.t.held; len(held) > 0 || r.halted() {
						r.pending = batch{topic: b.topic, records: slices.Concat(held, b.records[n:]), highWatermark: b.highWatermark}
						r.t.held = nil
						break
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
			if r.t.store != nil {
				r.dirty.Store(int64(r.t.store.DirtyBytes()))
			}
		}
	}
}

// restore runs start, answering commands meanwhile (a checkpoint skips a
// task that is not running), then waits for activation.
func (r *taskRunner) restore() (*Task, bool) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		t   *Task
		err error
	}
	res := make(chan result, 1)
	go func() {
		t, err := r.start(ctx)
		res <- result{t, err}
	}()
	var t *Task
	for {
		select {
		case x := <-res:
			if x.err != nil {
				r.fatal(x.err)
				return nil, false
			}
			t = x.t
			r.ready.Store(true)
			r.restored()
		case c := <-r.ctrl:
			if c.activate {
				close(c.done)
				return t, true
			}
			c.fn(nil)
			close(c.done)
		case <-r.stop:
			if t == nil {
				cancel()
				<-res // the restore stops using the store before anyone drops it
			}
			return nil, false
		}
	}
}

// activate lets a restored task process. Only the poll goroutine calls it,
// between checkpoints, so a task never starts inside one.
func (r *taskRunner) activate() {
	c := taskCmd{activate: true, done: make(chan struct{})}
	select {
	case r.ctrl <- c:
		<-c.done
		r.active = true
	case <-r.done:
	}
}

// tickInterval is how often a task checks the clock: idle inputs,
// processing-time timers, watermarks for downstream stages.
const tickInterval = 20 * time.Millisecond
