package engine

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/weirstream/weir/observe"
	"github.com/weirstream/weir/state"
)

// LocalTask runs a job's operator chain for one task in the caller's
// goroutine, with no broker and no consumer group: records go in through
// Process, outputs go to the env's Producer. It is the engine underneath
// test harnesses and the engine-only benchmarks; it is not for production.
type LocalTask struct {
	t *Task
	// committed is the last checkpoint the task committed, or resumed from.
	committed LocalCheckpoint
}

// LocalCheckpoint is what a local task's checkpoint committed besides its
// state (which is in the changelog records it produced): what a running
// job commits to Kafka with the checkpoint's input offsets, in the
// offset-commit metadata. Pass it as LocalEnv.Resume to restart the task
// from it.
type LocalCheckpoint struct {
	// ID is the checkpoint's id; 0 for none.
	ID int64
	// Offsets is, per input topic, the offset of the next record to
	// process: where a restarted task reads from.
	Offsets map[string]int64
	// Changelog is, per changelog topic of the task's operators, the
	// offset after the last record the checkpoint's state includes.
	Changelog map[string]int64
	// EventTime is the task's event-time state (by input topic, and its
	// watermark, AdvanceWatermark's included), which a running job keeps in
	// the commit metadata.
	EventTime map[string]string
}

// LocalEnv is what local tasks run with. Zero fields get defaults: the
// system clock, a no-op observer, and for a job with state a fresh
// in-memory store per task.
type LocalEnv struct {
	Producer Producer
	Observer observe.Observer
	Clock    Clock
	// Store holds the tasks' state; share one between a job's local tasks
	// as a replica does.
	Store *state.Store
	// Resume restarts the task from a checkpoint it committed before (see
	// LocalTask.Committed): the task's state in Store must already be the
	// checkpoint's, restored from its changelog (state.TaskStore.Restore,
	// then FinishRestore with Resume.Changelog), and the caller feeds it
	// its inputs from Resume.Offsets. The task resumes the checkpoint's
	// event time and numbers its next checkpoint after Resume.ID. The zero
	// value starts the task afresh.
	Resume LocalCheckpoint
}

// PrepareLocal fixes what Run would learn from the cluster, for running
// the job's tasks locally: every stage has partitions partitions, and
// internal topics are named after the job (as if the group were its name).
func (j *Job) PrepareLocal(partitions int32) {
	j.partitions = partitions
	j.resolveInternalTopics(j.name)
}

// InternalTopics names the job's internal topics (repartition, late-data
// and changelog topics); empty before Run or PrepareLocal.
func (j *Job) InternalTopics() []string {
	var ts []string
	for _, it := range j.internal {
		ts = append(ts, it.name)
	}
	return ts
}

// ChangelogTopics names the changelog topics of stage's stateful
// operators, sorted: a task of the stage writes the changes of its state
// to the partition of each numbered as the task. Empty before Run or
// PrepareLocal.
func (j *Job) ChangelogTopics(stage int) []string {
	var ts []string
	for _, it := range j.changelogs {
		if it.from == stage {
			ts = append(ts, it.name)
		}
	}
	slices.Sort(ts)
	return ts
}

// Stages is the number of stages of the job.
func (j *Job) Stages() int { return j.stages }

// Partitions is the partition count of every stage, known once the job
// started (or after PrepareLocal).
func (j *Job) Partitions() int32 { return j.partitions }

// StageOf returns the stage that reads topic.
func (j *Job) StageOf(topic string) (int, bool) { return j.stageOf(topic) }

// NewLocalTask builds the job's operators for the task id, with p as its
// producer and obs (may be nil) as its observer.
func (j *Job) NewLocalTask(ctx context.Context, id TaskID, p Producer, obs observe.Observer) (*LocalTask, error) {
	return j.NewLocalTaskWith(ctx, id, LocalEnv{Producer: p, Observer: obs})
}

// NewLocalTaskWith builds the job's operators for the task id in env.
func (j *Job) NewLocalTaskWith(ctx context.Context, id TaskID, env LocalEnv) (*LocalTask, error) {
	if err := j.validateTopology(); err != nil {
		return nil, err
	}
	if env.Observer == nil {
		env.Observer = observe.Nop{}
	}
	if env.Clock == nil {
		env.Clock = systemClock{}
	}
	if env.Store == nil && j.stateful {
		s, err := state.Open("", state.InMemory(state.NewMemFS()))
		if err != nil {
			return nil, err
		}
		env.Store = s
	}
	log := j.cfg.logger
	if log == nil {
		log = zap.NewNop()
	}
	if j.usesDeadLetters() && j.dlq.name == "" {
		// As Run would: the job's own dead-letter topic, partitioned like
		// its first stage.
		j.dlq = deadLetterTopic{name: j.cfg.DeadLetterTopic, partitions: max(1, j.partitions)}
		if j.dlq.name == "" {
			j.dlq.name = j.name + "-dlq"
		}
	}
	r := env.Resume
	t, err := newTask(taskEnv{
		ctx: ctx, log: log, obs: env.Observer, producer: env.Producer, clock: env.Clock, store: env.Store,
		checkpoint: r.ID, changelogNext: maps.Clone(r.Changelog), eventTime: r.EventTime,
	}, id, j)
	if err != nil {
		return nil, err
	}
	return &LocalTask{t: t, committed: cloneCheckpoint(r)}, nil
}

func cloneCheckpoint(c LocalCheckpoint) LocalCheckpoint {
	c.Offsets, c.Changelog, c.EventTime = maps.Clone(c.Offsets), maps.Clone(c.Changelog), maps.Clone(c.EventTime)
	return c
}

// Process runs the records of one input topic through the chain in order.
// It stops at the first record that fails and returns its *RecordError;
// after that the task stays failed, as a running job's would.
func (l *LocalTask) Process(topic string, records []*kgo.Record) error {
	if l.t.err != nil {
		return l.t.err
	}
	if _, ok := l.t.sources[topic]; !ok {
		return &RecordError{Topic: topic, Partition: l.t.id.Partition, Offset: -1, Operator: "local", Err: fmt.Errorf("the job has no source for topic %q in stage %d", topic, l.t.id.Stage)}
	}
	err := l.t.process(batch{topic: topic, records: records, highWatermark: -1})
	if err != nil {
		l.t.err = err
	}
	l.t.flushStats()
	return err
}

// Tick does what a running task does on its timer: idle inputs stop
// holding the watermark back, processing-time timers the clock passed
// fire, and stages downstream hear of the watermark (at once, unlike a
// running task, which tells them at most every 100ms).
func (l *LocalTask) Tick() error {
	if l.t.err != nil {
		return l.t.err
	}
	if err := l.t.tick(); err != nil {
		l.t.err = err
		return err
	}
	l.t.sendWatermark(true)
	l.t.flushStats()
	return nil
}

// AdvanceWatermark moves the task's watermark to wm (never back), as if
// every input had reported it: event-time timers it passes fire, and
// stages downstream hear of it at the next Tick.
func (l *LocalTask) AdvanceWatermark(wm time.Time) error {
	if l.t.err != nil {
		return l.t.err
	}
	if err := l.t.advanceWatermark(wm.UnixMilli()); err != nil {
		l.t.err = err
		return err
	}
	l.t.flushStats()
	return nil
}

// Checkpoint takes a barrier and commits its state at once, as a running
// job does once Kafka has the checkpoint's offsets. The producer must
// have acknowledged the barrier's records (the changelog's among them)
// by the time it returns, as a running job's transaction has before it
// commits. Committed then returns what the checkpoint committed.
func (l *LocalTask) Checkpoint(id int64) error {
	snap := l.t.barrier()
	if snap.fail != nil {
		return snap.fail
	}
	clNext := snap.changelogNext()
	if err := l.t.commitState(id, clNext, snap.clAcks()); err != nil {
		return err
	}
	offsets := make(map[string]int64, len(snap.offsets))
	for topic, o := range snap.offsets {
		offsets[topic] = o.Offset
	}
	l.committed = LocalCheckpoint{ID: id, Offsets: offsets, Changelog: maps.Clone(clNext), EventTime: snap.eventTime}
	return nil
}

// Committed is the last checkpoint the task committed (or, before any,
// the one it resumed from; the zero value if neither): pass it as
// LocalEnv.Resume to restart the task from it. The maps are the caller's.
func (l *LocalTask) Committed() LocalCheckpoint { return cloneCheckpoint(l.committed) }

// Watermark is the task's event-time watermark; the zero time before any.
func (l *LocalTask) Watermark() time.Time { return watermarkTime(l.t.watermark) }

// Store is the task's state, nil for a job without state.
func (l *LocalTask) Store() *state.TaskStore { return l.t.store }

// ID is the task's id.
func (l *LocalTask) ID() TaskID { return l.t.id }

// NextOffset is the offset of the next record of topic the task would
// process: the offset a checkpoint would commit.
func (l *LocalTask) NextOffset(topic string) int64 { return l.t.next[topic].Offset }
