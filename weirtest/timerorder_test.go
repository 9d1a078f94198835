package weirtest_test

import (
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/state"
	"github.com/weirstream/weir/weirtest"
	"github.com/weirstream/weir/windowing"
)

// echoAt re-emits each record at a timer set for the record's own time.
type echoAt struct{}

func (echoAt) Open(*state.Registry) error { return nil }
func (echoAt) Process(c operators.Context[string], v int64, _ operators.Collector[int64]) error {
	c.Timers().RegisterEventTimeTimer(c.Timestamp())
	return nil
}
func (echoAt) OnTimer(c operators.Context[string], at time.Time, _ engine.TimeDomain, out operators.Collector[int64]) error {
	return out.Collect(at.UnixMilli())
}

// TestDownstreamTimerFiresAtTheSameWatermark: a window fires at a
// watermark and the operator after it, in the same task, sets a timer for
// the window's time, which that watermark has passed. It fires at that
// watermark, as in Flink, where the watermark reaches the downstream
// operator after the window's outputs; not at some later watermark, which
// after the last input never comes.
func TestDownstreamTimerFiresAtTheSameWatermark(t *testing.T) {
	job := engine.NewJob("timer-order")
	in := connectors.KafkaSource(job, "in", codec.JSON[int64](), connectors.WithWatermarks(windowing.RecordTimestamps[int64](0)))
	counts := operators.WindowAggregate(operators.KeyByRecordKey(in, codec.String()), "count",
		windowing.Tumbling(10*time.Second), operators.Count[int64]{}, codec.JSON[int64]())
	ends := operators.Map(counts, func(w operators.Windowed[string, int64]) (int64, error) { return w.Value, nil })
	echoed := operators.Process(operators.KeyByRecordKey(ends, codec.String()), "echo", echoAt{})
	connectors.KafkaSink(echoed, "out", codec.JSON[int64]())

	h := weirtest.New(t, job)
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := weirtest.SendValue(h, "in", codec.JSON[int64](), "k", 1, base.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := h.AdvanceWatermark(base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	got := weirtest.ReadOutputs(h, "out", codec.JSON[int64]())
	if len(got) != 1 || got[0].Value != base.Add(10*time.Second-time.Millisecond).UnixMilli() {
		t.Fatalf("got %v, want the window's timer fired once, at its end", got)
	}
}

// walkScripts runs the datadriven scripts under dir twice: with the
// tasks' timers in memory, and with a share of memory for timers so small
// that each operator keeps about one in memory and reads the rest back
// from the state store as they come due. The scripts' expectations are
// the same for both: where timers are kept changes nothing a job does.
func walkScripts(t *testing.T, dir string, run func(t *testing.T, path string, opts []weirtest.Opt)) {
	for _, v := range []struct {
		name string
		opts []weirtest.Opt
	}{
		{"timers-in-memory", nil},
		{"timers-in-store", []weirtest.Opt{weirtest.TimerMemory(1)}},
	} {
		t.Run(v.name, func(t *testing.T) {
			datadriven.Walk(t, dir, func(t *testing.T, path string) { run(t, path, v.opts) })
		})
	}
}
