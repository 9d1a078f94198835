package weirtest_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/state"
	"github.com/weirstream/weir/weirtest"
	"github.com/weirstream/weir/windowing"
)

// runningCount counts each key's records in value state and emits the
// count so far with every record.
type runningCount struct{ n *state.Value[int64] }

func (c *runningCount) Open(r *state.Registry) error {
	c.n = state.NewValue(r, "n", codec.JSON[int64]())
	return nil
}

func (c *runningCount) Process(ctx operators.Context[string], word string, out operators.Collector[int64]) error {
	if word == "boom" {
		return errors.New("boom")
	}
	n, _, err := c.n.Get(ctx)
	if err != nil {
		return err
	}
	if err := c.n.Set(ctx, n+1); err != nil {
		return err
	}
	return out.Collect(n + 1)
}

func (c *runningCount) OnTimer(operators.Context[string], time.Time, engine.TimeDomain, operators.Collector[int64]) error {
	return nil
}

// recoveryJob is one of the jobs the recovery scripts drive.
type recoveryJob struct {
	job *engine.Job
	// sink is the topic the job writes its results to.
	sink string
	// send sends a record built from the command's arguments.
	send func(h *weirtest.Harness, d *datadriven.TestData) error
	// format prints one output record of sink.
	format func(r *kgo.Record) string
	// state prints the state the command's arguments name.
	state func(h *weirtest.Harness, d *datadriven.TestData) string
}

// newRecoveryJob builds the job a "new" command names.
func newRecoveryJob(t *testing.T, d *datadriven.TestData) recoveryJob {
	var kind string
	d.ScanArgs(t, "job", &kind)
	dur := func(key string) time.Duration {
		if !d.HasArg(key) {
			return 0
		}
		var s string
		d.ScanArgs(t, key, &s)
		v, err := time.ParseDuration(s)
		if err != nil {
			d.Fatalf(t, "%s: %v", key, err)
		}
		return v
	}
	switch kind {
	case "count":
		job := engine.NewJob("count")
		words := connectors.KafkaSource(job, "words", codec.String())
		fn := &runningCount{}
		counts := operators.Process(operators.KeyByRecordKey(words, codec.String()), "count",
			fn)
		connectors.KafkaSink(counts, "counts", codec.JSON[int64]())
		return recoveryJob{
			job: job, sink: "counts",
			send: func(h *weirtest.Harness, d *datadriven.TestData) error {
				var key, at string
				d.ScanArgs(t, "key", &key)
				d.ScanArgs(t, "at", &at)
				return weirtest.SendValue(h, "words", codec.String(), key, key, parseClock(t, at))
			},
			format: func(r *kgo.Record) string { return fmt.Sprintf("%s count=%s", r.Key, r.Value) },
			state: func(h *weirtest.Harness, d *datadriven.TestData) string {
				var key string
				d.ScanArgs(t, "key", &key)
				n, ok, err := fn.n.Get(h.Scope(0, []byte(key)))
				if err != nil {
					d.Fatalf(t, "%v", err)
				}
				if !ok {
					return "none\n"
				}
				return fmt.Sprintf("n=%d\n", n)
			},
		}
	case "activity":
		job, fn := buildActivity(dur("idle"))
		return recoveryJob{
			job: job, sink: "activity",
			send: func(h *weirtest.Harness, d *datadriven.TestData) error {
				var key, user, page, at string
				d.ScanArgs(t, "key", &key)
				d.ScanArgs(t, "user", &user)
				d.ScanArgs(t, "page", &page)
				d.ScanArgs(t, "at", &at)
				ts := parseClock(t, at)
				return weirtest.SendValue(h, "clicks", codec.JSON[click](), key, click{User: user, Page: page, At: ts}, ts)
			},
			format: func(r *kgo.Record) string {
				a, err := codec.JSON[activity]().Decode(r.Value)
				if err != nil {
					t.Fatal(err)
				}
				if a.Kind == "bucket" {
					return fmt.Sprintf("bucket %s %s count=%d (partition %d)", a.User, a.Bucket, a.Count, r.Partition)
				}
				return fmt.Sprintf("%s %s last=%s (partition %d)", a.Kind, a.User, a.Last, r.Partition)
			},
			state: func(h *weirtest.Harness, d *datadriven.TestData) string { return bucketedState(t, h, d, fn) },
		}
	case "windows":
		var a windowing.Assigner
		switch {
		case d.HasArg("tumbling"):
			a = windowing.Tumbling(dur("tumbling"))
		case d.HasArg("sessions"):
			a = windowing.Sessions(dur("sessions"))
		default:
			d.Fatalf(t, "windows: tumbling=D or sessions=D")
		}
		job := engine.NewJob("windows")
		src := connectors.KafkaSource(job, "events", codec.JSON[event](),
			connectors.WithWatermarks(windowing.ForMonotonousTimestamps(func(e event) time.Time { return e.At })))
		counts := operators.WindowAggregate(operators.KeyByRecordKey(src, codec.String()), "counts", a,
			operators.Count[event]{}, codec.JSON[int64](),
			operators.AllowedLateness(dur("lateness")))
		connectors.KafkaSink(counts, "counts", codec.JSON[operators.Windowed[string, int64]]())
		return recoveryJob{
			job: job, sink: "counts",
			send: func(h *weirtest.Harness, d *datadriven.TestData) error {
				var key, at string
				d.ScanArgs(t, "key", &key)
				d.ScanArgs(t, "at", &at)
				ts := parseClock(t, at)
				return weirtest.SendValue(h, "events", codec.JSON[event](), key, event{Key: key, At: ts}, ts)
			},
			format: func(r *kgo.Record) string {
				w, err := codec.JSON[operators.Windowed[string, int64]]().Decode(r.Value)
				if err != nil {
					t.Fatal(err)
				}
				return fmt.Sprintf("%s [%s, %s) count=%d (at %s)", w.Key, clockOf(w.Start), clockOf(w.End), w.Value, r.Timestamp.UTC().Format("15:04:05.000"))
			},
		}
	}
	d.Fatalf(t, "unknown job %q", kind)
	return recoveryJob{}
}

// TestRecoveryScripts runs testdata/recovery: a job with exactly-once
// checkpoints crashes and recovers. Every script drives two harnesses over
// the same job with the same commands, one of which never crashes: the
// run without crashes, whose committed outputs the crashing one's must
// equal. Commands:
//
//	new job=count|activity|windows [partitions=N] [idle=D]
//	    [tumbling=D | sessions=D] [lateness=D]
//	                      count: a running count per key (value state), of
//	                      topic words; activity: the job of testdata/keyed;
//	                      windows: a count per key and window, watermark =
//	                      highest time seen - 1ms
//	send key=K at=T [user=U page=P]
//	                      one record (activity: a click)
//	watermark to=T        move every first-stage watermark to T
//	advance D             move processing time
//	checkpoint            checkpoint both harnesses
//	crash                 crash the crashing one and restart it from its last
//	                      checkpoint: prints what the crash aborted, then
//	                      what the restart and the replay wrote
//	committed             the committed outputs of the crashing run, and
//	                      whether the run without crashes committed the same
//	state key=K | user=U  the key's state (count, activity) in the crashing run
//	watermarks            each task's watermark in the crashing run
//
// send, watermark and advance print what the crashing run wrote (whether
// committed or not), and errors of either run.
func TestRecoveryScripts(t *testing.T) {
	walkScripts(t, "../testdata/recovery", func(t *testing.T, path string, opts []weirtest.Opt) {
		var h, ref *weirtest.Harness
		var job, refJob recoveryJob
		both := func(f func(*weirtest.Harness) error) string {
			err := f(h)
			refErr := f(ref)
			out := printOutputs(job, h.ReadOutput(job.sink), err)
			ref.ReadOutput(job.sink)
			if fmt.Sprint(err) != fmt.Sprint(refErr) {
				out += fmt.Sprintf("without crashes: error: %v\n", refErr)
			}
			return out
		}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			switch d.Cmd {
			case "new":
				n := 1
				if d.HasArg("partitions") {
					d.ScanArgs(t, "partitions", &n)
				}
				job, refJob = newRecoveryJob(t, d), newRecoveryJob(t, d)
				h = weirtest.New(t, job.job, append(opts, weirtest.Partitions(int32(n)))...)
				ref = weirtest.New(t, refJob.job, weirtest.Partitions(int32(n)))
				return ""
			case "send":
				return both(func(x *weirtest.Harness) error {
					if x == h {
						return job.send(x, d)
					}
					return refJob.send(x, d)
				})
			case "watermark":
				var at string
				d.ScanArgs(t, "to", &at)
				return both(func(x *weirtest.Harness) error { return x.AdvanceWatermark(parseClock(t, at)) })
			case "advance":
				dd, err := time.ParseDuration(d.CmdArgs[0].Key)
				if err != nil {
					d.Fatalf(t, "%v", err)
				}
				return both(func(x *weirtest.Harness) error { return x.AdvanceTime(dd) })
			case "checkpoint":
				return both(func(x *weirtest.Harness) error { return x.Checkpoint() })
			case "crash":
				err := h.Crash()
				var b strings.Builder
				if recs := h.Aborted(job.sink); len(recs) > 0 {
					b.WriteString("aborted:\n")
					b.WriteString(indent(printOutputs(job, recs, nil)))
				}
				if recs := h.ReadOutput(job.sink); len(recs) > 0 || err != nil {
					b.WriteString("after the restart:\n")
					b.WriteString(indent(printOutputs(job, recs, err)))
				}
				return b.String()
			case "committed":
				got := printOutputs(job, h.CommittedOutput(job.sink), nil)
				want := printOutputs(refJob, ref.CommittedOutput(refJob.sink), nil)
				if got == "" {
					got = "nothing\n"
				}
				if got == want || (want == "" && got == "nothing\n") {
					return got + "(the run without crashes committed the same)\n"
				}
				return got + "but the run without crashes committed:\n" + indent(want)
			case "state":
				return job.state(h, d)
			case "watermarks":
				var b strings.Builder
				for _, id := range h.Tasks() {
					s := "none"
					if wm := h.Watermark(id); !wm.IsZero() {
						s = wm.UTC().Format("15:04:05.000")
					}
					fmt.Fprintf(&b, "task %s: %s\n", id, s)
				}
				return b.String()
			}
			d.Fatalf(t, "unknown command %q", d.Cmd)
			return ""
		})
	})
}

func printOutputs(j recoveryJob, recs []*kgo.Record, err error) string {
	var b strings.Builder
	for _, r := range recs {
		b.WriteString(j.format(r))
		b.WriteByte('\n')
	}
	if err != nil {
		fmt.Fprintf(&b, "error: %v\n", err)
	}
	return b.String()
}

func indent(s string) string {
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = "  " + l
		}
	}
	return strings.Join(slices.DeleteFunc(lines, func(l string) bool { return l == "" }), "")
}

// TestCrashOutputs pins down what the output readers see across a crash:
// Output reads uncommitted records and the replay's again, Aborted what
// the crash undid, CommittedOutput only what checkpoints committed.
func TestCrashOutputs(t *testing.T) {
	job := engine.NewJob("count")
	fn := &runningCount{}
	counts := operators.Process(operators.KeyByRecordKey(connectors.KafkaSource(job, "words", codec.String()), codec.String()),
		"count", fn)
	connectors.KafkaSink(counts, "counts", codec.JSON[int64]())
	h := weirtest.New(t, job)
	values := func(rs []*kgo.Record) string {
		var vs []string
		for _, r := range rs {
			vs = append(vs, fmt.Sprintf("%s=%s@%d", r.Key, r.Value, r.Offset))
		}
		return strings.Join(vs, " ")
	}
	check := func(what, got, want string) {
		t.Helper()
		if got != want {
			t.Fatalf("%s: got %q, want %q", what, got, want)
		}
	}
	// The harness keeps copies of what it was sent: the caller may reuse
	// its buffers.
	buf := []byte("a")
	send := func(word string) {
		t.Helper()
		buf = append(buf[:0], word...)
		if err := h.SendBytes("words", buf, buf, day); err != nil {
			t.Fatal(err)
		}
	}
	send("a")
	send("b")
	if err := h.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	check("output before the crash", values(h.ReadOutput("counts")), "a=1@0 b=1@1")
	send("a")
	check("uncommitted output", values(h.ReadOutput("counts")), "a=2@2")
	send("b")
	if err := h.Crash(); err != nil {
		t.Fatal(err)
	}
	// Aborted records keep their offsets, as in Kafka.
	check("aborted", values(h.Aborted("counts")), "a=2@2 b=2@3")
	check("aborted, read again", values(h.Aborted("counts")), "")
	check("output after the crash", values(h.ReadOutput("counts")), "a=2@4 b=2@5")
	check("committed after the crash", values(h.CommittedOutput("counts")), "a=1@0 b=1@1")
	if err := h.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	check("committed", values(h.CommittedOutput("counts")), "a=1@0 b=1@1 a=2@4 b=2@5")
	check("committed, typed", fmt.Sprint(weirtest.CommittedOutputs(h, "counts", codec.JSON[int64]())[3].Value), "2")
	if err := h.SendBytes("words", []byte("boom"), []byte("boom"), day); err == nil {
		t.Fatal("boom: no error")
	}
	if err := h.Checkpoint(); err == nil || !strings.Contains(err.Error(), "did the task fail?") {
		t.Fatalf("checkpoint of a failed task: %v", err)
	}
	// The crash goes back to the last checkpoint that succeeded, and the
	// replay fails on the same record.
	if err := h.Crash(); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("crash: %v", err)
	}
	check("committed at the end", values(h.CommittedOutput("counts")), "a=1@0 b=1@1 a=2@4 b=2@5")
}
