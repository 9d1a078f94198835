package engine

// This file owns localTask: a task run in the caller's goroutine, with no
// broker and no consumer group, for weirtest and the engine-only
// benchmarks. It is reached through package internal/local, which it
// registers itself with, so none of it is in the engine's public API.

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/weirstream/weir/internal/local"
	"github.com/weirstream/weir/observe"
	"github.com/weirstream/weir/state"
	"github.com/weirstream/weir/windowing"
)

func init() {
	local.Engine.Prepare = func(job any, partitions int32) local.Topology {
		return job.(*Job).prepareLocal(partitions)
	}
	local.Engine.NewTask = func(ctx context.Context, job any, stage int, partition int32, env local.Env) (local.Task, error) {
		return job.(*Job).newLocalTask(ctx, TaskID{Stage: stage, Partition: partition}, env)
	}
}

// localTask runs a job's operator chain for one task in the caller's
// goroutine: records go in through Process, outputs go to the env's
// Producer.
type localTask struct {
	t *Task
	// committed is the last checkpoint the task committed, or resumed from.
	committed local.Checkpoint
}

// prepareLocal fixes what Run would learn from the cluster, for running
// the job's tasks locally: every stage has partitions partitions, and
// internal topics are named after the job (as if the group were its name).
func (j *Job) prepareLocal(partitions int32) local.Topology {
	j.partitions = partitions
	j.resolveInternalTopics(j.name)
	top := local.Topology{Stages: j.stages, Partitions: partitions, Readers: map[string]int{}, Changelogs: make([][]string, j.stages)}
	for _, it := range j.internal {
		top.Internal = append(top.Internal, it.name)
	}
	for _, s := range j.sources {
		if _, ok := top.Readers[s.topic]; !ok {
			top.Readers[s.topic] = s.stage
		}
	}
	for _, it := range j.changelogs {
		top.Changelogs[it.from] = append(top.Changelogs[it.from], it.name)
	}
	for _, ts := range top.Changelogs {
		slices.Sort(ts)
	}
	return top
}

// newLocalTask builds the job's operators for the task id in env.
func (j *Job) newLocalTask(ctx context.Context, id TaskID, env local.Env) (*localTask, error) {
	if err := j.validateTopology(); err != nil {
		return nil, err
	}
	if env.Observer == nil {
		env.Observer = observe.Nop{}
	}
	var clk clock = systemClock{}
	if env.Clock != nil {
		clk = env.Clock
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
	var timerMem *timerMemory
	var stateMem int64
	b, ok := newMemoryBudget(j.cfg.MemoryLimit)
	switch {
	case env.TimerMemory > 0:
		timerMem = newTimerMemory(env.TimerMemory)
	case env.TimerMemory == 0 && ok:
		timerMem = newTimerMemory(b.timers)
	}
	switch {
	case env.StateMemory > 0:
		stateMem = env.StateMemory
	case env.StateMemory == 0 && ok:
		stateMem = b.stateMemory(max(1, j.partitions), j.stages)
	}
	share := func() int64 { return stateMem }
	if env.StateShare != nil {
		share = env.StateShare
	}
	t, err := newTask(taskEnv{
		ctx: ctx, log: log, obs: env.Observer, producer: env.Producer, clock: clk, store: env.Store,
		checkpoint: r.ID, changelogNext: maps.Clone(r.Changelog), eventTime: r.EventTime, timerMem: timerMem, stateMem: share,
	}, id, j)
	if err != nil {
		return nil, err
	}
	return &localTask{t: t, committed: cloneCheckpoint(r)}, nil
}

func cloneCheckpoint(c local.Checkpoint) local.Checkpoint {
	c.Offsets, c.Changelog, c.EventTime = maps.Clone(c.Offsets), maps.Clone(c.Changelog), maps.Clone(c.EventTime)
	return c
}

func (l *localTask) Process(topic string, records []*kgo.Record) error {
	if l.t.err != nil {
		return l.t.err
	}
	if l.t.source(topic) == nil {
		return &RecordError{Topic: topic, Partition: l.t.id.Partition, Offset: -1, Operator: "local", Err: fmt.Errorf("the job has no source for topic %q in stage %d", topic, l.t.id.Stage)}
	}
	err := l.t.process(batch{topic: topic, records: records, highWatermark: -1})
	if err != nil {
		l.t.err = err
	}
	l.t.flushStats()
	return err
}

func (l *localTask) Tick() error {
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

func (l *localTask) AdvanceWatermark(wm time.Time) error {
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

func (l *localTask) AdvanceInputWatermark(topic string, wm time.Time) error {
	gen, err := l.generator(topic)
	if err != nil {
		return err
	}
	gen.Emit(windowing.MillisOf(wm))
	return l.afterInput()
}

func (l *localTask) MarkInputIdle(topic string) error {
	gen, err := l.generator(topic)
	if err != nil {
		return err
	}
	gen.MarkIdle()
	return l.afterInput()
}

func (l *localTask) EndInput(topics ...string) error {
	if l.t.err != nil {
		return l.t.err
	}
	l.t.bounded = true
	for _, topic := range topics {
		if l.t.source(topic) == nil {
			return fmt.Errorf("task %s reads no topic %q", l.t.id, topic)
		}
		l.t.ended[topic] = true
	}
	if err := l.t.maybeFinish(); err != nil {
		l.t.err = err
		return err
	}
	l.t.flushStats()
	return nil
}

func (l *localTask) Finished() bool { return l.t.finished }

func (l *localTask) generator(topic string) (*windowing.Generator, error) {
	if l.t.err != nil {
		return nil, l.t.err
	}
	gen, ok := l.t.et.generators[topic]
	if !ok {
		return nil, fmt.Errorf("task %s reads no topic %q with a watermark strategy", l.t.id, topic)
	}
	return gen, nil
}

// afterInput moves the task's watermark after an input's changed, firing
// the timers it passes.
func (l *localTask) afterInput() error {
	if err := l.t.advance(); err != nil {
		l.t.err = err
		return err
	}
	l.t.flushStats()
	return nil
}

func (l *localTask) Checkpoint(id int64) error {
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
	l.committed = local.Checkpoint{ID: id, Offsets: offsets, Changelog: maps.Clone(clNext), EventTime: snap.eventTime}
	return nil
}

func (l *localTask) Committed() local.Checkpoint { return cloneCheckpoint(l.committed) }

func (l *localTask) Watermark() time.Time { return watermarkTime(l.t.watermark) }

func (l *localTask) Store() *state.TaskStore { return l.t.store }

func (l *localTask) NextOffset(topic string) int64 { return l.t.next[topic].Offset }
