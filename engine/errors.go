package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
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

// ProduceError says which record Kafka did not take: an output, a
// repartitioned record or a changelog record. The checkpoint holding it
// cannot commit. Exactly once, the checkpoint's transaction aborts and its
// tasks redo it from the last one; an error Kafka calls final (a record
// too large, a record a compacted topic refuses, a missing ACL) fails the
// same way every time, so after a few attempts the job stops with it. At
// least once it stops the job at once: what did reach Kafka cannot be
// taken back, and the offsets behind the record are never committed.
type ProduceError struct {
	Topic     string
	Partition int32
	Key       []byte
	Bytes     int // key and value
	Err       error
}

func (e *ProduceError) Error() string {
	key := e.Key
	if len(key) > 64 {
		key = key[:64]
	}
	return fmt.Sprintf("producing a record of %d bytes (key %q) to %s/%d: %v", e.Bytes, key, e.Topic, e.Partition, e.Err)
}

func (e *ProduceError) Unwrap() error { return e.Err }

// newProduceError describes r, which failed with err.
func newProduceError(r *kgo.Record, err error) error {
	return &ProduceError{Topic: r.Topic, Partition: r.Partition, Key: r.Key, Bytes: len(r.Key) + len(r.Value), Err: err}
}

// transient reports whether err is one that asking again may cure: an
// error Kafka calls retriable, a network error, a request that timed out.
func transient(err error) bool {
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Retriable
	}
	var op *net.OpError
	return errors.As(err, &op) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded) || kgo.IsRetryableBrokerErr(err)
}

// isFinal reports whether err is one Kafka says retrying will not cure: a
// non-retriable Kafka error other than those that mean this replica lost
// its place (fenced, its group membership or its producer id gone), which
// a restart from the last checkpoint does cure.
func isFinal(err error) bool {
	var ke *kerr.Error
	if !errors.As(err, &ke) || ke.Retriable {
		return false
	}
	switch ke {
	case kerr.ProducerFenced, kerr.InvalidProducerEpoch, kerr.InvalidProducerIDMapping, kerr.UnknownProducerID,
		kerr.OutOfOrderSequenceNumber, kerr.InvalidTxnState, kerr.TransactionAbortable, kerr.FencedInstanceID,
		kerr.UnknownMemberID, kerr.IllegalGeneration, kerr.RebalanceInProgress, kerr.FencedMemberEpoch,
		kerr.StaleMemberEpoch, kerr.UnknownTopicOrPartition, kerr.NotCoordinator, kerr.CoordinatorNotAvailable,
		kerr.ConcurrentTransactions:
		return false
	}
	return true
}
