package windowing

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
)

// TestWindowScripts runs testdata/windows/assign. Commands:
//
//	tumbling size=D [offset=D] / sliding size=D slide=D [offset=D] / sessions gap=D
//	assign ts=T...               the windows of each timestamp
//	merge                        one window per line "start end": Flink's session merge
//
// Times are on 2024-01-01 as in the watermark scripts (10:00:05.250).
func TestWindowScripts(t *testing.T) {
	datadriven.Walk(t, "../testdata/windows/assign", func(t *testing.T, path string) {
		var a Assigner
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			dur := func(name string) time.Duration {
				if !d.HasArg(name) {
					return 0
				}
				var s string
				d.ScanArgs(t, name, &s)
				v, err := time.ParseDuration(s)
				if err != nil {
					d.Fatalf(t, "%s: %v", name, err)
				}
				return v
			}
			switch d.Cmd {
			case "tumbling":
				a = Tumbling(dur("size"), dur("offset"))
			case "sliding":
				a = Sliding(dur("size"), dur("slide"), dur("offset"))
			case "sessions":
				a = Sessions(dur("gap"))
			case "assign":
				var b strings.Builder
				for _, arg := range d.CmdArgs {
					for _, v := range arg.Vals {
						ts := parseTime(t, d, v)
						fmt.Fprintf(&b, "%s:", v)
						for _, w := range a.Assign(nil, ts) {
							fmt.Fprintf(&b, " [%s, %s)", clock(w.Start), clock(w.End))
						}
						b.WriteString("\n")
					}
				}
				return b.String()
			case "merge":
				var ws []Window
				for _, line := range lines(d.Input) {
					f := strings.Fields(line)
					ws = append(ws, Window{Start: parseTime(t, d, f[0]), End: parseTime(t, d, f[1])})
				}
				merged, members := MergeWindows(ws)
				var b strings.Builder
				for i, w := range merged {
					fmt.Fprintf(&b, "[%s, %s) from %v\n", clock(w.Start), clock(w.End), members[i])
				}
				return b.String()
			default:
				d.Fatalf(t, "unknown command %q", d.Cmd)
			}
			if err := ValidateAssigner(a); err != nil {
				return "error: " + err.Error() + "\n"
			}
			return ""
		})
	})
}

// Near the limits of event time, window bounds saturate instead of
// wrapping around (Flink's TimeWindow.getWindowStartWithOffset and
// WindowOperator.cleanupTime).
func TestWindowArithmeticNearTheLimits(t *testing.T) {
	const size = 10_000
	for _, ts := range []Millis{MaxMillis, MaxMillis - 5, MaxMillis - size, MinWatermark + 1, MinWatermark + 5} {
		ws := Tumbling(size*time.Millisecond).Assign(nil, ts)
		if len(ws) != 1 {
			t.Fatalf("ts %d: %d windows", ts, len(ws))
		}
		w := ws[0]
		if w.Start > ts || ts-w.Start >= size || w.End <= ts && w.End != MaxMillis {
			t.Errorf("ts %d: window [%d, %d) does not hold it", ts, w.Start, w.End)
		}
	}
	ws := Sliding(10*time.Second, 5*time.Second).Assign(nil, MaxMillis-1)
	if len(ws) != 2 || ws[0].Start >= ws[1].Start {
		t.Errorf("sliding windows near the maximum: %v", ws)
	}
	if got := Sessions(time.Hour).Assign(nil, MaxMillis-5)[0].End; got != MaxMillis {
		t.Errorf("a session near the maximum ends at %d, want MaxMillis", got)
	}
	w := Window{Start: MaxMillis - 20, End: MaxMillis - 10}
	if got := w.CleanupTime(Millis(time.Hour.Milliseconds())); got != MaxMillis {
		t.Errorf("cleanup time %d, want MaxMillis (saturated, not wrapped)", got)
	}
	if got := (Window{Start: 0, End: 10}).CleanupTime(5); got != 14 {
		t.Errorf("cleanup time %d, want 14", got)
	}
	if GlobalWindow.MaxTimestamp() != MaxMillis {
		t.Errorf("the global window's max timestamp is %d, want MaxMillis as Flink's GlobalWindow", GlobalWindow.MaxTimestamp())
	}
}

// Offsets as Flink's assigners accept them: smaller than the size (a
// tumbling window) or the slide (a sliding one), in absolute value.
func TestAssignerOffsetsAsFlink(t *testing.T) {
	for _, tc := range []struct {
		a  Assigner
		ok bool
	}{
		{Tumbling(10*time.Second, 9*time.Second), true},
		{Tumbling(10*time.Second, -9*time.Second), true},
		{Tumbling(10*time.Second, 10*time.Second), false},
		{Tumbling(10*time.Second, -11*time.Second), false},
		{Sliding(10*time.Second, 5*time.Second, 4*time.Second), true},
		{Sliding(10*time.Second, 5*time.Second, 5*time.Second), false},
		{Sliding(10*time.Second, 5*time.Second, -5*time.Second), false},
		{Sliding(0, 5*time.Second), false},
		{Sessions(0), false},
	} {
		if err := ValidateAssigner(tc.a); (err == nil) != tc.ok {
			t.Errorf("%+v: ValidateAssigner = %v, want ok=%v", tc.a, err, tc.ok)
		}
	}
	// A negative offset shifts windows back (Flink: of(1h, -8h) for UTC+8).
	ws := Tumbling(10*time.Second, -3*time.Second).Assign(nil, 5_000)
	if len(ws) != 1 || ws[0].Start != 7_000-10_000 || ws[0].End != 7_000 {
		t.Errorf("offset -3s: %v, want [-3000, 7000)", ws)
	}
}

func TestIdlenessMustBePositive(t *testing.T) {
	s := ForMonotonousTimestamps(func(time.Time) time.Time { return time.Time{} })
	if err := s.Validate(); err != nil {
		t.Errorf("no idleness: %v", err)
	}
	for _, d := range []time.Duration{0, -time.Second, time.Microsecond} {
		if err := s.WithIdleness(d).Validate(); err == nil {
			t.Errorf("WithIdleness(%v) accepted; Flink rejects a timeout that is not positive", d)
		}
	}
	if err := s.WithIdleness(time.Millisecond).Validate(); err != nil {
		t.Errorf("WithIdleness(1ms): %v", err)
	}
}
