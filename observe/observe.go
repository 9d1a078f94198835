// Package observe declares the hooks through which the engine reports what
// it does. The engine calls only these interfaces; exporters (Prometheus in
// package metrics, test recorders) implement them. It must never import an
// exporter.
//
// Hooks are called from task goroutines and the runtime's own goroutines,
// often concurrently, so implementations must be safe for concurrent use
// and cheap: the engine batches per-record counts before calling them.
package observe

import "time"

// Observer receives the engine's measurements.
type Observer interface {
	// RecordsIn counts records an operator received (for a source: read
	// from Kafka).
	RecordsIn(operator string, n int)
	// RecordsOut counts records an operator emitted (for a sink: handed to
	// the producer).
	RecordsOut(operator string, n int)
	// RecordsFailed counts records an operator could not process.
	RecordsFailed(operator string, n int)
	// RecordsDeadLettered counts failed records an operator's error policy
	// wrote to the dead-letter topic.
	RecordsDeadLettered(operator string, n int)
	// RecordsSkipped counts failed records an operator's error policy
	// dropped.
	RecordsSkipped(operator string, n int)
	// Retries counts calls of an operator's user code retried after an
	// error marked retryable.
	Retries(operator string, n int)
	// AsyncCall reports one call of an operator's work in flight
	// (operators.AsyncMap): its outcome (ok, error, timeout, or open: its
	// circuit breaker was open and it was not made) and how long it took.
	// It is called from the call's goroutine.
	AsyncCall(operator, outcome string, took time.Duration)
	// AsyncFallback counts results an operator's fallback produced
	// instead of its call.
	AsyncFallback(operator string)
	// AsyncInFlight moves the number of an operator's calls in flight by
	// delta.
	AsyncInFlight(operator string, delta int)
	// CircuitBreaker reports the replica's circuit breaker: open (the
	// replica halted, and why) or closed.
	CircuitBreaker(open bool, why string)
	// SinkRecordsPastRetention counts outputs stamped older than their
	// topic's retention.ms: the broker may delete them soon after they
	// are written.
	SinkRecordsPastRetention(topic string, n int)
	// RecordsLate counts records a window or join operator received after
	// the watermark had closed everything they belong to.
	RecordsLate(operator string, n int)
	// ConsumerLag reports how many records of a partition are in Kafka but
	// not yet processed, measured at the last fetch.
	ConsumerLag(topic string, partition int32, lag int64)
	// PartitionRevoked says the replica no longer owns the partition; its
	// per-partition series should go.
	PartitionRevoked(topic string, partition int32)
	// Checkpoint reports one checkpoint: how long it took from barrier to
	// committed offsets, and its error if it failed.
	Checkpoint(took time.Duration, err error)
	// CheckpointSize reports what a committed checkpoint wrote to the
	// state changelogs: records, and bytes of keys and values.
	CheckpointSize(records, bytes int)
	// Transaction reports the end of one of the replica's Kafka
	// transactions: committed, or aborted (and the work in it redone).
	Transaction(committed bool)
	// TransactionOpen reports when the replica's current transaction
	// began, or the zero time when none is open.
	TransactionOpen(since time.Time)
	// HangingRecordsAborted reports partitions where records of an ended
	// transaction of the replica were still open (their marker never
	// came) and the replica aborted them.
	HangingRecordsAborted(partitions int)
	// RestoreProgress reports a task restoring its state from the
	// changelog: records applied so far, and at most how many remain.
	RestoreProgress(task string, restored, remaining int64)
	// RestoreDone reports a task's finished restore.
	RestoreDone(task string, records int64, took time.Duration)
	// Watermark reports a task's event-time watermark when it moves, and
	// whether every input of the task is idle.
	Watermark(task string, watermark time.Time, allIdle bool)
	// TaskStopped says the replica no longer runs the task; its per-task
	// series should go.
	TaskStopped(task string)
	// TasksAssigned reports how many tasks the replica runs now.
	TasksAssigned(n int)
	// Ready reports the readiness the replica serves on /readyz.
	Ready(ready bool)
	// ArchiveFile reports a file an archive sink made visible (err nil),
	// or failed to (err set; it is tried again): its records and bytes,
	// and how long the upload took.
	ArchiveFile(op string, records, bytes int, took time.Duration, err error)
	// RateLimit reports the cap on records read per second from topic
	// ("*" for the replica's cap over all its inputs).
	RateLimit(topic string, perSecond float64)
	// RateLimited counts time the replica paused fetching a topic ("*":
	// all of them) to keep under its cap.
	RateLimited(topic string, paused time.Duration)
	// StateSpilled reports that the state a task keeps in memory (window
	// accumulators, session lists, join lists) outgrew the task's share of
	// the memory budget and went to the store: bytes is what memory held.
	// The state stays correct, read back from the store as needed; a
	// task that spills often wants a larger budget.
	StateSpilled(task string, bytes int64)
}

// Nop is an Observer that discards everything.
type Nop struct{}

var _ Observer = Nop{}

func (Nop) RecordsIn(string, int)                              {}
func (Nop) RecordsOut(string, int)                             {}
func (Nop) RecordsFailed(string, int)                          {}
func (Nop) RecordsLate(string, int)                            {}
func (Nop) RecordsDeadLettered(string, int)                    {}
func (Nop) RecordsSkipped(string, int)                         {}
func (Nop) Retries(string, int)                                {}
func (Nop) AsyncCall(string, string, time.Duration)            {}
func (Nop) AsyncFallback(string)                               {}
func (Nop) AsyncInFlight(string, int)                          {}
func (Nop) CircuitBreaker(bool, string)                        {}
func (Nop) SinkRecordsPastRetention(string, int)               {}
func (Nop) ConsumerLag(string, int32, int64)                   {}
func (Nop) PartitionRevoked(string, int32)                     {}
func (Nop) Checkpoint(time.Duration, error)                    {}
func (Nop) Watermark(string, time.Time, bool)                  {}
func (Nop) CheckpointSize(int, int)                            {}
func (Nop) Transaction(bool)                                   {}
func (Nop) TransactionOpen(time.Time)                          {}
func (Nop) HangingRecordsAborted(int)                          {}
func (Nop) RestoreProgress(string, int64, int64)               {}
func (Nop) RestoreDone(string, int64, time.Duration)           {}
func (Nop) TaskStopped(string)                                 {}
func (Nop) TasksAssigned(int)                                  {}
func (Nop) RateLimit(string, float64)                          {}
func (Nop) RateLimited(string, time.Duration)                  {}
func (Nop) Ready(bool)                                         {}
func (Nop) StateSpilled(string, int64)                         {}
func (Nop) ArchiveFile(string, int, int, time.Duration, error) {}
