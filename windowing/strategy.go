package windowing

import (
	"errors"
	"fmt"
	"time"
)

// ErrInvalidStrategy is returned by WatermarkStrategy.Validate for a
// negative duration. It is a programming error in the job: the job should
// refuse to start.
var ErrInvalidStrategy = errors.New("windowing: invalid watermark strategy")

// A WatermarkStrategy tells a source how to read event time and how far
// behind the max seen time the watermark trails.
//
// The zero value reads the Kafka record timestamp, allows no
// out-of-orderness and never marks a partition idle. A WatermarkStrategy is
// a value: the With methods return a modified copy.
type WatermarkStrategy[T any] struct {
	timestamp         func(T) time.Time // nil: the Kafka record timestamp
	maxOutOfOrderness time.Duration     // default 0
	idleTimeout       time.Duration     // default 0: never idle
	idleSet           bool              // WithIdleness was called
}

// BoundedOutOfOrderness reads event time with timestamp and lets records
// arrive up to maxOutOfOrderness behind the largest timestamp seen so far
// before they are late: the watermark is that largest timestamp minus
// maxOutOfOrderness minus 1ms (Flink's BoundedOutOfOrdernessWatermarks).
// maxOutOfOrderness is truncated to whole milliseconds and must not be
// negative. timestamp is called once per record, on the task's goroutine;
// a nil timestamp reads the Kafka record timestamp.
func BoundedOutOfOrderness[T any](maxOutOfOrderness time.Duration, timestamp func(T) time.Time) WatermarkStrategy[T] {
	return WatermarkStrategy[T]{timestamp: timestamp, maxOutOfOrderness: maxOutOfOrderness}
}

// ForMonotonousTimestamps is BoundedOutOfOrderness with no out-of-orderness,
// for partitions whose timestamps never decrease: the watermark is the
// largest timestamp seen minus 1ms.
func ForMonotonousTimestamps[T any](timestamp func(T) time.Time) WatermarkStrategy[T] {
	return BoundedOutOfOrderness(0, timestamp)
}

// RecordTimestamps is BoundedOutOfOrderness over the Kafka record
// timestamp (CreateTime or LogAppendTime, whichever the topic keeps). The
// timestamp is used as it is; a record without one (-1, from a pre-0.10
// producer) has event time 1969-12-31T23:59:59.999Z and is late as soon as
// the watermark has moved.
func RecordTimestamps[T any](maxOutOfOrderness time.Duration) WatermarkStrategy[T] {
	return BoundedOutOfOrderness[T](maxOutOfOrderness, nil)
}

// WithIdleness marks a partition idle when no record has arrived on it for
// timeout of processing time, so that it stops holding back the task's
// watermark; its next record makes it active again. Without it a
// partition is never idle. The timeout must be positive, as Flink's
// withIdleness requires: Validate reports zero or a negative one.
func (s WatermarkStrategy[T]) WithIdleness(timeout time.Duration) WatermarkStrategy[T] {
	s.idleTimeout, s.idleSet = timeout, true
	return s
}

// Validate reports a negative max out-of-orderness, or an idle timeout
// that is not positive, as an ErrInvalidStrategy. Call it where the job is
// built.
func (s WatermarkStrategy[T]) Validate() error {
	if s.maxOutOfOrderness < 0 {
		return fmt.Errorf("%w: max out-of-orderness %v is negative", ErrInvalidStrategy, s.maxOutOfOrderness)
	}
	if s.idleSet && s.idleTimeout < time.Millisecond {
		return fmt.Errorf("%w: idle timeout %v must be at least 1ms (leave WithIdleness out for inputs that are never idle)", ErrInvalidStrategy, s.idleTimeout)
	}
	return nil
}

// Timestamp returns the event time of v: the extractor's answer, or
// recordTime (the Kafka record timestamp) when the strategy has none. Pass
// it through MillisOf for the generator and for lateness.
func (s WatermarkStrategy[T]) Timestamp(v T, recordTime time.Time) time.Time {
	if s.timestamp == nil {
		return recordTime
	}
	return s.timestamp(v)
}

// NewGenerator returns a fresh generator for one input partition, at
// MinWatermark. A strategy that fails Validate gets a generator that
// treats the negative durations as 0.
func (s WatermarkStrategy[T]) NewGenerator() *Generator {
	bound := Millis(max(s.maxOutOfOrderness, 0)/time.Millisecond) + 1
	return &Generator{
		bound:       bound,
		idleTimeout: max(s.idleTimeout, 0),
		maxSeen:     MinWatermark,
		wm:          MinWatermark,
	}
}
