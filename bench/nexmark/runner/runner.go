// Package runner runs the Nexmark queries on several stream processors in
// turn, on one broker and the same input, and measures each run: events
// per CPU-second of the engine's process, wall events per second, latency
// from input timestamp to committed output at a fixed rate, peak RSS and
// time to first output. It also compares the engines' results.
//
// One run is one engine, one query, one guarantee and one checkpoint
// interval, on topics of its own:
//
//  1. The input topic gets Config.Events events of the generator
//     (nexmark.WriteEvents), before the engine starts.
//  2. The engine starts. The runner polls its group's committed offsets on
//     the input every PollInterval; the throughput figures are taken from
//     the moment 10% of the input is committed to the moment all of it is
//     and the group has caught up on its repartition topics too (see
//     committed), so start-up, JIT warm-up and the first checkpoint are
//     left out of both (start-up shows in time to first output instead).
//  3. Live phase: the runner writes the events that follow at LiveRate
//     events per second of wall time for LiveFor, each stamped with the
//     moment it is written (the stream's event time continues at the
//     present), and a read_committed consumer of the output measures, for
//     every result stamped at or after the phase's start, the time it was
//     read minus its timestamp. Every engine stamps a result with the
//     event time it is about: the input's, or its window's last
//     millisecond.
//  4. The historical results (stamped before the live phase) of the
//     engines are compared as multisets.
package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/bench/nexmark"
)

// Pass is a set of runs with one guarantee and interval.
type Pass struct {
	Guarantee string
	Interval  time.Duration
	// Queries run in this pass (the bare client's copy is added); nil is
	// Config.Queries.
	Queries []string
	// Live runs the live phase, for latency (and the cross-check, whose
	// windows only close once the live events move event time on).
	Live bool
	// CrossCheck compares the engines' historical results.
	CrossCheck bool
}

func (p Pass) String() string {
	return fmt.Sprintf("%s, %v", p.Guarantee, p.Interval)
}

// Config is what Run runs.
type Config struct {
	Brokers []string
	Engines []Engine
	// Queries are the queries of the passes that name none.
	Queries []string
	Passes  []Pass
	// Events is how many events each run's input has before the engine
	// starts.
	Events int
	// LiveRate and LiveFor are the live phase's rate of events per second
	// and length; LiveForWindows is its length for the window queries,
	// whose results come a window and the watermark's delay after their
	// events.
	LiveRate       int
	LiveFor        time.Duration
	LiveForWindows time.Duration
	// Parallelism is each engine's parallelism, and the partition count
	// of the input and output topics.
	Parallelism int
	// Producer is every engine's producer batching; the zero Producer is
	// DefaultProducer.
	Producer Producer
	// WorkDir holds the engines' state and logs.
	WorkDir string
	// Timeout bounds a run's wait for progress: a run whose committed
	// offsets do not move for that long fails.
	Timeout time.Duration
	// Reference is the engine whose results the others must equal;
	// Strict are the engines for which a difference fails the run (the
	// rest are only reported).
	Reference string
	Strict    []string
	// Reps is how many times each engine runs each query of a pass (the
	// tables give the median and the spread); 0 is 1. Only the first
	// repetition runs the live phase and gives the cross-check's results.
	Reps int
	// Warmup is left out of every measured window: it starts once the
	// engine has committed 10% of its input and Warmup has passed since
	// its first commit (a JVM's compilers are at work in its first
	// seconds).
	Warmup time.Duration
	// MinWindow is the shortest measured window that counts: a run that
	// finishes its input sooner only sizes the engine's input, and runs
	// again with enough events for Warmup plus MinWindow at the rate it
	// showed (at most MaxEvents). 0 takes every window.
	MinWindow time.Duration
	// MaxEvents caps the input of a resized run; 0 is 20 million.
	MaxEvents int
	// CeilingBeside runs the bare copy beside every query instead of once
	// before them all: in each repetition of a query, just before the
	// engines, on an input of its own size. Each engine's ÷ ceiling is
	// then the median of its runs' ratios to the copy run of the same
	// repetition, minutes apart rather than the whole grid apart, so drift
	// in the machine's speed over a long grid stays out of the ratios.
	CeilingBeside bool
	// BrokerPID is the local broker's process, whose CPU time over each
	// measured window goes beside the engine's; 0 finds the process
	// running kafka.Kafka, if there is one; -1 measures none.
	BrokerPID int
	// Log gets a line per step.
	Log io.Writer
}

// PollInterval is how often a run reads committed offsets and CPU time.
const PollInterval = 100 * time.Millisecond

// MinCommits is how many commits a run must see in its measured window
// for its throughput to count: committed offsets move only at
// commits, so fewer make the figure more the interval's than the
// engine's.
const MinCommits = 5

// query returns the Weir query called q; the zero Query for CopyQuery.
func query(q string) nexmark.Query {
	wq, _ := nexmark.QueryByName(q)
	return wq
}

// Latency is the latency of the results of a live phase.
type Latency struct {
	P50, P99, Max time.Duration
	// N is how many results were measured.
	N int
}

// Measurement is one run's figures.
type Measurement struct {
	Engine    string
	Query     string
	Guarantee string
	Interval  time.Duration
	Events    int
	// Rep is the repetition this run belongs to, from 1.
	Rep int
	// Beside is the query a copy run (Config.CeilingBeside) is the
	// ceiling of; empty otherwise.
	Beside string `json:",omitempty"`
	// Sizing marks a run whose window was shorter than Config.MinWindow:
	// it only sized the next run's input, and its rates do not count.
	Sizing bool `json:",omitempty"`
	// WallRate and CPURate are events per second of wall time and per
	// second of the engine's CPU time (user+sys, all threads) over the
	// measured window: from 10% of the input committed (and
	// Config.Warmup after the first commit) to windowEnd of it.
	WallRate, CPURate float64
	// Window is the measured window's length; EngineCPU and BrokerCPU
	// are the CPU time the engine's process and the broker's used in it
	// (BrokerCPU is zero if the broker was not measured).
	Window, EngineCPU, BrokerCPU time.Duration
	// Commits is how many times the committed offsets moved in the
	// measured window; below MinCommits the rates are not reported.
	Commits int
	// FirstOutput is the time from the engine's start to its first
	// committed result; zero if there was none.
	FirstOutput time.Duration
	// PeakRSS is the most memory the engine's process held, in bytes.
	PeakRSS int64
	Latency *Latency
	// Err is why the run failed, if it did.
	Err string
	// Results are the historical results, if the pass cross-checks.
	Results Multiset `json:"-"`
	// Match is how Results compare with the reference engine's: "equal
	// (n)" or the difference; empty if not compared.
	Match string
}

// Failed reports whether the run failed.
func (m *Measurement) Failed() bool { return m.Err != "" }

// Run runs every pass, each query of it on every engine that runs it, the
// engines of a query one after the other (so that drift in the machine's
// load touches them alike). It returns the measurements, and an error
// listing the strict cross-check mismatches and failed runs, if any.
func Run(ctx context.Context, cfg Config) ([]*Measurement, []string, error) {
	if cfg.Parallelism <= 0 {
		cfg.Parallelism = 2
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 90 * time.Second
	}
	if cfg.Producer == (Producer{}) {
		cfg.Producer = DefaultProducer
	}
	if err := cfg.Producer.Validate(); err != nil {
		return nil, nil, err
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.Reps <= 0 {
		cfg.Reps = 1
	}
	if cfg.MaxEvents <= 0 {
		cfg.MaxEvents = 20_000_000
	}
	if cfg.BrokerPID == 0 {
		cfg.BrokerPID = findBroker()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		return nil, nil, err
	}
	defer cl.Close()
	r := &run{cfg: cfg, cl: cl, adm: kadm.NewClient(cl), id: time.Now().UTC().Format("150405")}
	var all []*Measurement
	var problems []string
	// The ceiling engines' input sizes, once sized: with CeilingBeside
	// they copy beside every query, and size once.
	ceilingSize := map[string]int{}
	for _, p := range cfg.Passes {
		queries := p.Queries
		if queries == nil {
			queries = cfg.Queries
		}
		if !cfg.CeilingBeside {
			queries = append([]string{CopyQuery}, queries...)
		}
		for _, q := range queries {
			// The first repetition's runs, for the cross-check.
			byEngine := map[string]*Measurement{}
			// Each engine's input size, once a run has sized it.
			size := map[string]int{}
			for rep := 1; rep <= cfg.Reps; rep++ {
				for _, e := range r.order(q) {
					if err := ctx.Err(); err != nil {
						return all, problems, err
					}
					eq, beside, sizes := q, "", size
					if !e.Runs(q) { // a ceiling beside q (order)
						eq, beside, sizes = CopyQuery, q, ceilingSize
					}
					events := cfg.Events
					if n, ok := sizes[e.Name]; ok {
						events = n
					}
					m := r.measure(ctx, e, eq, beside, p, events, rep)
					all = append(all, m)
					if rep == 1 && beside == "" {
						byEngine[e.Name] = m
					}
					for range maxResizes {
						n, resize := r.resize(m)
						if !resize {
							break
						}
						m.Sizing = true
						r.logf("%s %s: a %v window is shorter than %v: the run only sizes the input, %d events from now on",
							e.Name, eq, m.Window.Round(time.Millisecond), cfg.MinWindow, n)
						events = n
						m = r.measure(ctx, e, eq, beside, Pass{Guarantee: p.Guarantee, Interval: p.Interval}, events, rep)
						all = append(all, m)
					}
					sizes[e.Name] = events
					if m.Failed() {
						problems = append(problems, fmt.Sprintf("%s %s (%s): %s", e.Name, eq, p, m.Err))
					}
				}
			}
			if p.CrossCheck && q != CopyQuery && !query(q).ProcessingTime {
				problems = append(problems, r.crossCheck(q, p, byEngine)...)
			}
		}
	}
	if len(problems) > 0 {
		return all, problems, fmt.Errorf("nexmark: %d problems:\n%s", len(problems), strings.Join(problems, "\n"))
	}
	return all, nil, nil
}

// order returns the engines that run q, in the configured order; with
// CeilingBeside, the ceiling engines (those that only copy) come first, to
// run the copy beside q.
func (r *run) order(q string) []Engine {
	var ceiling, rest []Engine
	for _, e := range r.cfg.Engines {
		switch {
		case e.Runs(q):
			rest = append(rest, e)
		case r.cfg.CeilingBeside && q != CopyQuery && e.Runs(CopyQuery):
			ceiling = append(ceiling, e)
		}
	}
	return append(ceiling, rest...)
}

type run struct {
	cfg Config
	cl  *kgo.Client
	adm *kadm.Client
	id  string
	n   int
	// copiedLive: a copy run beside a query has run the live phase.
	copiedLive bool
}

func (r *run) logf(format string, args ...any) {
	fmt.Fprintf(r.cfg.Log, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05.0")}, args...)...)
}

// crossCheck compares each engine's results of q with the reference
// engine's, and returns the strict engines' differences.
func (r *run) crossCheck(q string, p Pass, byEngine map[string]*Measurement) []string {
	ref, ok := byEngine[r.cfg.Reference]
	if !ok || ref.Failed() || ref.Results == nil {
		return nil
	}
	var problems []string
	for _, name := range slices.Sorted(maps.Keys(byEngine)) {
		m := byEngine[name]
		if name == ref.Engine || m.Failed() || m.Results == nil {
			continue
		}
		d := Diff(ref.Engine, ref.Results, name, m.Results, 5)
		if d == "" {
			m.Match = fmt.Sprintf("equal (%d)", ref.Results.Len())
			r.logf("cross-check %s: %s equals %s (%d results)", q, name, ref.Engine, ref.Results.Len())
			continue
		}
		m.Match, _, _ = strings.Cut(d, "\n")
		r.logf("cross-check %s: %s DIFFERS from %s: %s", q, name, ref.Engine, d)
		if slices.Contains(r.cfg.Strict, name) {
			problems = append(problems, fmt.Sprintf("cross-check %s (%s): %s", q, p, d))
		}
	}
	return problems
}

// measure runs q on e and measures it. Errors go into the measurement.
// Only the first repetition runs the live phase and cross-checks.
// A copy run beside a query (Config.CeilingBeside) names it in beside.
func (r *run) measure(ctx context.Context, e Engine, q, beside string, p Pass, events, rep int) *Measurement {
	r.n++
	if rep > 1 {
		p.Live, p.CrossCheck = false, false
	}
	if beside != "" {
		// A copy has nothing to cross-check, and one live phase of it
		// gives its latency.
		p.Live, p.CrossCheck = p.Live && !r.copiedLive, false
		r.copiedLive = r.copiedLive || p.Live
	}
	m := &Measurement{Engine: e.Name, Query: q, Beside: beside, Guarantee: p.Guarantee, Interval: p.Interval, Events: events, Rep: rep}
	name := fmt.Sprintf("nx%s-%02d-%s-%s", r.id, r.n, e.Name, q)
	spec := Spec{
		Brokers: r.cfg.Brokers, Query: q, Input: name + "-in", Output: name + "-out", Group: name,
		Guarantee: p.Guarantee, Interval: p.Interval, Parallelism: r.cfg.Parallelism,
		StateDir: filepath.Join(r.cfg.WorkDir, "state", name), Producer: r.cfg.Producer,
	}
	what := q
	if beside != "" {
		what += " beside " + beside
	}
	r.logf("%s %s (%s, repetition %d, %d events): starting", e.Name, what, p, rep, events)
	if err := r.do(ctx, e, spec, p, m); err != nil {
		m.Err = err.Error()
		r.logf("%s %s: FAILED: %v", e.Name, what, err)
	} else {
		r.logf("%s %s: %.0f events/s, %.0f events/CPU-s over %v (broker %v CPU), first output %v, peak RSS %d MiB, latency %s",
			e.Name, q, m.WallRate, m.CPURate, m.Window.Round(time.Millisecond), m.BrokerCPU.Round(10*time.Millisecond),
			m.FirstOutput.Round(time.Millisecond), m.PeakRSS>>20, m.Latency)
	}
	r.cleanup(spec)
	return m
}

func (l *Latency) String() string {
	if l == nil {
		return "-"
	}
	return fmt.Sprintf("p50 %v p99 %v (n=%d)", l.P50.Round(time.Millisecond), l.P99.Round(time.Millisecond), l.N)
}

func (r *run) do(ctx context.Context, e Engine, spec Spec, p Pass, m *Measurement) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, t := range []string{spec.Input, spec.Output} {
		if err := r.createTopic(ctx, t); err != nil {
			return err
		}
	}
	if err := nexmark.WriteEvents(ctx, r.cl, spec.Input, 0, m.Events, nexmark.Config{}); err != nil {
		return err
	}
	if err := os.MkdirAll(spec.StateDir, 0o755); err != nil {
		return err
	}
	logPath := filepath.Join(r.cfg.WorkDir, "logs", spec.Group+".log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return err
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()

	cmd := e.Command(spec)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", e.Name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	pid := cmd.Process.Pid
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				return fmt.Errorf("%s exited with %v after SIGTERM (log: %s)", e.Name, err, logPath)
			}
			return nil
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("%s did not stop within 30s of SIGTERM (log: %s)", e.Name, logPath)
		}
	}
	defer func() { _ = stop() }()
	died := func(err error) error {
		stopped = true
		return fmt.Errorf("%s exited during the run (%v); the end of its log %s:\n%s", e.Name, err, logPath, tail(logPath, 15))
	}

	// Time to first output, watched apart from the rest: it may come
	// only in the live phase.
	firstOutput := make(chan time.Duration, 1)
	go func() {
		defer close(firstOutput)
		t := time.NewTicker(PollInterval)
		defer t.Stop()
		for {
			if has, err := r.hasOutput(ctx, spec.Output); err == nil && has {
				firstOutput <- time.Since(start)
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	defer func() {
		cancel()
		m.FirstOutput = <-firstOutput
	}()

	// Throughput.
	w := newMeasuredWindow(int64(m.Events), r.cfg.Warmup)
	brokerOK := r.cfg.BrokerPID > 0
	lastMove := time.Now()
	tick := time.NewTicker(PollInterval)
	defer tick.Stop()
	for !w.done() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-exited:
			return died(err)
		case <-tick.C:
		}
		now := time.Now()
		off, caughtUp, err := r.committed(ctx, spec.Group, spec.Input)
		if err != nil {
			return err
		}
		cpu, err := cpuTime(pid)
		if err != nil {
			return fmt.Errorf("reading the CPU time of %s: %w", e.Name, err)
		}
		var broker time.Duration
		if brokerOK {
			if broker, err = cpuTime(r.cfg.BrokerPID); err != nil {
				brokerOK = false
			}
		}
		switch {
		case w.observe(sample{now: now, off: off, caughtUp: caughtUp, cpu: cpu, broker: broker}):
			lastMove = now
		case off >= w.n && !caughtUp:
			lastMove = now // the later stages are still at work
		case now.Sub(lastMove) > r.cfg.Timeout:
			return fmt.Errorf("%s committed no progress for %v: %d of %d events (log: %s)", e.Name, r.cfg.Timeout, off, w.n, logPath)
		}
	}
	w.measure(m, start, brokerOK)

	// Latency.
	var liveStart time.Time
	liveFor := r.cfg.LiveFor
	if query(spec.Query).Windowed && r.cfg.LiveForWindows > 0 {
		liveFor = r.cfg.LiveForWindows
	}
	if p.Live && liveFor > 0 {
		lat, start, err := r.live(ctx, spec, liveFor, exited)
		if err != nil {
			if errors.Is(err, errExited) {
				return died(err)
			}
			return err
		}
		m.Latency, liveStart = lat, start
	}
	if rss, err := peakRSS(pid); err == nil {
		m.PeakRSS = rss
	}
	if err := stop(); err != nil {
		return err
	}
	if p.CrossCheck && !liveStart.IsZero() {
		// However long the output, the read fails only when it stalls: a
		// fixed deadline failed a 12M-event q1 whose read was well on its
		// way.
		rctx, read, cancel := stallContext(ctx, r.cfg.Timeout)
		defer cancel()
		r.waitSettled(rctx, spec.Output)
		read()
		res, err := readResults(rctx, r.cfg.Brokers, spec.Output, liveStart, read)
		if err != nil {
			if cause := context.Cause(rctx); cause != nil && ctx.Err() == nil {
				err = cause
			}
			return fmt.Errorf("reading the results: %w", err)
		}
		m.Results = res
	}
	return nil
}

var errExited = errors.New("engine exited")

// stallContext returns a context that ends stall after the last call of
// progress (or of stallContext), with an error saying so as its cause, and
// its cancel function.
func stallContext(ctx context.Context, stall time.Duration) (_ context.Context, progress func(), cancel func()) {
	ctx, cancelCause := context.WithCancelCause(ctx)
	var last atomic.Int64
	progress = func() { last.Store(time.Now().UnixNano()) }
	progress()
	go func() {
		t := time.NewTicker(min(stall/4, time.Second))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				if idle := now.Sub(time.Unix(0, last.Load())); idle > stall {
					cancelCause(fmt.Errorf("no progress for %v", idle.Round(time.Millisecond)))
					return
				}
			}
		}
	}()
	return ctx, progress, func() { cancelCause(nil) }
}

// live writes events at LiveRate for LiveFor, stamped with the present,
// and measures the latency of the results stamped from its start on.
func (r *run) live(ctx context.Context, spec Spec, liveFor time.Duration, exited <-chan error) (*Latency, time.Time, error) {
	ends, err := r.adm.ListEndOffsets(ctx, spec.Output)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("listing the end of %s: %w", spec.Output, err)
	}
	from := map[string]map[int32]kgo.Offset{spec.Output: {}}
	ends.Each(func(o kadm.ListedOffset) { from[spec.Output][o.Partition] = kgo.NewOffset().At(o.Offset) })
	reader, err := kgo.NewClient(kgo.SeedBrokers(r.cfg.Brokers...), kgo.ConsumePartitions(from),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		return nil, time.Time{}, err
	}
	defer reader.Close()

	start := time.Now().Truncate(time.Millisecond)
	rate := r.cfg.LiveRate
	gcfg := nexmark.Config{
		EventsPerSecond: rate,
		// Event Events, the first live one, happens at start.
		BaseTime: start.Add(-time.Duration(int64(r.cfg.Events) * int64(time.Second) / int64(rate))),
	}
	g := nexmark.NewGenerator(gcfg)
	g.SkipTo(int64(r.cfg.Events))
	end := start.Add(liveFor)

	var samples []time.Duration
	readCtx, stopReading := context.WithCancel(ctx)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		for readCtx.Err() == nil {
			fs := reader.PollFetches(readCtx)
			now := time.Now()
			fs.EachRecord(func(rec *kgo.Record) {
				if !rec.Timestamp.Before(start) {
					samples = append(samples, now.Sub(rec.Timestamp))
				}
			})
		}
	}()
	defer func() { stopReading(); <-readDone }()

	var perr firstErr
	promise := func(_ *kgo.Record, err error) { perr.set(err) }
	for {
		e := g.Next()
		t := e.Time()
		if !t.Before(end) {
			break
		}
		if d := time.Until(t); d > time.Millisecond {
			select {
			case <-ctx.Done():
				return nil, start, ctx.Err()
			case err := <-exited:
				return nil, start, fmt.Errorf("%w: %v", errExited, err)
			case <-time.After(d):
			}
		}
		r.cl.Produce(ctx, &kgo.Record{Topic: spec.Input, Value: nexmark.AppendEvent(make([]byte, 0, 256), e), Timestamp: t}, promise)
	}
	if err := perr.take(); err != nil {
		return nil, start, fmt.Errorf("writing live events: %w", err)
	}
	// The results of the last events: a checkpoint interval or two, and
	// the watermark's delay for windows.
	drain := 2*spec.Interval + time.Second
	select {
	case <-ctx.Done():
		return nil, start, ctx.Err()
	case err := <-exited:
		return nil, start, fmt.Errorf("%w: %v", errExited, err)
	case <-time.After(drain):
	}
	stopReading()
	<-readDone
	if len(samples) == 0 {
		return &Latency{}, start, nil
	}
	slices.Sort(samples)
	at := func(q float64) time.Duration { return samples[min(len(samples)-1, int(q*float64(len(samples))))] }
	return &Latency{P50: at(0.50), P99: at(0.99), Max: samples[len(samples)-1], N: len(samples)}, start, nil
}

// committed is the sum of group's committed offsets on topic, and whether
// the group has also caught up on every other topic it commits offsets on:
// the repartition topics between the stages of Weir and Kafka Streams,
// which the group reads too (Flink's checkpoint covers its whole job, so
// its source offsets commit only once every operator has the input).
// Caught up is within one offset of the last stable offset, which under
// exactly once is often a transaction marker after the last record.
func (r *run) committed(ctx context.Context, group, topic string) (int64, bool, error) {
	resp, err := r.adm.FetchOffsets(ctx, group)
	if err != nil {
		// A group not yet known to the coordinator has no offsets (on a new
		// broker, the offsets topic may not even have its coordinator yet).
		if errors.Is(err, kerr.GroupIDNotFound) || errors.Is(err, kerr.CoordinatorLoadInProgress) || errors.Is(err, kerr.CoordinatorNotAvailable) {
			return 0, false, nil
		}
		return 0, false, fmt.Errorf("fetching the offsets of group %s: %w", group, err)
	}
	var sum int64
	internal := map[string]map[int32]int64{}
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Err != nil || o.At < 0 {
			return
		}
		if o.Topic == topic {
			sum += o.At
			return
		}
		if internal[o.Topic] == nil {
			internal[o.Topic] = map[int32]int64{}
		}
		internal[o.Topic][o.Partition] = o.At
	})
	if len(internal) == 0 {
		return sum, true, nil
	}
	topics := slices.Collect(maps.Keys(internal))
	ends, err := r.adm.ListCommittedOffsets(ctx, topics...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return 0, false, fmt.Errorf("listing the ends of %v: %w", topics, err)
	}
	caughtUp := true
	ends.Each(func(o kadm.ListedOffset) {
		if at, ok := internal[o.Topic][o.Partition]; !ok || at < o.Offset-1 {
			if o.Offset > 0 {
				caughtUp = false
			}
		}
	})
	return sum, caughtUp, nil
}

// waitSettled waits, up to 30s, until topic's last stable offsets equal
// its end offsets: once the engine has stopped nothing is open, but the
// broker writes a transaction's markers after it answers the commit, and
// until then a read_committed reader would miss the last results.
func (r *run) waitSettled(ctx context.Context, topic string) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		lso, err1 := r.adm.ListCommittedOffsets(ctx, topic)
		end, err2 := r.adm.ListEndOffsets(ctx, topic)
		settled := err1 == nil && err2 == nil
		end.Each(func(o kadm.ListedOffset) {
			l, ok := lso.Lookup(o.Topic, o.Partition)
			settled = settled && ok && l.Offset == o.Offset
		})
		if settled {
			return
		}
		select {
		case <-ctx.Done():
			r.logf("%s: last stable offsets still short of the end after 30s; reading what is committed", topic)
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// hasOutput reports whether topic has a committed record.
func (r *run) hasOutput(ctx context.Context, topic string) (bool, error) {
	lso, err := r.adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		return false, fmt.Errorf("listing the end of %s: %w", topic, err)
	}
	has := false
	lso.Each(func(o kadm.ListedOffset) { has = has || (o.Err == nil && o.Offset > 0) })
	return has, nil
}

// topicConfig keeps records whatever their timestamps: the input's are
// 2024's (nexmark.BaseTime), and the broker's time retention would delete
// them, and the historical results, while the engines read them.
var topicConfig = map[string]*string{"retention.ms": kadm.StringPtr("-1")}

func (r *run) createTopic(ctx context.Context, topic string) error {
	resp, err := r.adm.CreateTopic(ctx, int32(r.cfg.Parallelism), -1, topicConfig, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return fmt.Errorf("creating %s: %w", topic, err)
	}
	return nil
}

// cleanup deletes the run's topics (the engine's internal ones too: those
// named after its group) and its state.
func (r *run) cleanup(spec Spec) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if topics, err := r.adm.ListTopics(ctx); err == nil {
		var del []string
		for _, t := range topics.Names() {
			if strings.HasPrefix(t, spec.Group) {
				del = append(del, t)
			}
		}
		if len(del) > 0 {
			if _, err := r.adm.DeleteTopics(ctx, del...); err != nil {
				r.logf("deleting %v: %v", del, err)
			}
		}
	}
	_ = os.RemoveAll(spec.StateDir)
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// windowEnd is the percentage of the input at which a measured window
// ends. Not at all of it: an engine's last commits say when its work
// ended only as well as its commit path does at the end of an input.
// Flink's Kafka source commits a checkpoint's offsets between fetches,
// and once the input is read its fetch is a poll that waits out a
// hard-coded 10 s for records that do not come: the last commits came up
// to 10 s after the work, with Flink checkpointing (0.3-0.4 cores)
// meanwhile (bench/README.md). Its stall began 0.4-0.7% short of the end
// (one or two checkpoints' worth), so 99% leaves every engine's end out.
const windowEnd = 99

// maxResizes bounds the runs that size one engine's input.
const maxResizes = 3

// resize reports whether m's window was too short to count, and the input
// size that gives the engine Warmup plus MinWindow at the rate m showed,
// twice over: the window spans 10% to windowEnd of the input, and an
// engine's rate moves by up to 2x between runs on a loaded machine (the
// bare copy's, under the race detector in CI), which must not make a
// later repetition resize again.
func (r *run) resize(m *Measurement) (int, bool) {
	if r.cfg.MinWindow <= 0 || m.Failed() || m.Window >= r.cfg.MinWindow || m.WallRate <= 0 || m.Events >= r.cfg.MaxEvents {
		return 0, false
	}
	need := m.WallRate * (r.cfg.Warmup + r.cfg.MinWindow).Seconds() * 2 / 0.9
	return min(r.cfg.MaxEvents, max(m.Events*2, int(need))), true
}
