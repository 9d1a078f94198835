package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/weirstream/weir/bench/nexmark"
	"github.com/weirstream/weir/bench/nexmark/runner"
)

// bare runs the ceiling with the engines' command line.
func bare(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bare", flag.ContinueOnError)
	brokers := fs.String("brokers", defaultBrokers(), "Kafka seed brokers, comma separated")
	query := fs.String("query", runner.CopyQuery, "must be "+runner.CopyQuery+": the bare client only copies")
	in := fs.String("input", "", "input topic")
	out := fs.String("output", "", "output topic")
	group := fs.String("group", "", "consumer group (and transactional id prefix)")
	guarantee := fs.String("guarantee", "exactly-once", "exactly-once or at-least-once")
	interval := fs.Int("interval-ms", 1000, "commit interval in milliseconds")
	fs.Int("parallelism", 2, "ignored: one client, GOMAXPROCS threads")
	fs.String("state-dir", "", "ignored: the copy keeps no state")
	producer := producerFlags(fs)
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	p, err := producer()
	if err != nil {
		return usageError{err}
	}
	switch {
	case *query != runner.CopyQuery:
		return usageError{fmt.Errorf("-query %q: the bare client only runs %q", *query, runner.CopyQuery)}
	case *in == "" || *out == "" || *group == "":
		return usageError{errors.New("--input, --output and --group are required")}
	case *guarantee != "exactly-once" && *guarantee != "at-least-once":
		return usageError{fmt.Errorf("--guarantee %q: want exactly-once or at-least-once", *guarantee)}
	case *interval <= 0:
		return usageError{fmt.Errorf("--interval-ms %d: want a positive interval", *interval)}
	}
	return runner.Bare{
		Brokers: strings.Split(*brokers, ","), Input: *in, Output: *out, Group: *group,
		ExactlyOnce: *guarantee == "exactly-once", Interval: time.Duration(*interval) * time.Millisecond,
		Producer: p,
	}.Run(ctx)
}

// producerFlags registers the producer batching flags that every engine
// takes (runner.Producer.Args) on fs, and returns what parses them after
// fs.Parse.
func producerFlags(fs *flag.FlagSet) func() (runner.Producer, error) {
	d := runner.DefaultProducer
	batch := fs.Int("producer-batch-bytes", d.BatchBytes, "largest produced batch of a partition, in bytes (batch.size)")
	linger := fs.Int("producer-linger-ms", int(d.Linger.Milliseconds()), "how long a produced batch waits to fill (linger.ms)")
	compression := fs.String("producer-compression", d.Compression, "produced batches' codec: none, gzip, snappy, lz4 or zstd")
	return func() (runner.Producer, error) {
		p := runner.Producer{BatchBytes: *batch, Linger: time.Duration(*linger) * time.Millisecond, Compression: *compression}
		return p, p.Validate()
	}
}

// dump prints a topic's committed results, normalised and sorted.
func dump(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("dump", flag.ContinueOnError)
	brokers := fs.String("brokers", defaultBrokers(), "Kafka seed brokers, comma separated")
	topic := fs.String("topic", "", "the topic to print")
	before := fs.String("before", "", "print only records stamped before this time (RFC 3339)")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if *topic == "" {
		return usageError{errors.New("-topic is required")}
	}
	var cut time.Time
	if *before != "" {
		t, err := time.Parse(time.RFC3339Nano, *before)
		if err != nil {
			return usageError{fmt.Errorf("-before: %w", err)}
		}
		cut = t
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	res, err := runner.ReadResults(ctx, strings.Split(*brokers, ","), *topic, cut)
	if err != nil {
		return err
	}
	for _, k := range slices.Sorted(maps.Keys(res)) {
		for range res[k] {
			fmt.Fprintln(out, k)
		}
	}
	return nil
}

// bench runs the benchmark.
func bench(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	brokers := fs.String("brokers", defaultBrokers(), "Kafka seed brokers, comma separated")
	engines := fs.String("engines", "weir,kstreams,flink,bare", "engines to run, in this order for each query")
	queries := fs.String("queries", "all", "queries of the main pass (all: every query Weir has)")
	events := fs.Int("events", 500_000, "events in each run's input, before the engine starts")
	liveRate := fs.Int("live-rate", 5_000, "events per second of the live phase (latency)")
	liveFor := fs.Duration("live-for", 5*time.Second, "length of the live phase")
	liveForWindows := fs.Duration("live-for-windows", 12*time.Second, "length of the live phase of the window queries (q5, q7, q8, q11, q12)")
	interval := fs.Duration("interval", 100*time.Millisecond, "checkpoint/commit interval of the main passes")
	alsoInterval := fs.Duration("also-interval", time.Second, "the interval of the last pass")
	aloQueries := fs.String("alo-queries", "q1,q5", "queries also run at least once, for the exactly-once/at-least-once ratio (none: skip)")
	alsoQueries := fs.String("also-queries", "q1", "queries also run exactly once at -also-interval (none: skip)")
	parallelism := fs.Int("parallelism", 2, "each engine's parallelism and the topics' partition count")
	kstreams := fs.String("kstreams", "bench/nexmark/kstreams/run.sh", "Kafka Streams launcher")
	flink := fs.String("flink", "bench/nexmark/flink/run.sh", "Flink launcher")
	scripts := fs.String("scripts", "", "more engines, NAME=LAUNCHER,... (launchers taking the same command line as -flink's; name them in -engines), e.g. to run two builds of one engine side by side")
	workDir := fs.String("workdir", "", "engines' state and logs (default: a new temporary directory)")
	timeout := fs.Duration("timeout", 90*time.Second, "fail a run whose committed offsets stop moving this long")
	readme := fs.String("readme", "", "also write the tables into this file, between the nexmark-results markers")
	jsonOut := fs.String("json", "", "also write the measurements to this file as JSON")
	reps := fs.Int("reps", 3, "repetitions of every run (the tables give medians and ranges)")
	warmup := fs.Duration("warmup", 30*time.Second, "left out of each measured window after the engine's first commit (long enough for the JVM engines' compilers to settle)")
	minWindow := fs.Duration("min-window", 10*time.Second, "shortest measured window that counts: an engine that finishes sooner runs again on a larger input (0: any)")
	maxEvents := fs.Int("max-events", 20_000_000, "largest input a resized run gets")
	ceilingBeside := fs.Bool("ceiling-beside", false, "run the bare copy beside every query, just before its engines in each repetition, and take each engine's ÷ ceiling from the copy run of the same repetition (longer; keeps drift over the grid out of the ratios)")
	brokerPID := fs.Int("broker-pid", 0, "the broker's process, whose CPU time goes beside each engine's (0: the local process running kafka.Kafka; -1: none)")
	profileDir := fs.String("profile", "", "write a CPU profile of every Weir run into this directory (go tool pprof bin/nexmark FILE)")
	producer := producerFlags(fs)
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	p, err := producer()
	if err != nil {
		return usageError{err}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cfg := runner.Config{
		Brokers: strings.Split(*brokers, ","), Events: *events, LiveRate: *liveRate, LiveFor: *liveFor, LiveForWindows: *liveForWindows,
		Parallelism: *parallelism, WorkDir: *workDir, Timeout: *timeout, Log: out,
		Reference: "weir", Strict: []string{"flink"}, Producer: p,
		Reps: *reps, Warmup: *warmup, MinWindow: *minWindow, MaxEvents: *maxEvents, BrokerPID: *brokerPID,
		CeilingBeside: *ceilingBeside,
	}
	more := map[string]string{}
	for _, kv := range list(*scripts) {
		name, script, ok := strings.Cut(kv, "=")
		if !ok || name == "" || script == "" {
			return usageError{fmt.Errorf("-scripts: %q is not NAME=LAUNCHER", kv)}
		}
		more[name] = script
	}
	for _, name := range list(*engines) {
		if script, ok := more[name]; ok {
			if _, err := os.Stat(script); err != nil {
				return usageError{fmt.Errorf("engine %s: %w", name, err)}
			}
			cfg.Engines = append(cfg.Engines, runner.Script(name, script))
			continue
		}
		switch name {
		case "weir":
			cfg.Engines = append(cfg.Engines, runner.Weir(self, *profileDir))
		case "bare":
			cfg.Engines = append(cfg.Engines, runner.BareEngine(self))
		case "kstreams", "flink":
			script := map[string]string{"kstreams": *kstreams, "flink": *flink}[name]
			if _, err := os.Stat(script); err != nil {
				return usageError{fmt.Errorf("engine %s: %w (build it first: make bench-nexmark does)", name, err)}
			}
			cfg.Engines = append(cfg.Engines, runner.Script(name, script))
		default:
			return usageError{fmt.Errorf("-engines: no engine %q (have weir, kstreams, flink, bare and those of -scripts)", name)}
		}
	}
	if len(cfg.Engines) == 0 {
		return usageError{errors.New("-engines: none given")}
	}
	known := func(flagName string, qs []string) error {
		for _, q := range qs {
			if _, err := nexmark.QueryByName(q); err != nil {
				return usageError{fmt.Errorf("%s: %w", flagName, err)}
			}
		}
		return nil
	}
	if *queries == "all" {
		for _, q := range nexmark.Queries {
			cfg.Queries = append(cfg.Queries, q.Name)
		}
	} else {
		cfg.Queries = list(*queries)
	}
	alo, also := list(*aloQueries), list(*alsoQueries)
	for f, qs := range map[string][]string{"-queries": cfg.Queries, "-alo-queries": alo, "-also-queries": also} {
		if err := known(f, qs); err != nil {
			return err
		}
	}
	if *events < 1000 || *liveRate <= 0 || *interval <= 0 || *alsoInterval <= 0 {
		return usageError{errors.New("-events must be at least 1000, -live-rate and the intervals positive")}
	}
	if *reps < 1 || *warmup < 0 || *minWindow < 0 || *maxEvents < *events {
		return usageError{errors.New("-reps must be at least 1, -warmup and -min-window not negative, -max-events at least -events")}
	}
	cfg.Passes = []runner.Pass{{Guarantee: "exactly-once", Interval: *interval, Live: true, CrossCheck: true}}
	if len(alo) > 0 {
		cfg.Passes = append(cfg.Passes, runner.Pass{Guarantee: "at-least-once", Interval: *interval, Queries: alo})
	}
	if len(also) > 0 {
		cfg.Passes = append(cfg.Passes, runner.Pass{Guarantee: "exactly-once", Interval: *alsoInterval, Queries: also, Live: true})
	}
	if *profileDir != "" {
		if err := os.MkdirAll(*profileDir, 0o755); err != nil {
			return err
		}
	}
	if cfg.WorkDir == "" {
		if cfg.WorkDir, err = os.MkdirTemp("", "nexmark-bench-"); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "nexmark bench: %d passes, engines %s, logs in %s\n", len(cfg.Passes), *engines, filepath.Join(cfg.WorkDir, "logs"))
	began := time.Now()
	ms, problems, runErr := runner.Run(ctx, cfg)
	took := time.Since(began)

	var tables bytes.Buffer
	fmt.Fprintf(&tables, "Measured %s on %s; the broker (Kafka 4.4, one KRaft node) on the same machine. The run took %v:\n\n",
		began.UTC().Format("2006-01-02"), machine(), took.Round(time.Second))
	fmt.Fprintf(&tables, "    bin/nexmark bench %s\n", strings.Join(args, " "))
	runner.WriteTables(&tables, cfg, ms)
	if len(problems) > 0 {
		fmt.Fprintln(&tables, "\nProblems:")
		fmt.Fprintln(&tables)
		for _, p := range problems {
			fmt.Fprintf(&tables, "- %s\n", strings.ReplaceAll(p, "\n", "\n  "))
		}
	}
	fmt.Fprintln(out)
	out.Write(tables.Bytes())
	if *jsonOut != "" {
		b, err := json.MarshalIndent(ms, "", "  ")
		if err == nil {
			err = os.WriteFile(*jsonOut, b, 0o644)
		}
		if err != nil {
			return err
		}
	}
	if *readme != "" {
		if err := replaceSection(*readme, tables.String()); err != nil {
			return err
		}
	}
	return runErr
}

func list(s string) []string {
	if s == "" || s == "none" {
		return nil
	}
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// Markers of the generated section in the README.
const (
	beginMarker = "<!-- nexmark-results:begin (written by nexmark bench -readme) -->"
	endMarker   = "<!-- nexmark-results:end -->"
)

// replaceSection replaces what lies between the markers in the file at
// path with text.
func replaceSection(path, text string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(b)
	i, j := strings.Index(s, beginMarker), strings.Index(s, endMarker)
	if i < 0 || j < i {
		return fmt.Errorf("%s has no %q ... %q section", path, beginMarker, endMarker)
	}
	s = s[:i+len(beginMarker)] + "\n" + text + "\n" + s[j:]
	return os.WriteFile(path, []byte(s), 0o644)
}

// machine describes this machine: CPU model, cores, memory.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			mem = fmt.Sprintf(", %d GiB", (kb+(1<<19))>>20)
		}
	}
	return fmt.Sprintf("%s, %d cores%s, %s/%s", model, runtime.NumCPU(), mem, runtime.GOOS, runtime.GOARCH)
}
