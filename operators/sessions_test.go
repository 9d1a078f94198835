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
	"github.com/weirstream/weir/state"
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

// mergeCounter counts records and the Merge calls that built its result.
type mergeCounter struct{}

type merged struct{ N, Merges int }

func (mergeCounter) Zero() merged                  { return merged{} }
func (mergeCounter) Add(a merged, _ string) merged { a.N++; return a }
func (mergeCounter) Merge(a, b merged) merged {
	return merged{N: a.N + b.N, Merges: a.Merges + b.Merges + 1}
}
func (mergeCounter) Result(a merged) merged { return a }

// When sessions merge, the merged session's accumulator is built as
// Flink's mergeNamespaces builds it: the first merged session's
// accumulator is taken as it is, and each further one is merged into it,
// so n sessions bridged by a record cost n-1 Merge calls, and a session
// that only grows costs none (not a Merge with the zero accumulator).
func TestSessionMergeCallsMergeAsFlinkDoes(t *testing.T) {
	job := engine.NewJob("merges")
	src := connectors.KafkaSource(job, "visits", codec.String(), connectors.WithWatermarks(windowing.RecordTimestamps[string](30*time.Second)))
	sessions := operators.WindowAggregate(operators.KeyByRecordKey(src, codec.String()), "sessions",
		windowing.Sessions(10*time.Second), state.AggregateFunction[string, merged, merged](mergeCounter{}), codec.JSON[merged]())
	connectors.KafkaSink(sessions, "sessions", codec.JSON[operators.Windowed[string, merged]]())
	h := weirtest.New(t, job)
	noon := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	// Key a: a session growing record by record. Key b: two sessions,
	// then a record bridging them, within the watermark's 30 s bound. A
	// record of c at two minutes closes them all.
	for _, v := range []struct {
		key string
		at  time.Duration
	}{
		{"a", 0}, {"a", 5 * time.Second}, {"a", 12 * time.Second},
		{"b", 0}, {"b", 15 * time.Second}, {"b", 8 * time.Second},
		{"c", 2 * time.Minute},
	} {
		if err := weirtest.SendValue(h, "visits", codec.String(), v.key, "x", noon.Add(v.at)); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]string{}
	for _, r := range weirtest.ReadOutputs(h, "sessions", codec.JSON[operators.Windowed[string, merged]]()) {
		got[r.Value.Key] = fmt.Sprintf("[%s,%s) %d records, %d merges", r.Value.Start.Format("04:05"), r.Value.End.Format("04:05"), r.Value.Value.N, r.Value.Value.Merges)
	}
	want := map[string]string{
		"a": "[00:00,00:22) 3 records, 0 merges",
		"b": "[00:00,00:25) 3 records, 1 merges",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("session of %s: %q, want %q", k, got[k], w)
		}
	}
}
