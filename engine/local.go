package engine

import (
	"context"
	"fmt"
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
}

// PrepareLocal fixes what Run would learn from the cluster, for running
// the job's tasks locally: every stage has partitions partitions, and
// internal topics are named after the job (as if the group were its name).
func (j *Job) PrepareLocal(partitions int32) {
	j.partitions = partitions
	j.resolveInternalTopics(j.name)
}

// InternalTopics names the job's internal topics (repartition and
// late-data topics); empty before Run or PrepareLocal.
func (j *Job) InternalTopics() []string {
	var ts []string
	for _, it := range j.internal {
		ts = append(ts, it.name)
	}
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
	t, err := newTask(taskEnv{ctx: ctx, log: log, obs: env.Observer, producer: env.Producer, clock: env.Clock, store: env.Store}, id, j)
	if err != nil {
		return nil, err
	}
	return &LocalTask{t: t}, nil
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
// job does once Kafka has the checkpoint's offsets.
func (l *LocalTask) Checkpoint(id int64) error {
	snap := l.t.barrier()
	if snap.fail != nil {
		return snap.fail
	}
	return l.t.commitState(id, snap.changelogNext())
}

// Watermark is the task's event-time watermark; the zero time before any.
func (l *LocalTask) Watermark() time.Time { return watermarkTime(l.t.watermark) }

// Store is the task's state, nil for a job without state.
func (l *LocalTask) Store() *state.TaskStore { return l.t.store }

// ID is the task's id.
func (l *LocalTask) ID() TaskID { return l.t.id }

// NextOffset is the offset of the next record of topic the task would
// process: the offset a checkpoint would commit.
func (l *LocalTask) NextOffset(topic string) int64 { return l.t.next[topic].Offset }
