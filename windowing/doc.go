// Package windowing owns event time and windows: timestamps, watermark
// strategies, the per-partition watermark generators, the task's watermark
// combiner, the control records that carry watermarks across repartition
// topics, and the window assigners (Tumbling, Sliding, Sessions, Global)
// and triggers (OnCount, OnProcessingTime, EveryEventTime,
// EveryProcessingTime) that the window operators of package operators
// (WindowAggregate, WindowProcess, WindowJoin) take.
//
// Everything in it is a deterministic function of its inputs. It never
// starts a goroutine, never reads the wall clock and does no I/O: a call
// that depends on processing time takes it as an argument (now), so the
// engine passes its clock's reading and tests pass a fixed one. None of its
// types is safe for concurrent use; the goroutine that owns a task owns its
// generators and combiner.
//
// Event time is Millis, milliseconds since the Unix epoch (the unit of
// Kafka record timestamps); processing time is a time.Time. The two time
// domains have different types so that one cannot be passed for the other.
//
// The semantics follow Apache Flink's: the watermark of a partition trails
// the largest timestamp seen by the maximum out-of-orderness plus one
// millisecond (BoundedOutOfOrdernessWatermarks), a record whose timestamp is
// at or before the watermark is late, and a task's watermark is the minimum
// over its active inputs and never goes backwards (CombinedWatermarkStatus).
package windowing
