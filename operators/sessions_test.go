package operators_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/weirtest"
	"github.com/weirstream/weir/windowing"
)

// Sessions whose gap each record sets (Flink's withDynamicGap): a record
// opens [ts, ts+gap), and sessions that intersect merge. A gap that is not
// positive fails the record under the operator's error policy.
func TestDynamicGapSessions(t *testing.T) {
	job := engine.NewJob("dynamic")
	src := connectors.KafkaSource(job, "visits", codec.String(), connectors.WithWatermarks(windowing.RecordTimestamps[string](0)))
	gap := func(v string) time.Duration { d, _ := time.ParseDuration(v); return d }
	sessions := operators.WindowAggregate(operators.KeyByRecordKey(src, codec.String()), "sessions",
		windowing.DynamicSessions(gap), operators.Count[string]{}, codec.JSON[int64]())
	connectors.KafkaSink(sessions, "sessions", codec.JSON[operators.Windowed[string, int64]]())
	h := weirtest.New(t, job)
	noon := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	send := func(gap string, at time.Duration) error {
		return weirtest.SendValue(h, "visits", codec.String(), "a", gap, noon.Add(at))
	}
	for _, v := range []struct {
		gap string
		at  time.Duration
	}{{"5s", 0}, {"1s", 4 * time.Second}, {"10s", 10 * time.Second}, {"1s", time.Minute}} {
		if err := send(v.gap, v.at); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, r := range weirtest.ReadOutputs(h, "sessions", codec.JSON[operators.Windowed[string, int64]]()) {
		got = append(got, fmt.Sprintf("[%s,%s)=%d", r.Value.Start.Format("04:05"), r.Value.End.Format("04:05"), r.Value.Value))
	}
	if fmt.Sprint(got) != "[[00:00,00:05)=2 [00:10,00:20)=1]" {
		t.Errorf("sessions %v, want [00:00,00:05)=2 and [00:10,00:20)=1", got)
	}
	if err := send("0s", 2*time.Minute); err == nil || !strings.Contains(err.Error(), "dynamic session gap 0ms: must be positive") {
		t.Errorf("a zero gap: %v, want the record to fail naming the gap", err)
	}
}
