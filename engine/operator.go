package engine

import (
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
//   - per checkpoint: nothing to do. State lives in the task's store
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
