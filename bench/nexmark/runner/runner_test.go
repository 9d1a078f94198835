package runner

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/weirstream/weir/bench/nexmark"
	"github.com/weirstream/weir/engine"
)

// The test binary is also the engines the runner tests start: with
// RUNNER_TEST_ENGINE set it runs one and exits.
func TestMain(m *testing.M) {
	if e := os.Getenv("RUNNER_TEST_ENGINE"); e != "" {
		os.Exit(testEngine(e))
	}
	os.Exit(m.Run())
}

// testEngine runs the query asked for as a Weir job ("weir"), another
// query in its place ("broken": q7 for any), or the bare copy.
func testEngine(kind string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	var err error
	if kind == "bare" {
		err = Bare{Brokers: strings.Split(os.Getenv("WEIR_BROKERS"), ","), Input: os.Getenv("RUNNER_TEST_IN"),
			Output: os.Getenv("RUNNER_TEST_OUT"), Group: os.Getenv("WEIR_GROUP"), ExactlyOnce: true, Interval: 50 * time.Millisecond}.Run(ctx)
	} else {
		name := os.Getenv("RUNNER_TEST_QUERY")
		if kind == "broken" {
			name = "q7"
		}
		q, qerr := nexmark.QueryByName(name)
		if qerr != nil {
			panic(qerr)
		}
		job := engine.NewJob("runner-test", engine.FromEnv())
		q.Build(job, os.Getenv("RUNNER_TEST_IN"), os.Getenv("RUNNER_TEST_OUT"))
		err = job.Run(ctx)
	}
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		return 1
	}
	return 0
}

func testEngineCmd(name, kind string) Engine {
	e := Engine{Name: name, Command: func(s Spec) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(),
			"RUNNER_TEST_ENGINE="+kind,
			"RUNNER_TEST_QUERY="+s.Query, "RUNNER_TEST_IN="+s.Input, "RUNNER_TEST_OUT="+s.Output,
			"WEIR_BROKERS="+strings.Join(s.Brokers, ","), "WEIR_GROUP="+s.Group, "WEIR_GUARANTEE="+s.Guarantee,
			"WEIR_CHECKPOINT_INTERVAL="+s.Interval.String(), "WEIR_STATE_DIR="+s.StateDir, "WEIR_METRICS_ADDR=",
			"WEIR_LOG_LEVEL=warn")
		return cmd
	}}
	if kind == "bare" {
		e.Queries = []string{CopyQuery}
	}
	return e
}

// TestRunMeasuresAndCrossChecks runs the runner end to end on franz-go's
// in-process broker: the bare copy and a Weir query twice under two
// engine names, which must agree, and a third that runs another query,
// which the cross-check must catch.
func TestRunMeasuresAndCrossChecks(t *testing.T) {
	var log strings.Builder
	cfg := Config{
		Brokers: fakeBroker(t),
		Engines: []Engine{
			testEngineCmd("weir", "weir"), testEngineCmd("twin", "weir"), testEngineCmd("broken", "broken"), testEngineCmd("bare", "bare"),
		},
		Queries: []string{"q5"},
		Passes:  []Pass{{Guarantee: "exactly-once", Interval: 50 * time.Millisecond, Live: true, CrossCheck: true}},
		Events:  20_000, LiveRate: 2000, LiveFor: time.Second, LiveForWindows: 2 * time.Second,
		Parallelism: 2, WorkDir: t.TempDir(), Timeout: 30 * time.Second,
		Reference: "weir", Strict: []string{"twin", "broken"}, Log: &log,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ms, problems, err := Run(ctx, cfg)
	t.Logf("runner log:\n%s", log.String())
	if err == nil || len(problems) != 1 || !strings.Contains(problems[0], "cross-check q5") || !strings.Contains(problems[0], "only in weir") || !strings.HasPrefix(by0(ms, "twin").Match, "equal") {
		t.Fatalf("Run: err %v, problems %q; want one: broken's q5 differs", err, problems)
	}
	by := map[string]*Measurement{}
	for _, m := range ms {
		by[m.Engine] = m
	}
	for _, name := range []string{"weir", "twin", "broken", "bare"} {
		m := by[name]
		if m == nil || m.Failed() {
			t.Fatalf("%s: %+v", name, m)
		}
		if m.PeakRSS <= 0 || (m.Commits >= MinCommits && (m.WallRate <= 0 || m.CPURate <= 0)) {
			t.Errorf("%s: rates %.0f/%.0f after %d commits, peak RSS %d", name, m.WallRate, m.CPURate, m.Commits, m.PeakRSS)
		}
	}
	if w := by["weir"]; w.Results.Len() == 0 || w.FirstOutput <= 0 || w.Latency == nil {
		t.Errorf("weir: %d historical results, first output %v, latency %v; want results, a first output and a latency phase",
			w.Results.Len(), w.FirstOutput, w.Latency)
	}
	if b := by["bare"]; b.Latency == nil || b.Latency.N == 0 || b.Latency.P50 <= 0 {
		t.Errorf("bare latency %v", b.Latency)
	}
	var tables strings.Builder
	WriteTables(&tables, cfg, ms)
	for _, want := range []string{"| q5 | weir |", "| copy | bare |", "| q5 | twin |"} {
		if !strings.Contains(tables.String(), want) {
			t.Errorf("tables lack %q:\n%s", want, tables.String())
		}
	}
}

func TestNormalize(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"b":1,"a":"x"}`, `{"a":"x","b":1}`},
		{`{"price": 12.000, "t": "2024-01-01T00:00:01.5Z"}`, `{"price":12,"t":"2024-01-01 00:00:01.500"}`},
		{`{"t":"2024-01-01 00:00:01.500","f":1.25}`, `{"f":1.25,"t":"2024-01-01 00:00:01.500"}`},
		{`{"s":"2024-01-01 not a time"}`, `{"s":"2024-01-01 not a time"}`},
	} {
		got, err := Normalize([]byte(c.in))
		if err != nil || got != c.want {
			t.Errorf("Normalize(%s) = %s, %v; want %s", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{`{`, `{} {}`, `nope`} {
		if _, err := Normalize([]byte(bad)); err == nil {
			t.Errorf("Normalize(%s): no error", bad)
		}
	}
	a, b := Multiset{`{"a":1}`: 2, `{"a":2}`: 1}, Multiset{`{"a":1}`: 1, `{"a":3}`: 1}
	d := Diff("x", a, "y", b, 5)
	for _, want := range []string{"x has 3 results, y 2", "2 only in x, 1 only in y", `only in x: {"a":1} ×1`, `only in y: {"a":3} ×1`} {
		if !strings.Contains(d, want) {
			t.Errorf("Diff lacks %q:\n%s", want, d)
		}
	}
	if d := Diff("x", a, "y", Multiset{`{"a":2}`: 1, `{"a":1}`: 2}, 5); d != "" {
		t.Errorf("equal multisets differ: %s", d)
	}
}

func by0(ms []*Measurement, engine string) *Measurement {
	for _, m := range ms {
		if m.Engine == engine {
			return m
		}
	}
	return &Measurement{}
}

func TestContractArgsCarryTheProducer(t *testing.T) {
	s := Spec{Brokers: []string{"a:1", "b:2"}, Query: "q1", Input: "in", Output: "out", Group: "g",
		Guarantee: "exactly-once", Interval: 100 * time.Millisecond, Parallelism: 2, StateDir: "/s",
		Producer: Producer{BatchBytes: 65536, Linger: 5 * time.Millisecond, Compression: "lz4"}}
	got := strings.Join(ContractArgs(s), " ")
	want := "--brokers a:1,b:2 --query q1 --input in --output out --group g --guarantee exactly-once" +
		" --interval-ms 100 --parallelism 2 --state-dir /s" +
		" --producer-batch-bytes 65536 --producer-linger-ms 5 --producer-compression lz4"
	if got != want {
		t.Errorf("ContractArgs:\n got %s\nwant %s", got, want)
	}
	if err := DefaultProducer.Validate(); err != nil {
		t.Errorf("DefaultProducer: %v", err)
	}
	for _, p := range []Producer{
		{BatchBytes: 0, Linger: 0, Compression: "none"},
		{BatchBytes: 1, Linger: -time.Millisecond, Compression: "none"},
		{BatchBytes: 1, Linger: time.Microsecond, Compression: "none"},
		{BatchBytes: 1, Linger: 0, Compression: "brotli"},
	} {
		if _, err := p.KgoOpts(); err == nil {
			t.Errorf("%+v: no error", p)
		}
	}
}

// TestRunResizesShortWindowsAndRepeats runs the bare copy twice with a
// measured window that its first input is too small for: the first run
// must only size the input, and both repetitions must then count, with
// windows of at least the minimum.
func TestRunResizesShortWindowsAndRepeats(t *testing.T) {
	var log strings.Builder
	cfg := Config{
		Brokers: fakeBroker(t), Engines: []Engine{testEngineCmd("bare", "bare")},
		Passes: []Pass{{Guarantee: "exactly-once", Interval: 50 * time.Millisecond}},
		Events: 5_000, Parallelism: 2, WorkDir: t.TempDir(), Timeout: 30 * time.Second, Log: &log,
		// Windows of 2 s at least: a repetition counts with MinCommits
		// moves of the offsets seen by the PollInterval samples, and on a
		// loaded machine (CI with the race detector) a 1 s window of both
		// repetitions fell short of them.
		Reps: 2, MinWindow: 2 * time.Second, Warmup: 100 * time.Millisecond, MaxEvents: 2_000_000, BrokerPID: -1,
	}
	ms := runClean(t, cfg, &log)
	var s Summary
	for _, m := range ms {
		s.add(m)
	}
	// Sizing runs from cfg.Events on, each followed by a larger run of
	// its repetition, and one counted run per repetition, 1 then 2. A
	// repetition whose window falls short on a loaded machine sizes
	// again, as the first did, so the second may run a larger input.
	ok := len(ms) >= 3 && ms[0].Events == cfg.Events && ms[0].Sizing && !ms[len(ms)-1].Sizing
	rep := 1
	for i, m := range ms {
		ok = ok && m.Rep == rep
		if i > 0 {
			ok = ok && m.Events >= ms[i-1].Events
			if ms[i-1].Sizing {
				ok = ok && m.Events > ms[i-1].Events
			}
		}
		if !m.Sizing {
			rep++
		}
	}
	if !ok || rep != 3 || ms[len(ms)-1].Events <= cfg.Events {
		for _, m := range ms {
			t.Logf("%+v", *m)
		}
		t.Fatalf("%d runs; want sizing runs from %d events on, then repetitions 1 and 2 on larger inputs", len(ms), cfg.Events)
	}
	// A repetition counts only with five commits in its window; on a
	// loaded machine (CI, with the race detector) the engine's rate moves
	// by 2x between repetitions of one input, so one may fall short of
	// them. The summary must still have one.
	if len(s.Counted) < 1 {
		t.Fatalf("%d runs counted, want 1 or 2", len(s.Counted))
	}
	for _, m := range s.Counted {
		// The resize aims at twice the minimum; a run may
		// still fall short under load, but not far.
		if m.Window < cfg.MinWindow/2 || m.WallRate <= 0 || m.CPURate <= 0 || m.EngineCPU <= 0 {
			t.Errorf("repetition %d: window %v, rates %.0f/%.0f, CPU %v", m.Rep, m.Window, m.WallRate, m.CPURate, m.EngineCPU)
		}
	}
	var tables strings.Builder
	WriteTables(&tables, cfg, ms)
	if !strings.Contains(tables.String(), "| copy | bare | ") || !strings.Contains(tables.String(), "2 repetitions") {
		t.Errorf("tables:\n%s", tables.String())
	}
	t.Logf("tables:\n%s", tables.String())
}

func TestSummaryMedianAndSpread(t *testing.T) {
	var s Summary
	for i, r := range []float64{300, 100, 200, 400} {
		s.add(&Measurement{Rep: i + 1, CPURate: r, Commits: MinCommits})
	}
	s.add(&Measurement{Rep: 1, CPURate: 1e9, Commits: MinCommits, Sizing: true})
	s.add(&Measurement{Rep: 3, CPURate: 1e9, Commits: MinCommits - 1})
	if got := s.Median(cpuRate); got != 250 {
		t.Errorf("median %v, want 250 (sizing runs and runs with too few commits left out)", got)
	}
	if got := s.spread(cpuRate); got != "250 (100-400)" {
		t.Errorf("spread %q", got)
	}
}

// fakeBroker starts franz-go's in-process broker for the test and returns
// its addresses.
func fakeBroker(t *testing.T) []string {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// runClean runs cfg, logs the runner's log, and fails the test on any
// problem.
func runClean(t *testing.T, cfg Config, log *strings.Builder) []*Measurement {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ms, problems, err := Run(ctx, cfg)
	t.Logf("runner log:\n%s", log.String())
	if err != nil {
		t.Fatalf("Run: %v (%q)", err, problems)
	}
	return ms
}

// TestRunCeilingBeside runs the copy beside each query: in every
// repetition of a query, before its engine, and never on its own; each
// ratio comes from the copy run of the same repetition.
func TestRunCeilingBeside(t *testing.T) {
	var log strings.Builder
	cfg := Config{
		Brokers: fakeBroker(t), Engines: []Engine{testEngineCmd("weir", "weir"), testEngineCmd("bare", "bare")},
		Queries: []string{"q0", "q1"},
		Passes:  []Pass{{Guarantee: "exactly-once", Interval: 50 * time.Millisecond}},
		Events:  5_000, Parallelism: 2, WorkDir: t.TempDir(), Timeout: 30 * time.Second, Log: &log,
		// Windows long enough for MinCommits: the first run of each
		// engine sizes its input (the copy's once, for both queries).
		Reps: 2, MinWindow: time.Second, Warmup: 100 * time.Millisecond, MaxEvents: 2_000_000,
		BrokerPID: -1, CeilingBeside: true,
	}
	ms := runClean(t, cfg, &log)
	var got []string
	for _, m := range ms {
		if !m.Sizing {
			got = append(got, fmt.Sprintf("%s %s/%s %d", m.Engine, m.Query, m.Beside, m.Rep))
		}
	}
	want := []string{
		"bare copy/q0 1", "weir q0/ 1", "bare copy/q0 2", "weir q0/ 2",
		"bare copy/q1 1", "weir q1/ 1", "bare copy/q1 2", "weir q1/ 2",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("runs %q, want %q", got, want)
	}
	var tables strings.Builder
	WriteTables(&tables, cfg, ms)
	t.Logf("tables:\n%s", tables.String())
	for _, q := range []string{"q0", "q1"} {
		var s Summary
		for _, m := range ms {
			if m.Engine == "weir" && m.Query == q {
				s.add(m)
			}
		}
		if len(s.Counted) == 0 {
			t.Logf("%s: no run counted (too few commits on a loaded machine)", q)
			continue
		}
		if !strings.Contains(tables.String(), "| "+q+" | weir | ") || pairedRatios(&s, ms) == "" {
			t.Errorf("%s: no ratio to the copy beside it", q)
		}
	}
}

// TestPairedRatios pairs each run with the copy of its repetition.
func TestPairedRatios(t *testing.T) {
	run := func(engine, q, beside string, rep int, cpu float64) *Measurement {
		return &Measurement{Engine: engine, Query: q, Beside: beside, Rep: rep, CPURate: cpu, WallRate: cpu / 2, Commits: MinCommits}
	}
	ms := []*Measurement{
		run("bare", CopyQuery, "q1", 1, 400), run("weir", "q1", "", 1, 300),
		run("bare", CopyQuery, "q1", 2, 200), run("weir", "q1", "", 2, 170),
		run("bare", CopyQuery, "q2", 3, 100), run("weir", "q1", "", 3, 50), // no copy beside q1 in rep 3
	}
	var s Summary
	for _, m := range ms {
		if m.Engine == "weir" {
			s.add(m)
		}
	}
	// Ratios 0.75 and 0.85, each run over its own copy; rep 3 has none.
	if got, want := pairedRatios(&s, ms), "0.80 / 0.80 (CPU 0.75-0.85)"; got != want {
		t.Errorf("pairedRatios = %q, want %q", got, want)
	}
}

// TestStallContext ends the context only once progress stops.
func TestStallContext(t *testing.T) {
	ctx, progress, cancel := stallContext(context.Background(), 200*time.Millisecond)
	defer cancel()
	// Five stalls' worth of steady progress, a reader's records.
	reads := time.NewTicker(20 * time.Millisecond)
	defer reads.Stop()
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); <-reads.C {
		if ctx.Err() != nil {
			t.Fatalf("ended while progressing: %v", context.Cause(ctx))
		}
		progress()
	}
	select {
	case <-ctx.Done():
		if cause := context.Cause(ctx); cause == nil || !strings.Contains(cause.Error(), "no progress for") {
			t.Fatalf("cause %v", cause)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("still alive 5 s after progress stopped")
	}
}
