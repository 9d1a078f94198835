package engine

import (
	"context"

	"github.com/weirstream/weir/state"
	"github.com/weirstream/weir/windowing"
)

// This file is the engine's side of the operator interface: what an
// operator package (Weir's own operators, or a third party's) builds on.
// The engine runs tasks; operators are written against these methods, as
// Flink separates a StreamOperator from the task that runs it.
//
// An operator is a function that subscribes to a Stream (Subscribe) and
// derives the stream it produces (Derive). At assignment, in the goroutine
// that will own a task, each subscription's build function runs once for
// the task and returns what receives the stream's records in it:
//
//   - per record: the Emit it returned is called, in offset order, with
//     the record's value, Kafka key and event time; it passes outputs on
//     through the Emit of its own stream's Build.
//   - per timer: Task.Timers gives the operator durable event- and
//     processing-time timers; OnFire is called when one is due.
//   - per watermark: Task.Watermark is the task's event time, which moves
//     between records; event-time timers fire as it passes them.
//   - per checkpoint: nothing to do, unless the operator has effects
//     outside Kafka (files, objects): Task.Checkpoint names the checkpoint
//     the records in hand belong to, Task.OnBarrier lets the operator write
//     the state that goes with the checkpoint, and Task.OnCommitted is
//     called once Kafka committed one, the moment to make such effects
//     visible. State lives in the task's store
//     (Task.Store, through the handles of package state declared in a
//     state.Registry and announced with Job.AddStatefulOperator), and the
//     engine writes its changes to the operator's changelog, commits them
//     with the input offsets, and restores them on restart; timers are
//     state too.
//   - user code: run it through the operator's Guard (Task.Guard), which
//     applies retries, the error policy and the circuit breaker; count
//     what passes in Task.Stats.
//   - side outputs: Stream.BuildSides gives the emitters of the tags a
//     job reads with SideOutput.
//   - outputs to a topic of the operator's own: Task.Produce, in the
//     task's checkpoint.
//
// Mistakes found while the topology is built (a bad option) go to
// Job.TopologyError, so that Run reports them before it reads anything.

// Watermark is the task's event-time watermark: no record at or before it
// is expected any more. windowing.MinWatermark before any event time is
// known.
func (t *Task) Watermark() windowing.Millis { return windowing.Millis(t.watermark) }

// FiringEventTimer reports whether the task is firing an event-time timer
// (an operator's OnTimer, a window's end): what it emits is made at the
// watermark, not late, and what operators hold of it (InFlight) is
// flushed before the watermark's move is done.
func (t *Task) FiringEventTimer() bool { return t.curTimer.set && t.curTimer.domain == EventTime }

// Checkpoint is the id of the checkpoint that the records the task
// processes now belong to: it commits them, or a restart replays them.
func (t *Task) Checkpoint() int64 { return t.cp }

// OnCommitted registers fn, called in the task's goroutine after Kafka
// committed each of the task's checkpoints (and its state is in the local
// store), with the checkpoint's id: what an operator wrote outside Kafka
// for records up to that checkpoint may now become visible, as Flink's
// two-phase sinks commit on notifyCheckpointComplete. It is not called for
// a checkpoint committed before a restart: what the restored state says
// is pending is the operator's to finish. An error stops the job. Call it
// when building the task, in an operator that declared state
// (Job.AddStatefulOperator): only stateful tasks have commits to follow.
func (t *Task) OnCommitted(fn func(cp int64) error) { t.onCommitted = append(t.onCommitted, fn) }

// OnBarrier registers fn, called in the task's goroutine at each barrier,
// before the task's state changes are cut: what fn writes to state belongs
// to the checkpoint the barrier starts, with Task.Checkpoint its id (a
// checkpoint that fails is taken again under the same id). An error fails
// the checkpoint and stops the job. Call it when building the task.
func (t *Task) OnBarrier(fn func() error) { t.onBarrier = append(t.onBarrier, fn) }

// StateMemory is about how many bytes of state an operator of the task
// may keep in memory in its own typed form (the window operators'
// accumulators and session lists, a window join's buffers), beside the
// store's caches: past it, the operator writes that state to the store
// and drops it from memory. 0 sets no bound. The share is the memory
// budget's for typed state split among the tasks the replica runs, so it
// changes as tasks come and go: read it again before each use.
func (t *Task) StateMemory() int64 {
	if t.stateMem == nil {
		return 0
	}
	return t.stateMem()
}

// Context ends when the replica stops: what an operator waits for (an
// upload, a call) should give up then.
func (t *Task) Context() context.Context { return t.ctx }

// Store is the task's part of the replica's state store, the scope of the
// state handles an operator declared; nil for a job without state.
func (t *Task) Store() *state.TaskStore { return t.store }

// AddTableSource registers topic as a source of stage read whole into
// state (a table a join looks up): it is read from its start when the
// group has no offset for it, whatever the job's start offset, and it
// must be partitioned like the stage's other topics.
func (j *Job) AddTableSource(topic, name string, stage int, build func(*Task) (SourceFunc, error)) {
	j.sources = append(j.sources, &source{topic: topic, name: name, stage: stage, fromStart: true, build: build})
}
