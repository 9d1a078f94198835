package e2e

// What exactly-once costs, measured on the real broker against
// at-least-once on the same jobs:
//
//	BenchmarkGuarantees  throughput of each guarantee, and their ratio
//	BenchmarkLatency     input timestamp to committed output, p50 and p99,
//	                     for checkpoint intervals of 100ms and 1s
//
// Run them once each (they take a few minutes together):
//
//	KAFKA_BROKERS=127.0.0.1:19092 go test -run '^$' -bench 'BenchmarkGuarantees|BenchmarkLatency' -benchtime=1x ./e2e/
//
// Without KAFKA_BROKERS they skip. Knobs: WEIR_BENCH_RECORDS, the input of
// BenchmarkGuarantees (default 200000); WEIR_BENCH_LATENCY_RATE, input
// records/s of BenchmarkLatency (default 2000); WEIR_BENCH_LATENCY_DURATION,
// how long each of its runs is measured after a 2s warm-up (default 10s).
//
// Outputs are counted by a read_committed consumer, not by end offsets:
// under exactly-once every transaction's commit marker takes an offset in
// each partition it wrote, so offsets run ahead of records.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/e2e/jobs/shared"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/internal/kafkatest"
)

const (
	latencyDefaultRate     = 2000
	latencyDefaultDuration = 10 * time.Second
	// latencyWarmup is produced but not measured: the first transactions
	// and fetch sessions of a fresh job are slower than its steady state.
	latencyWarmup = 2 * time.Second
)

// guarantees are the two processing guarantees, as metric prefixes.
var guarantees = []struct{ name, short string }{
	{engine.AtLeastOnce, "alo"},
	{engine.ExactlyOnce, "eos"},
}

// benchJob is a job the guarantee benchmarks run in process.
type benchJob struct {
	name  string
	build func(job *engine.Job, in, out string)
	// sideOutputs are the topics the job writes beside out, which must
	// exist before it starts.
	sideOutputs func(out string) []string
}

var (
	statelessBench = benchJob{name: "stateless", build: shared.BuildStateless}
	totalsBench    = benchJob{name: "totals", build: shared.BuildTotals,
		sideOutputs: func(out string) []string { return []string{shared.WindowsTopic(out)} }}
)

// createOutputs creates the job's output topic and its side outputs, all
// deleted when the benchmark ends, and returns the output topic.
func (j benchJob) createOutputs(b *testing.B, brokers []string) string {
	b.Helper()
	out := kafkatest.CreateTopic(b, brokers, "bench-"+j.name+"-out", partitions)
	if j.sideOutputs == nil {
		return out
	}
	for _, topic := range j.sideOutputs(out) {
		kafkatest.CreateNamedTopic(b, brokers, topic, partitions)
	}
	return out
}

// start runs the job in process from in to out with the guarantee and
// checkpoint interval given, under a fresh consumer group and state
// directory. It returns the channel Run's result arrives on, and stop,
// which ends the run and fails the benchmark unless the job stops cleanly.
// The group and the internal topics named after it are deleted when the
// benchmark ends.
func (j benchJob) start(b *testing.B, brokers []string, in, out, guarantee string, interval time.Duration) (<-chan error, func()) {
	b.Helper()
	group := kafkatest.Name("bench-" + j.name)
	b.Cleanup(func() {
		adm := kadm.NewClient(kafkatest.Client(b, brokers))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if topics, err := adm.ListTopics(ctx); err == nil {
			internal := slices.DeleteFunc(topics.Names(), func(t string) bool { return !strings.HasPrefix(t, group+"-") })
			_, _ = adm.DeleteTopics(ctx, internal...)
		}
		_, _ = adm.DeleteGroups(ctx, group)
	})
	job := engine.NewJob("bench-"+j.name, engine.WithBrokers(brokers...), engine.WithGroup(group),
		engine.WithStateDir(b.TempDir()), engine.WithMetricsAddr(""), engine.WithLogLevel("warn"),
		engine.WithGuarantee(guarantee), engine.WithCheckpointInterval(interval))
	j.build(job, in, out)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel) // stops the job of a failed benchmark before its topics go
	done := make(chan error, 1)
	go func() { done <- job.Run(ctx) }()
	return done, func() {
		b.Helper()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				b.Fatalf("%s (%s) stopped with: %v", j.name, guarantee, err)
			}
		case <-time.After(time.Minute):
			b.Fatalf("%s (%s) did not stop within a minute", j.name, guarantee)
		}
	}
}

// committedReader returns a client reading topic from the start, as
// read_committed: it sees an exactly-once job's outputs once committed.
//
// It first waits until the broker lists offsets of every partition of
// topic: just after the topic's creation some partitions answer
// UNKNOWN_TOPIC_OR_PARTITION, and the reader would retry them a second
// later and then join them to its fetches only after the long poll in
// flight. The short fetch wait bounds that poll in any case.
func committedReader(b *testing.B, brokers []string, topic string) *kgo.Client {
	b.Helper()
	adm := kadm.NewClient(kafkatest.Client(b, brokers))
	kafkatest.Eventually(b, 30*time.Second, "offsets of every partition of "+topic, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := endOffsets(ctx, adm, topic)
		return err == nil
	})
	return kafkatest.Client(b, brokers, kgo.ConsumeTopics(topic), kgo.FetchMaxWait(100*time.Millisecond),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
}

// readCommitted polls cl until want records arrived, handing each to each
// (if not nil) with the time its fetch was handed over. It fails when each
// does, when the job stops (done), or after timeout.
func readCommitted(cl *kgo.Client, want int, done <-chan error, timeout time.Duration, each func(*kgo.Record, time.Time) error) error {
	deadline := time.Now().Add(timeout)
	got := 0
	for got < want {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		fs := cl.PollFetches(ctx)
		seen := time.Now()
		cancel()
		var err error
		fs.EachError(func(_ string, _ int32, e error) {
			if err == nil && !errors.Is(e, context.DeadlineExceeded) { // not the poll's own timeout
				err = e
			}
		})
		if err != nil {
			return fmt.Errorf("reading outputs, %d of %d: %w", got, want, err)
		}
		for it := fs.RecordIter(); !it.Done(); {
			r := it.Next()
			got++
			if each != nil && err == nil {
				err = each(r, seen)
			}
		}
		if err != nil {
			return err
		}
		if got >= want {
			return nil
		}
		select {
		case err := <-done:
			return fmt.Errorf("job stopped with %d of %d outputs committed: %v", got, want, err)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d outputs committed after %v", got, want, timeout)
		}
	}
	return nil
}

// BenchmarkGuarantees measures records/s of at-least-once and exactly-once
// side by side, for the stateless job (BenchmarkStatelessE2E's) and the
// stateful totals job (a repartition, keyed value state and window state
// with their changelogs): WEIR_BENCH_RECORDS inputs on 4 partitions, from
// a cold start until a read_committed reader has seen every output (for
// totals, the totals topic: one total per input). Checkpoint interval
// 100ms. Each iteration runs alo, eos, eos, alo, each pass with a fresh
// group, state directory and output topics over the same input, so drift
// in the broker's load weighs on both guarantees alike; it reports each
// guarantee's rate over all its passes, and eos/alo.
func BenchmarkGuarantees(b *testing.B) {
	brokers := kafkatest.Brokers(b)
	n := benchRecords(b)
	b.Run("stateless", func(b *testing.B) {
		in := kafkatest.CreateTopic(b, brokers, "bench-in", partitions)
		benchInput(b, brokers, in, n)
		benchGuarantees(b, brokers, statelessBench, in, n)
	})
	b.Run("totals", func(b *testing.B) {
		in := kafkatest.CreateTopic(b, brokers, "bench-payments", partitions)
		input := payments(in, n, partitions) // n payments, then a trailer per partition
		cl := kafkatest.Client(b, brokers, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(5*time.Millisecond))
		for chunk := range slices.Chunk(input, 50_000) {
			kafkatest.ProduceSync(b, cl, chunk...)
		}
		cl.Close()
		benchGuarantees(b, brokers, totalsBench, in, len(input))
	})
}

// benchGuarantees runs the passes of BenchmarkGuarantees over in, which
// holds n records, each yielding one output of j.
func benchGuarantees(b *testing.B, brokers []string, j benchJob, in string, n int) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	total, err := endOffsets(ctx, kadm.NewClient(kafkatest.Client(b, brokers)), in)
	cancel()
	if err != nil || total != int64(n) {
		b.Fatalf("input topic holds %d records (%v), want %d", total, err, n)
	}
	alo, eos := guarantees[0], guarantees[1]
	took := map[string]time.Duration{}
	passes := map[string][]time.Duration{}
	b.ResetTimer()
	for range b.N {
		for _, g := range []struct{ name, short string }{alo, eos, eos, alo} {
			d := guaranteePass(b, brokers, j, in, n, g.name)
			took[g.short] += d
			passes[g.short] = append(passes[g.short], d.Round(time.Millisecond))
		}
	}
	recs := 2 * float64(n) * float64(b.N) // two passes per guarantee
	aloRate, eosRate := recs/took[alo.short].Seconds(), recs/took[eos.short].Seconds()
	b.ReportMetric(aloRate, "alo-records/s")
	b.ReportMetric(eosRate, "eos-records/s")
	b.ReportMetric(eosRate/aloRate, "eos/alo")
	b.Logf("%s, %d records: at-least-once %.0f records/s (passes %v), exactly-once %.0f records/s (passes %v), eos/alo %.3f",
		j.name, n, aloRate, passes[alo.short], eosRate, passes[eos.short], eosRate/aloRate)
}

// guaranteePass runs j over in once, into fresh output topics, and returns
// the time from its start until all n outputs were committed. Setting up
// and stopping are outside the benchmark timer.
func guaranteePass(b *testing.B, brokers []string, j benchJob, in string, n int, guarantee string) time.Duration {
	b.Helper()
	b.StopTimer()
	out := j.createOutputs(b, brokers)
	cl := committedReader(b, brokers, out)

	b.StartTimer()
	start := time.Now()
	done, stop := j.start(b, brokers, in, out, guarantee, benchCheckpoint)
	err := readCommitted(cl, n, done, benchPassTimeout, nil)
	took := time.Since(start)
	b.StopTimer()

	if err != nil {
		b.Fatalf("%s (%s): %v", j.name, guarantee, err)
	}
	stop()
	cl.Close()
	b.StartTimer()
	return took
}

// BenchmarkLatency measures the stateless job's end-to-end latency: from
// an input's timestamp (set to the time it was produced) to the moment a
// read_committed reader of the output receives it, at p50 and p99, per
// guarantee, for checkpoint intervals of 100ms and 1s. The sink gives each
// output its input's timestamp, so the latency is the receive time less
// the output's timestamp (milliseconds, as Kafka keeps them: up to 1ms
// more than the true latency). Input arrives at a fixed rate from a
// separate producer, after the job has passed one record through, for a
// 2s warm-up that is not measured and then WEIR_BENCH_LATENCY_DURATION.
// Exactly-once outputs wait for their checkpoint's commit: about half an
// interval plus the commit, typically.
func BenchmarkLatency(b *testing.B) {
	brokers := kafkatest.Brokers(b)
	rate, measure := latencyKnobs(b)
	for _, interval := range []time.Duration{100 * time.Millisecond, time.Second} {
		b.Run("interval="+interval.String(), func(b *testing.B) {
			lats := map[string][]time.Duration{}
			for range b.N {
				for _, g := range guarantees {
					lats[g.short] = append(lats[g.short], latencyRun(b, brokers, g.name, interval, rate, measure)...)
				}
			}
			b.ReportMetric(0, "ns/op") // the wall time of a run says nothing here
			for _, g := range guarantees {
				l := lats[g.short]
				slices.Sort(l)
				p50, p99 := percentile(l, 0.50), percentile(l, 0.99)
				b.ReportMetric(ms(p50), g.short+"-p50-ms")
				b.ReportMetric(ms(p99), g.short+"-p99-ms")
				b.Logf("interval %v, %s: %d outputs at %d records/s: p50 %.1fms p99 %.1fms max %.1fms",
					interval, g.name, len(l), rate, ms(p50), ms(p99), ms(l[len(l)-1]))
			}
		})
	}
}

func latencyKnobs(b *testing.B) (rate int, measure time.Duration) {
	b.Helper()
	rate, measure = latencyDefaultRate, latencyDefaultDuration
	if s := os.Getenv("WEIR_BENCH_LATENCY_RATE"); s != "" {
		var err error
		if rate, err = strconv.Atoi(s); err != nil || rate <= 0 {
			b.Fatalf("WEIR_BENCH_LATENCY_RATE=%q: want a positive integer (records/s)", s)
		}
	}
	if s := os.Getenv("WEIR_BENCH_LATENCY_DURATION"); s != "" {
		var err error
		if measure, err = time.ParseDuration(s); err != nil || measure <= 0 {
			b.Fatalf("WEIR_BENCH_LATENCY_DURATION=%q: want a positive duration", s)
		}
	}
	return rate, measure
}

// latencyRun runs the stateless job with guarantee and interval on fresh
// topics, feeds it rate records/s for the warm-up and then measure, and
// returns the latency of every output produced after the warm-up.
func latencyRun(b *testing.B, brokers []string, guarantee string, interval time.Duration, rate int, measure time.Duration) []time.Duration {
	b.Helper()
	in := kafkatest.CreateTopic(b, brokers, "bench-lat-in", partitions)
	out := kafkatest.CreateTopic(b, brokers, "bench-lat-out", partitions)
	cl := committedReader(b, brokers, out)
	done, stop := statelessBench.start(b, brokers, in, out, guarantee, interval)

	// The input's producer sends each record at once: its own batching
	// would count as the job's latency.
	producer := kafkatest.Client(b, brokers, kgo.ProducerLinger(0))
	ctx, cancel := context.WithCancel(context.Background())
	var produceErr atomic.Pointer[error]
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			produceErr.CompareAndSwap(nil, &err)
		}
	}
	enc, dec := codec.JSON[shared.Event](), codec.JSON[shared.Tagged]()
	total := 1 + int(float64(rate)*(latencyWarmup+measure).Seconds())
	sentMillis := make([]atomic.Int64, total) // each input's timestamp, by Seq
	produce := func(seq int) {
		e := shared.Event{User: "user-" + strconv.Itoa(seq%benchUsers), Seq: seq}
		v, err := enc.Encode(e)
		if err != nil {
			promise(nil, err)
			return
		}
		now := time.Now()
		sentMillis[seq].Store(now.UnixMilli())
		producer.Produce(ctx, &kgo.Record{Topic: in, Key: []byte(e.User), Value: v, Timestamp: now}, promise)
	}
	failed := func(err error) {
		if p := produceErr.Load(); p != nil {
			err = fmt.Errorf("%w (producing input: %v)", err, *p)
		}
		b.Fatalf("%s, interval %v: %v", guarantee, interval, err)
	}

	// Record 0 primes the job: once its output is committed the job has
	// joined its group and committed a checkpoint.
	produce(0)
	if err := readCommitted(cl, 1, done, time.Minute, nil); err != nil {
		failed(fmt.Errorf("priming: %w", err))
	}

	var lats []time.Duration
	measureFrom := time.Now().Add(latencyWarmup)
	var wg sync.WaitGroup
	wg.Go(func() {
		start := time.Now()
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for seq := 1; seq < total; {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			for due := min(total, 1+int(time.Since(start).Seconds()*float64(rate))); seq < due; seq++ {
				produce(seq)
			}
		}
	})
	b.Cleanup(func() { cancel(); wg.Wait() }) // before the producer closes
	err := readCommitted(cl, total-1, done, latencyWarmup+measure+time.Minute, func(r *kgo.Record, seen time.Time) error {
		t, err := dec.Decode(r.Value)
		if err != nil {
			return err
		}
		if t.Seq <= 0 || t.Seq >= total {
			return fmt.Errorf("output of input %d: not produced in this run", t.Seq)
		}
		if sent := sentMillis[t.Seq].Load(); r.Timestamp.UnixMilli() != sent {
			return fmt.Errorf("output of input %d has timestamp %d, its input %d: latency cannot be measured from it",
				t.Seq, r.Timestamp.UnixMilli(), sent)
		}
		if !r.Timestamp.Before(measureFrom) {
			lats = append(lats, seen.Sub(r.Timestamp))
		}
		return nil
	})
	if err != nil {
		failed(err)
	}
	wg.Wait()
	stop()
	if len(lats) == 0 {
		b.Fatalf("%s, interval %v: no output after the warm-up", guarantee, interval)
	}
	return lats
}

// percentile returns the nearest-rank p-quantile of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	return sorted[max(0, int(math.Ceil(p*float64(len(sorted))))-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
