package weirtest_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/internal/local"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/weirtest"
	"github.com/weirstream/weir/windowing"
)

type event struct {
	Key string    `json:"key"`
	At  time.Time `json:"at"`
}

var lateTag = engine.NewOutputTag[event]("late")

// countRecords is a process window function: it sees every record of the
// window, checks they are the window's and in arrival order, and counts.
type countRecords struct{}

func (countRecords) Process(key string, w windowing.Window, recs []event, out operators.Collector[int64]) error {
	for i, r := range recs {
		ts := windowing.MillisOf(r.At)
		if r.Key != key || ts < w.Start || ts >= w.End {
			return fmt.Errorf("record %d (%s at %s) is not in window %s of key %s", i, r.Key, r.At, w, key)
		}
	}
	return out.Collect(int64(len(recs)))
}

// TestWindowAggregateScripts runs testdata/windows/aggregate. Commands:
//
//	new tumbling=D | sliding=(D, D) | sessions=D [lateness=D] [process]
//	                       a count per key and window, watermark = highest time seen - 1ms;
//	                       with process, counted by a process window function
//	                       over the window's records instead of an aggregate
//	send key=K at=T        one event
//	watermark to=T         move the watermark as if every input said so
//	late                   the late side output since the last look
//	late-topic             the default late-data topic (new ... late-topic: no side output)
//	advance D              move processing time
//
// Assigners: new tumbling=D | sliding=D,D | sessions=D | global |
// tumbling-processing=D | sliding-processing=D,D | sessions-processing=D
//
// Triggers: new ... [count=N | every-event=D | every-processing=D | on-processing] [purge]
//
// send and watermark print the windows that fired.
func TestWindowAggregateScripts(t *testing.T) {
	walkScripts(t, "../testdata/windows/aggregate", func(t *testing.T, path string, hopts []weirtest.Opt) {
		var h *weirtest.Harness
		var results *weirtest.Captured[operators.Windowed[string, int64]]
		var late *weirtest.Captured[event]
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			switch d.Cmd {
			case "new":
				dur := func(s string) time.Duration {
					v, err := time.ParseDuration(s)
					if err != nil {
						d.Fatalf(t, "%v", err)
					}
					return v
				}
				var a windowing.Assigner
				var opts []operators.WindowOpt
				process := false
				sideOutput := true
				var trig windowing.Trigger
				purge := false
				for _, arg := range d.CmdArgs {
					switch arg.Key {
					case "tumbling":
						a = windowing.Tumbling(dur(arg.Vals[0]))
					case "sliding":
						a = windowing.Sliding(dur(arg.Vals[0]), dur(arg.Vals[1]))
					case "sessions":
						a = windowing.Sessions(dur(arg.Vals[0]))
					case "global":
						a = windowing.Global()
					case "tumbling-processing":
						a = windowing.TumblingProcessingTime(dur(arg.Vals[0]))
					case "sliding-processing":
						a = windowing.SlidingProcessingTime(dur(arg.Vals[0]), dur(arg.Vals[1]))
					case "sessions-processing":
						a = windowing.ProcessingTimeSessions(dur(arg.Vals[0]))
					case "count":
						n, err := strconv.Atoi(arg.Vals[0])
						if err != nil {
							d.Fatalf(t, "%v", err)
						}
						trig = windowing.OnCount(int64(n))
					case "every-event":
						trig = windowing.EveryEventTime(dur(arg.Vals[0]))
					case "every-processing":
						trig = windowing.EveryProcessingTime(dur(arg.Vals[0]))
					case "on-processing":
						trig = windowing.OnProcessingTime()
					case "purge":
						purge = true
					case "process":
						process = true
					case "late-topic":
						sideOutput = false
					case "lateness":
						opts = append(opts, operators.AllowedLateness(dur(arg.Vals[0])))
					}
				}
				if sideOutput {
					opts = append(opts, operators.LateOutput(lateTag))
				}
				if purge {
					trig = trig.Purging()
				}
				opts = append(opts, operators.WithTrigger(trig))
				job := engine.NewJob("windows")
				src := connectors.KafkaSource(job, "events", codec.JSON[event](),
					connectors.WithWatermarks(windowing.ForMonotonousTimestamps(func(e event) time.Time { return e.At })))
				keyed := operators.KeyByRecordKey(src, codec.String())
				var counts engine.Stream[operators.Windowed[string, int64]]
				if process {
					counts = operators.WindowProcess(keyed, "counts", a,
						countRecords{}, codec.JSON[event](), opts...)
				} else {
					counts = operators.WindowAggregate(keyed, "counts", a,
						operators.Count[event]{}, codec.JSON[int64](), opts...)
				}
				results = weirtest.Capture(counts)
				late = weirtest.Capture(engine.SideOutput(counts, lateTag))
				h = weirtest.New(t, job, hopts...)
				return ""
			case "send":
				var key, at string
				d.ScanArgs(t, "key", &key)
				d.ScanArgs(t, "at", &at)
				ts := parseClock(t, at)
				return fired(results, weirtest.SendValue(h, "events", codec.JSON[event](), key, event{Key: key, At: ts}, ts))
			case "watermark":
				var at string
				d.ScanArgs(t, "to", &at)
				return fired(results, h.AdvanceWatermark(parseClock(t, at)))
			case "end-input":
				return fired(results, h.EndInput())
			case "advance":
				dd, err := time.ParseDuration(d.CmdArgs[0].Key)
				if err != nil {
					d.Fatalf(t, "%v", err)
				}
				return fired(results, h.AdvanceTime(dd))
			case "late-topic":
				var b strings.Builder
				for _, r := range h.ReadOutput("windows-counts-late") {
					fmt.Fprintf(&b, "%s %s\n", r.Key, r.Value)
					for _, hd := range r.Headers {
						fmt.Fprintf(&b, "  %s: %s\n", hd.Key, hd.Value)
					}
				}
				return b.String()
			case "late":
				var b strings.Builder
				for _, r := range late.Take() {
					fmt.Fprintf(&b, "late %s at %s\n", r.Value.Key, clockOf(r.Value.At))
				}
				return b.String()
			}
			d.Fatalf(t, "unknown command %q", d.Cmd)
			return ""
		})
	})
}

func fired(c *weirtest.Captured[operators.Windowed[string, int64]], err error) string {
	var b strings.Builder
	for _, r := range c.Take() {
		if r.Value.Start.Before(day) { // the global window
			at := r.Timestamp.UTC().Format("15:04:05.000")
			if r.Timestamp.UnixMilli() == math.MaxInt64 {
				at = "max" // Flink's GlobalWindow.maxTimestamp
			}
			fmt.Fprintf(&b, "%s global count=%d (at %s)\n", r.Value.Key, r.Value.Value, at)
			continue
		}
		fmt.Fprintf(&b, "%s [%s, %s) count=%d (at %s)\n", r.Value.Key, clockOf(r.Value.Start), clockOf(r.Value.End), r.Value.Value, r.Timestamp.UTC().Format("15:04:05.000"))
	}
	if err != nil {
		fmt.Fprintf(&b, "error: %v\n", err)
	}
	return b.String()
}

// A global window with the default (event-time) trigger would never fire:
// that is a topology error at start, not a silent job.
func TestGlobalWindowNeedsATrigger(t *testing.T) {
	job := engine.NewJob("windows")
	src := connectors.KafkaSource(job, "events", codec.JSON[event]())
	operators.WindowAggregate(operators.KeyByRecordKey(src, codec.String()), "counts", windowing.Global(),
		operators.Count[event]{}, codec.JSON[int64]())
	_, err := local.NewTask(context.Background(), job, 0, 0, local.Env{})
	if !errors.Is(err, engine.ErrTopology) || !strings.Contains(err.Error(), "global window never ends") {
		t.Fatalf("got %v, want a topology error about the global window", err)
	}
}

// Near the largest timestamp, a window's end plus its allowed lateness
// saturates instead of wrapping around (Flink's WindowOperator.cleanupTime):
// the record is in time, and its window fires at the final watermark.
func TestWindowNearTheLargestTimestamp(t *testing.T) {
	job := engine.NewJob("windows")
	src := connectors.KafkaSource(job, "events", codec.String(), connectors.WithWatermarks(windowing.RecordTimestamps[string](0)))
	late := engine.NewOutputTag[string]("late")
	counts := operators.WindowAggregate(operators.KeyByRecordKey(src, codec.String()), "counts", windowing.Tumbling(10*time.Second),
		operators.Count[string]{}, codec.JSON[int64](), operators.AllowedLateness(time.Hour), operators.LateOutput(late))
	results := weirtest.Capture(counts)
	lates := weirtest.Capture(engine.SideOutput(counts, late))
	h := weirtest.New(t, job)
	for _, ms := range []int64{math.MaxInt64 - 5_000, math.MaxInt64 - 4_000} {
		if err := weirtest.SendValue(h, "events", codec.String(), "a", "x", time.UnixMilli(ms)); err != nil {
			t.Fatal(err)
		}
	}
	if l := lates.Take(); len(l) != 0 {
		t.Fatalf("the record was late: %v", l)
	}
	if err := h.AdvanceWatermark(time.UnixMilli(math.MaxInt64)); err != nil {
		t.Fatal(err)
	}
	got := results.Take()
	if len(got) != 1 || got[0].Value.Value != 2 || got[0].Value.End.UnixMilli() != math.MaxInt64 {
		t.Fatalf("fired %+v, want one window of 2 records ending at the largest time", got)
	}
}
