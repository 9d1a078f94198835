package weirtest_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/weirtest"
	"github.com/weirstream/weir/windowing"
)

type hit struct {
	User string    `json:"user"`
	ID   string    `json:"id"`
	At   time.Time `json:"at"`
}

// TestIntervalJoinScripts runs testdata/joins. Commands:
//
//	new lower=D upper=D      impressions (left) joined with clicks (right) by user,
//	                         both keyed by id in their topics, 5s out-of-orderness
//	new tumbling=D           the same streams joined per tumbling window
//	new ... lower-exclusive upper-exclusive   Flink's exclusive bounds
//	send topic=T user=U id=I at=T
//	watermark to=T
//
// send and watermark print the joined pairs.
func TestIntervalJoinScripts(t *testing.T) {
	walkScripts(t, "../testdata/joins", func(t *testing.T, path string, opts []weirtest.Opt) {
		var h *weirtest.Harness
		var out *weirtest.Captured[string]
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			switch d.Cmd {
			case "new":
				var lo, hi, tumbling string
				var jopts []operators.JoinOpt
				if d.HasArg("lower-exclusive") {
					jopts = append(jopts, operators.LowerBoundExclusive())
				}
				if d.HasArg("upper-exclusive") {
					jopts = append(jopts, operators.UpperBoundExclusive())
				}
				var lower, upper, size time.Duration
				var err1, err2 error
				if d.HasArg("tumbling") {
					d.ScanArgs(t, "tumbling", &tumbling)
					size, err1 = time.ParseDuration(tumbling)
				} else {
					d.ScanArgs(t, "lower", &lo)
					d.ScanArgs(t, "upper", &hi)
					lower, err1 = time.ParseDuration(lo)
					upper, err2 = time.ParseDuration(hi)
				}
				if err1 != nil || err2 != nil {
					d.Fatalf(t, "durations: %v %v", err1, err2)
				}
				job := engine.NewJob("ads")
				wm := windowing.BoundedOutOfOrderness(5*time.Second, func(h hit) time.Time { return h.At })
				imps := connectors.KafkaSource(job, "impressions", codec.JSON[hit](), connectors.WithWatermarks(wm))
				clicks := connectors.KafkaSource(job, "clicks", codec.JSON[hit](), connectors.WithWatermarks(wm))
				byUser := func(h hit) string { return h.User }
				li, rc := operators.KeyByBoth(imps, byUser, clicks, byUser, "by-user")
				var joined engine.Stream[string]
				if size > 0 {
					joined = operators.WindowJoin(li, rc, "imp-click", windowing.Tumbling(size), func(user string, w windowing.Window, l, r hit) (string, error) {
						return fmt.Sprintf("%s [%s, %s) %s@%s + %s@%s", user, clockOf(w.Start.Time()), clockOf(w.End.Time()), l.ID, clockOf(l.At), r.ID, clockOf(r.At)), nil
					})
				} else {
					joined = operators.IntervalJoin(li, rc, "imp-click", lower, upper, func(user string, l, r hit) (string, error) {
						return fmt.Sprintf("%s %s@%s + %s@%s", user, l.ID, clockOf(l.At), r.ID, clockOf(r.At)), nil
					}, jopts...)
				}
				out = weirtest.Capture(joined)
				h = weirtest.New(t, job, opts...)
				return ""
			case "send":
				var topic, user, id, at string
				d.ScanArgs(t, "topic", &topic)
				d.ScanArgs(t, "user", &user)
				d.ScanArgs(t, "id", &id)
				d.ScanArgs(t, "at", &at)
				ts := parseClock(t, at)
				return joins(out, weirtest.SendValue(h, topic, codec.JSON[hit](), id, hit{User: user, ID: id, At: ts}, ts))
			case "watermark":
				var at string
				d.ScanArgs(t, "to", &at)
				return joins(out, h.AdvanceWatermark(parseClock(t, at)))
			}
			d.Fatalf(t, "unknown command %q", d.Cmd)
			return ""
		})
	})
}

func joins(c *weirtest.Captured[string], err error) string {
	var b strings.Builder
	for _, r := range c.Take() {
		fmt.Fprintf(&b, "%s (at %s)\n", r.Value, r.Timestamp.UTC().Format("15:04:05"))
	}
	if err != nil {
		fmt.Fprintf(&b, "error: %v\n", err)
	}
	return b.String()
}
