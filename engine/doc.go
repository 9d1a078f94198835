// Package engine runs Weir jobs: it owns the topology a job builds, the
// tasks that execute it (one goroutine per input partition number), and
// the protocol that commits their progress to Kafka. It holds no operator:
// those are in package operators, sources and sinks in package connectors,
// all written against the operator interface of operator.go.
//
// Kafka is the source of truth: a checkpoint commits a task's outputs,
// state changelog and input offsets together (in one Kafka transaction
// exactly once), local state reaches Pebble only after that, and a task
// that starts restores its state to what Kafka committed.
//
// The engine reports through observe.Observer and logs with zap; it never
// panics on bad input: a record that cannot be processed meets its
// operator's error policy (failure.go): it stops its task with a
// RecordError naming it, or goes to the dead-letter topic, or is skipped.
//
// # Files
//
// The job and its configuration:
//
//   - job.go: Job, building a topology (sources, stages, internal topics,
//     operator names), Run, RegisterFlags and Main.
//   - config.go: Config and its options; configenv.go: the WEIR_* variables
//     and flags that set it, and its validation.
//   - stream.go, keyed.go, sideoutput.go, repartition.go: streams, keyed
//     streams, side outputs, and the repartition between stages.
//   - operator.go: what operators build on (Derive, Subscribe, Task.Timers,
//     Task.Store, Task.Watermark, ...), and what each gets per record, timer,
//     watermark and checkpoint.
//
// The replica (one per process), split by concern:
//
//   - runtime.go: the runtime struct, run (start to shutdown), the Kafka
//     client's options, the replica id.
//   - topics.go: checking the job's topics at start, creating the internal
//     ones, the sinks' limits.
//   - poll.go: the poll loop: fetch, rate caps (ratelimit.go), hand batches
//     to tasks, call checkpoints.
//   - membership.go: rebalance callbacks, starting and stopping tasks,
//     static membership.
//   - commit.go: checkpoints, the transaction or offset commit, abort and
//     restart.
//   - restore.go: what a starting task restores: committed offsets and
//     metadata (commitmeta.go), the changelog; tailrepair.go: at least once,
//     rewriting what a dead replica left past its checkpoint.
//   - ready.go, http.go: /readyz, /healthz, /metrics and the circuit
//     breaker's endpoints.
//   - memory.go: the memory budget's shares.
//   - bounded.go: bounded runs (Config.Until): where sources end, ending
//     tasks with the maximum watermark, stopping the replica.
//
// A task and what runs in it:
//
//   - task.go: Task (offsets, epochs, the changelog), the record path
//     (Task.process) and its statistics.
//   - inbox.go: the bounded queue of fetched batches in front of a task.
//   - runner.go: taskRunner, the goroutine that owns a task: restore,
//     activation, the processing loop.
//   - barrier.go: a task's side of a checkpoint: the barrier, the changelog
//     writes, the hold and the state commit.
//   - failure.go: error policies, dead letters, retries and the circuit
//     breaker (Guard).
//   - eventtime.go, timers.go: watermarks across inputs and stages, event-
//     and processing-time timers (Timers).
//   - inflight.go: operators with records in flight (operators.AsyncMap):
//     flushed at ticks and barriers, holding the watermark.
//   - local.go: a task run in the caller's goroutine (internal/local), for
//     harnesses and benchmarks.
//   - errors.go, provenance.go, fault.go, fault_on.go: the errors the engine returns,
//     provenance headers, fault injection for crash tests.
//
// # One record
//
// The poll loop (poll.go) fetches a batch and pushes it to the inbox of the
// task owning its partition number (inbox.go: inbox.push, pausing the
// partitions when the inbox is full). The task's goroutine (runner.go) pops
// it and calls Task.process (task.go), which feeds each record to the
// source function of its topic: decoding, then each operator in turn, each
// running user code through its Guard (failure.go), down to a sink, which
// calls Task.Produce: the output joins the task's current epoch and,
// exactly once, the open transaction. The task's next offset moves past the
// record. Event time moves with it (eventtime.go), and the timers it passes
// fire (timers.go).
//
// # One barrier
//
// When a checkpoint is due, the poll loop calls runtime.checkpoint
// (commit.go) between polls. It sends each task a barrier (barrier.go:
// taskRunner.barrier): between two records the task writes its changed
// state to the changelog, seals its epoch and snapshots its offsets, and,
// exactly once, waits. The runtime waits for each sealed epoch's
// acknowledgements, then commits the snapshots' offsets with their metadata
// (checkpoint id, changelog positions, event time) in the transaction
// (commitTransaction), and only then releases the tasks, which write the
// checkpoint's state to Pebble (Task.commitState). A checkpoint that fails
// aborts the transaction and restarts every task from what Kafka has
// (abortAndRestart).
package engine
