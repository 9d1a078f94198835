// Command nexmark writes the Nexmark event topic, runs the Nexmark
// queries as Weir jobs, and runs the benchmark against other stream
// processors on the same broker.
//
//	nexmark gen [-brokers host:port,...] [-topic nexmark] [-events 10000000]
//	            [-rate 10000] [-seed 0] [-partitions 8]
//	            [-start-event 0] [-base-time 2024-01-01T00:00:00Z]
//	nexmark run -query q5 [-in nexmark] [-out nexmark-q5] [-producer-batch-bytes N]
//	            [-producer-linger-ms N] [-producer-compression snappy]
//	nexmark bare --brokers B --input IN --output OUT --group G
//	            --guarantee exactly-once|at-least-once --interval-ms 1000 ...
//	nexmark dump -topic OUT [-brokers B] [-before RFC3339]
//	nexmark bench [-engines weir,kstreams,flink,bare] [-queries q0,q1,...]
//	            [-events 200000] [-readme bench/README.md] ...
//	nexmark list
//
// gen creates the topic if it is missing (with -partitions partitions) and
// writes -events events of package nexmark's generator, round robin over
// its partitions, as fast as the broker takes them; -rate is the rate of
// event time, not of writing. -start-event and -base-time write a later
// part of a stream: events from -start-event on, event 0 being at
// -base-time. run runs one query until SIGINT or SIGTERM, configured as
// every Weir job is (WEIR_BROKERS, WEIR_GROUP, ...), with the producer
// batching of the -producer flags (by default franz-go's own); the output
// topic must exist. bare is the benchmark's ceiling (runner.Bare), with the command
// line every engine of the benchmark takes (runner.ContractArgs). dump
// prints a topic's committed results, normalised (runner.Normalize) and
// sorted, one per line, for diff. bench runs the benchmark (package
// runner); see bench/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/bench/nexmark"
	"github.com/weirstream/weir/engine"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	var usage usageError
	switch {
	case errors.As(err, &usage):
		fmt.Fprintln(os.Stderr, "nexmark:", err)
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "nexmark:", err)
		os.Exit(1)
	}
}

// usageError is a mistake in the command line.
type usageError struct{ error }

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return usageError{errors.New("want a command: gen, run, bare, dump, bench or list")}
	}
	switch args[0] {
	case "gen":
		return gen(ctx, args[1:], out)
	case "run":
		return runQuery(ctx, args[1:])
	case "bare":
		return bare(ctx, args[1:])
	case "dump":
		return dump(ctx, args[1:], out)
	case "bench":
		return bench(ctx, args[1:], out)
	case "list":
		for _, q := range nexmark.Queries {
			fmt.Fprintln(out, q.Name)
		}
		return nil
	}
	return usageError{fmt.Errorf("unknown command %q: want gen, run, bare, dump, bench or list", args[0])}
}

func defaultBrokers() string {
	if b := os.Getenv("WEIR_BROKERS"); b != "" {
		return b
	}
	return "localhost:9092"
}

func gen(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	brokers := fs.String("brokers", defaultBrokers(), "Kafka seed brokers, comma separated (default $WEIR_BROKERS)")
	topic := fs.String("topic", "nexmark", "topic to write")
	events := fs.Int("events", 10_000_000, "how many events to write")
	rate := fs.Int("rate", 10_000, "events per second of event time")
	seed := fs.Uint64("seed", 0, "generator seed")
	partitions := fs.Int("partitions", 8, "partitions of the topic, if gen creates it")
	startEvent := fs.Int64("start-event", 0, "number of the first event written (a later part of the stream)")
	baseTime := fs.String("base-time", nexmark.BaseTime.Format(time.RFC3339), "time of event 0 (RFC 3339)")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	base, err := time.Parse(time.RFC3339Nano, *baseTime)
	if err != nil {
		return usageError{fmt.Errorf("-base-time: %w", err)}
	}
	if *startEvent < 0 || *events < 0 {
		return usageError{errors.New("-start-event and -events cannot be negative")}
	}
	cfg := nexmark.Config{Seed: *seed, EventsPerSecond: *rate, BaseTime: base}
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(*brokers, ",")...),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	// The events carry their dateTime as timestamp, 2024's by default:
	// with the broker's time retention they would be deleted while read.
	resp, err := kadm.NewClient(cl).CreateTopics(ctx, int32(*partitions), -1,
		map[string]*string{"retention.ms": kadm.StringPtr("-1")}, *topic)
	if err != nil {
		return fmt.Errorf("creating %s: %w", *topic, err)
	}
	for _, r := range resp {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("creating %s: %w", r.Topic, r.Err)
		}
	}
	start := time.Now()
	if err := nexmark.WriteEvents(ctx, cl, *topic, *startEvent, *events, cfg); err != nil {
		return err
	}
	took := time.Since(start)
	fmt.Fprintf(out, "wrote %d events to %s in %v (%.0f events/s)\n", *events, *topic, took.Round(time.Millisecond), float64(*events)/took.Seconds())
	return nil
}

func runQuery(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	name := fs.String("query", "", "query to run: q0, q1, ... (see nexmark list)")
	in := fs.String("in", "nexmark", "the event topic")
	out := fs.String("out", "", "the output topic (default nexmark-<query>)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	producer := producerFlags(fs)
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	p, err := producer()
	if err != nil {
		return usageError{err}
	}
	kopts, err := p.KgoOpts()
	if err != nil {
		return usageError{err}
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	q, err := nexmark.QueryByName(*name)
	if err != nil {
		return usageError{err}
	}
	if *out == "" {
		*out = "nexmark-" + q.Name
	}
	job := engine.NewJob("nexmark-"+q.Name, engine.FromEnv(), engine.WithKafkaOpts(kopts...))
	q.Build(job, *in, *out)
	// As a job's own binary (Job.Main) runs: its memory budget sets the
	// Go runtime's limit and collector target.
	return job.RunOwningProcess(ctx)
}
