package windowing

import (
	"errors"
	"testing"
	"time"
)

func TestStrategyTimestamp(t *testing.T) {
	type txn struct{ at time.Time }
	at := time.Date(2024, 1, 1, 10, 0, 5, 0, time.UTC)
	rec := time.Date(2024, 1, 1, 10, 0, 9, 0, time.UTC)
	v := txn{at: at}
	for _, tc := range []struct {
		name string
		s    WatermarkStrategy[txn]
		want time.Time
	}{
		{"extractor", BoundedOutOfOrderness(time.Second, func(t txn) time.Time { return t.at }), at},
		{"monotonous", ForMonotonousTimestamps(func(t txn) time.Time { return t.at }), at},
		{"record", RecordTimestamps[txn](time.Second), rec},
		{"nil extractor", BoundedOutOfOrderness[txn](time.Second, nil), rec},
		{"zero value", WatermarkStrategy[txn]{}, rec},
	} {
		if got := tc.s.Timestamp(v, rec); !got.Equal(tc.want) {
			t.Errorf("%s: Timestamp = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestStrategyValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    WatermarkStrategy[int]
		ok   bool
	}{
		{"zero value", WatermarkStrategy[int]{}, true},
		{"bounded", RecordTimestamps[int](time.Second).WithIdleness(time.Minute), true},
		{"negative out-of-orderness", RecordTimestamps[int](-time.Second), false},
		{"negative idleness", RecordTimestamps[int](0).WithIdleness(-time.Second), false},
	} {
		err := tc.s.Validate()
		if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrInvalidStrategy)) {
			t.Errorf("%s: Validate = %v", tc.name, err)
		}
	}
}

// The watermark is computed in whole milliseconds: sub-millisecond
// out-of-orderness is truncated, and so are timestamps.
func TestGeneratorMillis(t *testing.T) {
	now := time.Unix(0, 0)
	g := RecordTimestamps[int](1500 * time.Microsecond).NewGenerator()
	g.OnEvent(MillisOf(time.UnixMilli(10_000).Add(999*time.Microsecond)), now)
	if got, want := g.Current(), Millis(10_000-1-1); got != want {
		t.Errorf("Current = %d, want %d", got, want)
	}
	if got := MillisOf(time.UnixMilli(-1).Add(500 * time.Microsecond)); got != -1 {
		t.Errorf("MillisOf before 1970 = %d, want -1 (truncated towards the past)", got)
	}
}

// Timestamps near the bottom of the range leave the watermark at
// MinWatermark instead of wrapping around to the top.
func TestGeneratorSaturates(t *testing.T) {
	now := time.Unix(0, 0)
	g := RecordTimestamps[int](5 * time.Second).NewGenerator()
	for _, ts := range []Millis{MinWatermark, MinWatermark + 1, MinWatermark + 5000} {
		g.OnEvent(ts, now)
		if got := g.Current(); got != MinWatermark {
			t.Fatalf("after ts=%d: Current = %d, want MinWatermark", int64(ts), got)
		}
	}
	g.OnEvent(MinWatermark+5001, now)
	if got := g.Current(); got != MinWatermark {
		t.Fatalf("after ts=MinWatermark+5001: Current = %d, want MinWatermark", got)
	}
	g.OnEvent(MinWatermark+5002, now)
	if got, want := g.Current(), MinWatermark+1; got != want {
		t.Fatalf("after ts=MinWatermark+5002: Current = %d, want %d", got, want)
	}
}

func TestMillisString(t *testing.T) {
	for m, want := range map[Millis]string{
		MinWatermark:  "min",
		0:             "1970-01-01T00:00:00.000Z",
		1704103205001: "2024-01-01T10:00:05.001Z",
		-1:            "1969-12-31T23:59:59.999Z",
	} {
		if got := m.String(); got != want {
			t.Errorf("Millis(%d).String() = %q, want %q", int64(m), got, want)
		}
	}
}
