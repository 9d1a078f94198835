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
	"github.com/weirstream/weir/state"
	"github.com/weirstream/weir/weirtest"
	"github.com/weirstream/weir/windowing"
)

type click struct {
	User string    `json:"user"`
	Page string    `json:"page"`
	At   time.Time `json:"at"`
}

type activity struct {
	User   string `json:"user"`
	Kind   string `json:"kind"`
	Bucket string `json:"bucket,omitempty"`
	Count  int    `json:"count,omitempty"`
	Last   string `json:"last,omitempty"`
}

// bucketed counts clicks per user in 10-second event-time buckets and
// reports each bucket when the watermark passes its end. A "ping" page
// asks for a processing-time report 5s later of the last page seen, which
// is kept with a TTL of 1 minute.
type bucketed struct {
	counts *state.Map[int64, int] // by bucket start, Unix ms
	last   *state.Value[string]
}

const bucket = 10 * time.Second

var errorsTag = engine.NewOutputTag[string]("errors")

func (b *bucketed) Open(r *state.Registry) error {
	b.counts = state.NewMap(r, "counts", codec.Key[int64](), codec.JSON[int]())
	b.last = state.NewValue(r, "last-page", codec.String(), state.WithTTL(time.Minute))
	return nil
}

func (b *bucketed) Process(c operators.Context[string], in click, out operators.Collector[activity]) error {
	start := in.At.Truncate(bucket)
	end := start.Add(bucket)
	if !strings.HasPrefix(in.Page, "/error") {
		n, _, err := b.counts.Get(c, start.UnixMilli())
		if err != nil {
			return err
		}
		if err := b.counts.Put(c, start.UnixMilli(), n+1); err != nil {
			return err
		}
	}
	// The timer fires when the watermark passes the bucket's last
	// millisecond; registering it again for the next click is a no-op.
	c.Timers().RegisterEventTimeTimer(end.Add(-time.Millisecond))
	if strings.HasPrefix(in.Page, "/error") {
		// Not counted: reported on the side.
		return errorsTag.Emit(c, "bad page "+in.Page)
	}
	if in.Page == "ping" {
		c.Timers().RegisterProcessingTimeTimer(c.ProcessingTime().Add(5 * time.Second))
		return nil
	}
	return b.last.Set(c, in.Page)
}

func (b *bucketed) OnTimer(c operators.Context[string], at time.Time, d engine.TimeDomain, out operators.Collector[activity]) error {
	if d == engine.ProcessingTime {
		last, ok, err := b.last.Get(c)
		if err != nil {
			return err
		}
		if !ok {
			last = "(expired)"
		}
		return out.Collect(activity{User: c.Key(), Kind: "ping", Last: last})
	}
	start := at.Add(time.Millisecond).Add(-bucket)
	n, ok, err := b.counts.Get(c, start.UnixMilli())
	if err != nil || !ok {
		return err // nothing counted in the bucket (only error pages)
	}
	if err := b.counts.Delete(c, start.UnixMilli()); err != nil {
		return err
	}
	return out.Collect(activity{User: c.Key(), Kind: "bucket", Bucket: clockOf(start), Count: n})
}

var day = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func clockOf(t time.Time) string { return t.UTC().Format("15:04:05") }

func parseClock(t *testing.T, s string) time.Time {
	t.Helper()
	c, err := time.Parse("15:04:05", s)
	if err != nil {
		t.Fatalf("time %q: %v", s, err)
	}
	return day.Add(c.Sub(time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)))
}

// buildActivity is the job the scripts drive: clicks, keyed in their topic
// by page, are re-keyed by user (through a repartition topic) and counted.
func buildActivity(idle time.Duration) (*engine.Job, *bucketed) {
	job, fn, _ := buildActivityWithSide(idle)
	return job, fn
}

func buildActivityWithSide(idle time.Duration) (*engine.Job, *bucketed, *weirtest.Captured[string]) {
	job := engine.NewJob("activity")
	wm := windowing.BoundedOutOfOrderness(2*time.Second, func(c click) time.Time { return c.At })
	if idle > 0 {
		wm = wm.WithIdleness(idle)
	}
	clicks := connectors.KafkaSource(job, "clicks", codec.JSON[click](), connectors.WithWatermarks(wm))
	byUser := operators.KeyBy(clicks, func(c click) string { return c.User }, operators.KeyByName("by-user"))
	fn := &bucketed{}
	out := operators.Process(byUser, "buckets", fn)
	connectors.KafkaSink(out, "activity", codec.JSON[activity]())
	side := weirtest.Capture(engine.SideOutput(out, errorsTag))
	return job, fn, side
}

// TestKeyedScripts runs testdata/keyed. Commands:
//
//	new partitions=N [idle=D]      a fresh harness over the activity job
//	send key=K user=U page=P at=T  a click (Kafka key K, event time T)
//	advance D                      move processing time
//	output                         what the job wrote since the last output
//	watermarks                     each task's watermark
//	state user=U                   the user's count and last page
//	side                           the side output captured since the last side
//	advance-watermark to=T         move every first-stage watermark to T
func TestKeyedScripts(t *testing.T) {
	walkScripts(t, "../testdata/keyed", func(t *testing.T, path string, opts []weirtest.Opt) {
		var h *weirtest.Harness
		var fn *bucketed
		var job *engine.Job
		var side *weirtest.Captured[string]
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			switch d.Cmd {
			case "new":
				var n int
				var idle string
				d.ScanArgs(t, "partitions", &n)
				if d.HasArg("idle") {
					d.ScanArgs(t, "idle", &idle)
				}
				var idleD time.Duration
				if idle != "" {
					var err error
					if idleD, err = time.ParseDuration(idle); err != nil {
						d.Fatalf(t, "%v", err)
					}
				}
				job, fn, side = buildActivityWithSide(idleD)
				h = weirtest.New(t, job, append(opts, weirtest.Partitions(int32(n)))...)
				return ""
			case "send":
				var key, user, page, at string
				d.ScanArgs(t, "key", &key)
				d.ScanArgs(t, "user", &user)
				d.ScanArgs(t, "page", &page)
				d.ScanArgs(t, "at", &at)
				ts := parseClock(t, at)
				err := weirtest.SendValue(h, "clicks", codec.JSON[click](), key, click{User: user, Page: page, At: ts}, ts)
				return outputs(h, err)
			case "advance":
				dur, err := time.ParseDuration(d.CmdArgs[0].Key)
				if err != nil {
					d.Fatalf(t, "%v", err)
				}
				return outputs(h, h.AdvanceTime(dur))
			case "output":
				return outputs(h, nil)
			case "side":
				var b strings.Builder
				for _, r := range side.Take() {
					fmt.Fprintf(&b, "%s: %s (task %s, at %s)\n", r.Key, r.Value, r.Task, clockOf(r.Timestamp))
				}
				return b.String()
			case "advance-watermark":
				var at string
				d.ScanArgs(t, "to", &at)
				return outputs(h, h.AdvanceWatermark(parseClock(t, at)))
			case "watermarks":
				var b strings.Builder
				for _, id := range h.Tasks() {
					wm := h.Watermark(id)
					s := "none"
					if !wm.IsZero() {
						s = wm.UTC().Format("15:04:05.000")
					}
					fmt.Fprintf(&b, "task %s: %s\n", id, s)
				}
				return b.String()
			case "state":
				return bucketedState(t, h, d, fn)
			}
			d.Fatalf(t, "unknown command %q", d.Cmd)
			return ""
		})
	})
}

// bucketedState prints the activity function's state of the user the
// command names: its bucket counts and last page.
func bucketedState(t *testing.T, h *weirtest.Harness, d *datadriven.TestData, fn *bucketed) string {
	var user string
	d.ScanArgs(t, "user", &user)
	sc := h.Scope(1, []byte(user))
	var counts []string
	if err := fn.counts.Range(sc, func(start int64, n int) bool {
		counts = append(counts, fmt.Sprintf("%s:%d", clockOf(time.UnixMilli(start)), n))
		return true
	}); err != nil {
		d.Fatalf(t, "%v", err)
	}
	last, ok, err := fn.last.Get(sc)
	if err != nil {
		d.Fatalf(t, "%v", err)
	}
	return fmt.Sprintf("counts=[%s] last=%s\n", strings.Join(counts, " "), orNone(ok, last))
}

func orNone(ok bool, s string) string {
	if !ok {
		return "none"
	}
	return s
}

// outputs prints the job's outputs since the last call, then err if any.
func outputs(h *weirtest.Harness, err error) string {
	var lines []string
	for _, r := range weirtest.ReadOutputs(h, "activity", codec.JSON[activity]()) {
		a := r.Value
		switch a.Kind {
		case "bucket":
			lines = append(lines, fmt.Sprintf("bucket %s %s count=%d (key %s, partition %d)", a.User, a.Bucket, a.Count, r.Key, r.Partition))
		default:
			lines = append(lines, fmt.Sprintf("%s %s last=%s", a.Kind, a.User, a.Last))
		}
	}
	if err != nil {
		lines = append(lines, "error: "+err.Error())
	}
	if len(lines) == 0 {
		return ""
	}
	return strings.Join(lines, "\n") + "\n"
}
