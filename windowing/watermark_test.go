package windowing

import (
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
)

// TestWatermarks runs the scripts in testdata/watermarks against one task:
// a Combiner[string] over source partitions (each with its Generator) and
// upstream tasks. Times are written 10:00:05 or 10:00:05.250 on 2024-01-01
// UTC, in event time and processing time alike; "min" is MinWatermark.
// Commands:
//
//	strategy [delay=<d>|monotonous] [idle=<d>]
//	                               a fresh task with no inputs; its source
//	                               partitions use BoundedOutOfOrderness(delay)
//	                               or ForMonotonousTimestamps, WithIdleness(idle)
//	add-input <id>...              source partitions, each a new generator
//	add-upstream tasks=<n>         upstream inputs task0..task<n-1>
//	remove-input <id>...
//	event now=<t>                  one record per line: <input> <ts>
//	observe                        event without a clock: Generator.Observe,
//	                               then Combiner.AdvanceWithoutClock
//	tick now=<t>                   Advance; prints every input and the task
//	late                           one timestamp per line: late or on time
//	                               against the task's watermark
//	control now=<t>                one control record per line:
//	                               task=<n> wm=<t> [idle]; encoded, decoded,
//	                               given to Update, then Advance
//	encode task=<n> wm=<t> [idle]  the control record's header
//	decode                         one hex header value per line ("empty"
//	                               for none): the record or the error
//
// Lateness is judged against the task's watermark before the record, as an
// operator does.
//
// Run with -rewrite to update the expected output.
func TestWatermarks(t *testing.T) {
	datadriven.Walk(t, "../testdata/watermarks", func(t *testing.T, path string) {
		var (
			strategy WatermarkStrategy[event]
			c        *Combiner[string]
			gens     map[string]*Generator
		)
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			var b strings.Builder
			switch d.Cmd {
			case "strategy":
				var delay, idle time.Duration
				d.MaybeScanArgs(t, "delay", &delay)
				d.MaybeScanArgs(t, "idle", &idle)
				at := func(e event) time.Time { return e.at }
				strategy = BoundedOutOfOrderness(delay, at)
				if d.HasArg("monotonous") {
					strategy = ForMonotonousTimestamps(at)
				}
				if d.HasArg("idle") {
					strategy = strategy.WithIdleness(idle)
				}
				if err := strategy.Validate(); err != nil {
					return err.Error()
				}
				c, gens = NewCombiner[string](), map[string]*Generator{}
				return ""

			case "add-input":
				for _, a := range d.CmdArgs {
					g := strategy.NewGenerator()
					if err := c.AddGenerator(a.Key, g); err != nil {
						fmt.Fprintln(&b, err)
						continue
					}
					gens[a.Key] = g
				}
				return b.String()

			case "add-upstream":
				var n int
				d.ScanArgs(t, "tasks", &n)
				for i := range n {
					if err := c.AddInput(upstreamID(int32(i))); err != nil {
						fmt.Fprintln(&b, err)
					}
				}
				return b.String()

			case "remove-input":
				for _, a := range d.CmdArgs {
					c.RemoveInput(a.Key)
					delete(gens, a.Key)
				}
				return ""

			case "event", "observe":
				var now time.Time
				if d.Cmd == "event" {
					now = scanNow(t, d)
				}
				for _, line := range lines(d.Input) {
					f := strings.Fields(line)
					if len(f) != 2 {
						d.Fatalf(t, "want <input> <ts>: %q", line)
					}
					g, ok := gens[f[0]]
					if !ok {
						d.Fatalf(t, "no source input %q", f[0])
					}
					ts := MillisOf(strategy.Timestamp(event{at: parseTime(t, d, f[1]).Time()}, time.Time{}))
					late := ""
					if c.IsLate(ts) {
						late = " late"
					}
					var wm Millis
					var advanced bool
					if d.Cmd == "event" {
						g.OnEvent(ts, now)
						wm, advanced = c.Advance(now)
					} else {
						g.Observe(ts)
						wm, advanced = c.AdvanceWithoutClock()
					}
					fmt.Fprintf(&b, "%s ts=%s%s -> %s wm=%s, task wm=%s%s\n",
						f[0], clock(ts), late, f[0], clock(g.Current()), clock(wm), describe(c, advanced))
				}
				return b.String()

			case "tick":
				now := scanNow(t, d)
				wm, advanced := c.Advance(now)
				for _, in := range c.inputs {
					w, idle := in.wm, in.idle
					if in.gen != nil {
						w, idle = in.gen.Current(), in.gen.IsIdle(now)
					}
					state := "active"
					if idle {
						state = "idle"
					}
					fmt.Fprintf(&b, "%s wm=%s %s\n", in.id, clock(w), state)
				}
				fmt.Fprintf(&b, "task wm=%s%s\n", clock(wm), describe(c, advanced))
				return b.String()

			case "late":
				for _, line := range lines(d.Input) {
					ts := parseTime(t, d, line)
					verdict := "on time"
					if c.IsLate(ts) {
						verdict = "late"
					}
					fmt.Fprintf(&b, "%s %s (task wm=%s)\n", clock(ts), verdict, clock(c.Current()))
				}
				return b.String()

			case "control":
				now := scanNow(t, d)
				for _, line := range lines(d.Input) {
					_, args, err := datadriven.ParseLine("control " + line)
					if err != nil {
						d.Fatalf(t, "%v", err)
					}
					sent := parseUpstream(t, &datadriven.TestData{Pos: d.Pos, CmdArgs: args})
					key, value := EncodeWatermark(sent)
					if key != WatermarkHeaderKey {
						d.Fatalf(t, "header key %q", key)
					}
					got, err := DecodeWatermark(value)
					if err != nil {
						d.Fatalf(t, "decoding what we encoded: %v", err)
					}
					fmt.Fprintf(&b, "%s: ", line)
					if err := c.Update(upstreamID(got.Task), got.Watermark, got.Idle); err != nil {
						fmt.Fprintf(&b, "%v\n", err)
						continue
					}
					wm, advanced := c.Advance(now)
					fmt.Fprintf(&b, "task wm=%s%s\n", clock(wm), describe(c, advanced))
				}
				return b.String()

			case "encode":
				key, value := EncodeWatermark(parseUpstream(t, d))
				return fmt.Sprintf("%s: %x %x %x %x\n", key, value[:1], value[1:2], value[2:6], value[6:])

			case "decode":
				for _, line := range lines(d.Input) {
					var value []byte
					if line != "empty" {
						var err error
						if value, err = hex.DecodeString(strings.ReplaceAll(line, " ", "")); err != nil {
							d.Fatalf(t, "hex %q: %v", line, err)
						}
					}
					w, err := DecodeWatermark(value)
					if err != nil {
						fmt.Fprintf(&b, "%s: %v\n", line, err)
						continue
					}
					fmt.Fprintf(&b, "%s: task=%d wm=%s idle=%t\n", line, w.Task, clock(w.Watermark), w.Idle)
				}
				return b.String()
			}
			d.Fatalf(t, "unknown command %q", d.Cmd)
			return ""
		})
	})
}

// event is the record type of the scripts: its event time is a field.
type event struct{ at time.Time }

// day is the date of every time in the scripts.
var day = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// parseTime reads "min", "10:00:05" or "10:00:05.250" (on day).
func parseTime(t *testing.T, d *datadriven.TestData, s string) Millis {
	t.Helper()
	if s == "min" {
		return MinWatermark
	}
	for _, layout := range []string{"15:04:05.000", "15:04:05"} {
		if tod, err := time.Parse(layout, s); err == nil {
			return MillisOf(day.Add(tod.Sub(time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC))))
		}
	}
	d.Fatalf(t, "bad time %q: want min, 15:04:05 or 15:04:05.000", s)
	return 0
}

// clock formats m as it is written in the scripts: the time of day when m
// falls on day.
func clock(m Millis) string {
	if m != MinWatermark && m.Time().Truncate(24*time.Hour).Equal(day) {
		return m.Time().Format("15:04:05.000")
	}
	return m.String()
}

func describe(c *Combiner[string], advanced bool) string {
	switch {
	case c.AllIdle():
		return " (all inputs idle)"
	case advanced:
		return " (advanced)"
	}
	return ""
}

func scanNow(t *testing.T, d *datadriven.TestData) time.Time {
	t.Helper()
	var s string
	d.ScanArgs(t, "now", &s)
	return parseTime(t, d, s).Time()
}

func parseUpstream(t *testing.T, d *datadriven.TestData) UpstreamWatermark {
	t.Helper()
	var w UpstreamWatermark
	var wm string
	d.ScanArgs(t, "task", &w.Task)
	d.ScanArgs(t, "wm", &wm)
	w.Watermark = parseTime(t, d, wm)
	w.Idle = d.HasArg("idle")
	return w
}

func upstreamID(task int32) string { return fmt.Sprintf("task%d", task) }

func lines(s string) []string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}
