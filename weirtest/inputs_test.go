package weirtest_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/weirtest"
	"github.com/weirstream/weir/windowing"
)

// Each input's watermark moves on its own, as in Flink's two-input
// harness (processWatermark1/2): a window over two inputs fires only when
// both passed its end, or when the one behind is marked idle; a crash
// replays the watermark moves with the records.
func TestInputWatermarksAndIdleness(t *testing.T) {
	job := engine.NewJob("inputs")
	wm := windowing.RecordTimestamps[string](time.Hour) // records alone never move it here
	left := connectors.KafkaSource(job, "left", codec.String(), connectors.WithWatermarks(wm))
	right := connectors.KafkaSource(job, "right", codec.String(), connectors.WithWatermarks(wm))
	counts := operators.WindowAggregate(operators.KeyByRecordKey(operators.Union(left, right), codec.String()), "per-minute",
		windowing.Tumbling(time.Minute), operators.Count[string]{}, codec.JSON[int64]())
	connectors.KafkaSink(counts, "counts", codec.JSON[operators.Windowed[string, int64]]())
	h := weirtest.New(t, job)
	noon := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	read := func() string {
		var got []string
		for _, r := range weirtest.ReadOutputs(h, "counts", codec.JSON[operators.Windowed[string, int64]]()) {
			got = append(got, fmt.Sprintf("%s=%d@%s", r.Value.Key, r.Value.Value, r.Value.Start.Format("15:04")))
		}
		return fmt.Sprint(got)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(weirtest.SendValue(h, "left", codec.String(), "a", "x", noon.Add(10*time.Second)))
	must(weirtest.SendValue(h, "right", codec.String(), "a", "y", noon.Add(20*time.Second)))
	must(h.Checkpoint())
	must(h.AdvanceInputWatermark("left", noon.Add(2*time.Minute)))
	if got := read(); got != "[]" {
		t.Fatalf("fired %s with the right input still at min", got)
	}
	must(h.AdvanceInputWatermark("right", noon.Add(90*time.Second)))
	if got := read(); got != "[a=2@12:00]" {
		t.Fatalf("fired %s, want a=2@12:00 once both inputs passed 12:01", got)
	}
	// The right input falls silent: marked idle, it holds nothing back.
	must(weirtest.SendValue(h, "left", codec.String(), "a", "x", noon.Add(150*time.Second)))
	must(h.AdvanceInputWatermark("left", noon.Add(4*time.Minute)))
	if got := read(); got != "[]" {
		t.Fatalf("fired %s with the right input behind", got)
	}
	must(h.MarkInputIdle("right"))
	if got := read(); got != "[a=1@12:02]" {
		t.Fatalf("fired %s, want a=1@12:02 once the right input is idle", got)
	}
	// A crash goes back to the checkpoint and replays records and moves.
	must(h.Crash())
	if got := read(); got != "[a=2@12:00 a=1@12:02]" {
		t.Fatalf("the replay fired %s, want both windows again", got)
	}
	if err := h.AdvanceInputWatermark("nowhere", noon); err == nil {
		t.Error("a watermark for a topic the job does not read was accepted")
	}
}
