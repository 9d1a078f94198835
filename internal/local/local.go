// Package local runs a job's tasks in the caller's goroutine, with no
// broker and no consumer group: records go in through Task.Process,
// outputs go to the Producer. It is the engine underneath weirtest and the
// engine-only benchmarks, kept out of the engine's public API: package
// engine implements it (engine/local.go) and registers the implementation
// when it is initialised, so everything here takes the job as an
// *engine.Job passed as any.
package local

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/observe"
	"github.com/weirstream/weir/state"
)

// Producer is where a local task's outputs go (sinks', repartition and
// changelog records): promise must be called exactly once, on any
// goroutine.
type Producer interface {
	Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error))
}

// Clock is a task's processing-time clock.
type Clock interface{ Now() time.Time }

// Checkpoint is what a local task's checkpoint committed besides its state
// (which is in the changelog records it produced): what a running job
// commits to Kafka with the checkpoint's input offsets, in the
// offset-commit metadata. Pass it as Env.Resume to restart the task from
// it.
type Checkpoint struct {
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

// Env is what local tasks run with. Zero fields get defaults: the system
// clock, a no-op observer, and for a job with state a fresh in-memory
// store per task.
type Env struct {
	Producer Producer
	Observer observe.Observer
	Clock    Clock
	// Store holds the tasks' state; share one between a job's local tasks
	// as a replica does.
	Store *state.Store
	// Resume restarts the task from a checkpoint it committed before (see
	// Task.Committed): the task's state in Store must already be the
	// checkpoint's, restored from its changelog (state.TaskStore.Restore,
	// then FinishRestore with Resume.Changelog), and the caller feeds it
	// its inputs from Resume.Offsets. The task resumes the checkpoint's
	// event time and numbers its next checkpoint after Resume.ID. The zero
	// value starts the task afresh.
	Resume Checkpoint
	// TimerMemory is about how many bytes of timers the task keeps in
	// memory; the later timers are read from Store as they come due. Zero
	// takes the share a replica gives its timers of the job's memory
	// limit (Config.MemoryLimit); a negative value sets no bound. A share
	// of a few bytes reads every timer back from the store.
	TimerMemory int64
	// StateMemory is about how many bytes of typed state (window
	// accumulators) the task's operators keep in memory beside the
	// store's caches (engine.Task.StateMemory). Zero takes the task's
	// share of the job's memory limit; a negative value sets no bound. A
	// share of a few bytes writes every change to the store at once.
	StateMemory int64
	// StateShare, when set, is the task's share of typed state instead of
	// StateMemory, read at every reservation: a replica's share changes as
	// its tasks come and go, and a task whose share shrinks spills to the
	// store. 0 sets no bound.
	StateShare func() int64
}

// Task is one task of a job, run in the caller's goroutine.
type Task interface {
	// Process runs the records of one input topic through the chain in
	// order. It stops at the first record that fails and returns its
	// *engine.RecordError; after that the task stays failed, as a running
	// job's would.
	Process(topic string, records []*kgo.Record) error
	// Tick does what a running task does on its timer: idle inputs stop
	// holding the watermark back, processing-time timers the clock passed
	// fire, and stages downstream hear of the watermark (at once, unlike
	// a running task, which tells them at most every 100ms).
	Tick() error
	// AdvanceWatermark moves the task's watermark to wm (never back), as
	// if every input had reported it: event-time timers it passes fire,
	// and stages downstream hear of it at the next Tick.
	AdvanceWatermark(wm time.Time) error
	// AdvanceInputWatermark raises the watermark of one input topic's
	// partition (a source with a watermark strategy) to wm, as that input
	// emitting it would; the task's watermark follows the least of its
	// inputs'.
	AdvanceInputWatermark(topic string, wm time.Time) error
	// MarkInputIdle marks one input topic's partition idle until its next
	// record: it no longer holds the task's watermark back.
	MarkInputIdle(topic string) error
	// EndInput makes the task's run bounded and ends the given source
	// topics' input, as a bounded run reaching its stop does: once every
	// source of the task has ended and every upstream task has sent the
	// maximum watermark, the task moves its watermark to the maximum,
	// firing every event-time timer, and tells stages downstream (at the
	// next Tick). With no topics it only makes the run bounded: a stage
	// reading repartition topics alone ends when its upstream has.
	EndInput(topics ...string) error
	// Finished reports whether the task has ended (see EndInput).
	Finished() bool
	// Checkpoint takes a barrier and commits its state at once, as a
	// running job does once Kafka has the checkpoint's offsets. The
	// producer must have acknowledged the barrier's records (the
	// changelog's among them) by the time it returns, as a running job's
	// transaction has before it commits.
	Checkpoint(id int64) error
	// Committed is the last checkpoint the task committed (or, before
	// any, the one it resumed from; the zero value if neither). The maps
	// are the caller's.
	Committed() Checkpoint
	// Watermark is the task's event-time watermark; the zero time before
	// any.
	Watermark() time.Time
	// Store is the task's state, nil for a job without state.
	Store() *state.TaskStore
	// NextOffset is the offset of the next record of topic the task would
	// process: the offset a checkpoint would commit.
	NextOffset(topic string) int64
}

// Topology is what a harness needs to know of a prepared job.
type Topology struct {
	// Stages is the number of stages; Partitions every stage's partition
	// count.
	Stages     int
	Partitions int32
	// Internal names the internal topics (repartition, late-data and
	// changelog topics).
	Internal []string
	// Readers is, per topic a stage reads, that stage.
	Readers map[string]int
	// Changelogs names, per stage, its stateful operators' changelog
	// topics, sorted.
	Changelogs [][]string
}

// Engine is package engine's implementation, registered at its init.
var Engine struct {
	Prepare func(job any, partitions int32) Topology
	NewTask func(ctx context.Context, job any, stage int, partition int32, env Env) (Task, error)
}

// Prepare fixes what Run would learn from the cluster, for running the
// job's tasks locally: every stage has partitions partitions, and internal
// topics are named after the job (as if the group were its name). It
// returns the job's topology.
func Prepare(job any, partitions int32) Topology { return Engine.Prepare(job, partitions) }

// NewTask builds the job's operators for the task of stage and partition,
// in env. The job must be prepared first.
func NewTask(ctx context.Context, job any, stage int, partition int32, env Env) (Task, error) {
	return Engine.NewTask(ctx, job, stage, partition, env)
}

// StageOf returns the stage that reads topic.
func (t Topology) StageOf(topic string) (int, bool) {
	s, ok := t.Readers[topic]
	return s, ok
}
