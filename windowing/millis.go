package windowing

import (
	"math"
	"time"
)

// Millis is an instant in event time: milliseconds since the Unix epoch.
// Timestamps and watermarks are both Millis, as in Flink, so they compare
// directly and a Kafka record timestamp needs no conversion.
type Millis int64

// MinWatermark is the watermark before any event has been seen. No
// timestamp is late against it (see IsLate).
const MinWatermark Millis = math.MinInt64

// MillisOf returns t in event time, truncated to the millisecond (towards
// the past, also before 1970). t must lie within about 292 million years of
// 1970.
func MillisOf(t time.Time) Millis { return Millis(t.UnixMilli()) }

// Time returns m as a time.Time in UTC.
func (m Millis) Time() time.Time { return time.UnixMilli(int64(m)).UTC() }

// String formats m as an RFC 3339 UTC time with milliseconds, or "min" for
// MinWatermark.
func (m Millis) String() string {
	if m == MinWatermark {
		return "min"
	}
	return m.Time().Format("2006-01-02T15:04:05.000Z07:00")
}

// IsLate reports whether a record with timestamp ts is late against
// watermark wm: ts <= wm, as in Flink, since a watermark wm says that no
// more records at or before wm will come. Nothing is late against
// MinWatermark, not even a timestamp equal to it.
func IsLate(ts, wm Millis) bool { return wm != MinWatermark && ts <= wm }
