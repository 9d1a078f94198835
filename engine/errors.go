package engine

import (
	"errors"
	"fmt"
	"time"
)

// ErrConfig is returned by Run when the configuration is invalid. The job
// does not start; nothing is read or committed.
var ErrConfig = errors.New("weir: invalid configuration")

// ErrTopology is returned by Run when the job's topology cannot run as
// built: no source, a topic read twice, a missing topic, or source topics
// that are not co-partitioned. The job does not start.
var ErrTopology = errors.New("weir: invalid topology")

// RecordError says which input record a task could not process and why:
// it could not be decoded, or an operator returned an error for it. Under
// the fail policy the task stops at that record: its offset is the
// partition's committed offset, so nothing at or after it is committed and
// a restart reads it again.
type RecordError struct {
	Topic     string
	Partition int32
	Offset    int64
	// Operator names where it failed ("source:<topic>" for a record that
	// could not be decoded).
	Operator string
	Err      error
}

func (e *RecordError) Error() string {
	return fmt.Sprintf("record %s/%d@%d failed in %s: %v", e.Topic, e.Partition, e.Offset, e.Operator, e.Err)
}

func (e *RecordError) Unwrap() error { return e.Err }

// OperatorError is what an operator returns to say which operator failed;
// the task turns it into a RecordError naming the input record.
type OperatorError struct {
	Operator string
	Err      error
}

func (e *OperatorError) Error() string { return e.Operator + ": " + e.Err.Error() }
func (e *OperatorError) Unwrap() error { return e.Err }

// TimerError says which timer a task could not fire. Like a RecordError it
// stops the task; the timer stays registered, so a restart fires it again.
type TimerError struct {
	Timer  int64 // Unix milliseconds
	Domain TimeDomain
	Key    []byte
	Err    error
}

func (e *TimerError) Error() string {
	return fmt.Sprintf("%s timer at %s of key %q failed: %v", e.Domain, time.UnixMilli(e.Timer).UTC().Format(time.RFC3339Nano), e.Key, e.Err)
}

func (e *TimerError) Unwrap() error { return e.Err }
