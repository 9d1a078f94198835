package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/e2e/jobs/shared"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/internal/kafkatest"
	"github.com/weirstream/weir/operators"
)

// The end-to-end benchmark compares Weir's stateless job against the least
// a hand-written at-least-once franz-go service must do for the same work,
// on the same input topic of the real broker. Run it with one pass per
// sub-benchmark, several times for a spread:
//
//	KAFKA_BROKERS=... go test -run '^$' -bench BenchmarkStatelessE2E -benchtime=1x -count=3 ./e2e/
//
// WEIR_BENCH_RECORDS sets the input size (default 200000).

const (
	benchDefaultRecords = 200_000
	benchUsers          = 1000
	benchCheckpoint     = 100 * time.Millisecond
	benchPassTimeout    = 5 * time.Minute
	benchPollEvery      = 10 * time.Millisecond
)

func benchRecords(b *testing.B) int {
	b.Helper()
	s := os.Getenv("WEIR_BENCH_RECORDS")
	if s == "" {
		return benchDefaultRecords
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		b.Fatalf("WEIR_BENCH_RECORDS=%q: want a positive integer", s)
	}
	return n
}

// benchInput writes n small keyed JSON events (no bots: every one yields an
// output) round-robin over benchUsers users.
func benchInput(b *testing.B, brokers []string, topic string, n int) {
	b.Helper()
	cl := kafkatest.Client(b, brokers, kgo.ProducerLinger(5*time.Millisecond))
	enc := codec.JSON[shared.Event]()
	const chunk = 50_000
	for start := 0; start < n; start += chunk {
		recs := make([]*kgo.Record, 0, min(chunk, n-start))
		for i := start; i < n && i < start+chunk; i++ {
			e := shared.Event{User: "user-" + strconv.Itoa(i%benchUsers), Seq: i / benchUsers}
			v, err := enc.Encode(e)
			if err != nil {
				b.Fatal(err)
			}
			recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(e.User), Value: v})
		}
		kafkatest.ProduceSync(b, cl, recs...)
	}
	cl.Close()
}

// endOffsets sums the high watermarks of topic's partitions.
func endOffsets(ctx context.Context, adm *kadm.Client, topic string) (int64, error) {
	offs, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	var sum int64
	var perr error
	offs.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			perr = o.Err
			return
		}
		sum += o.Offset
	})
	return sum, perr
}

// waitOutputs polls topic's end offsets until they sum to at least n, the
// processor reports an error, or the pass times out.
func waitOutputs(adm *kadm.Client, topic string, n int64, failed <-chan error) (int64, error) {
	deadline := time.Now().Add(benchPassTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		got, err := endOffsets(ctx, adm, topic)
		cancel()
		if err == nil && got >= n {
			return got, nil
		}
		select {
		case err := <-failed:
			return got, fmt.Errorf("processor stopped with %d of %d outputs written: %v", got, n, err)
		default:
		}
		if time.Now().After(deadline) {
			return got, fmt.Errorf("%d of %d outputs after %v (last error: %v)", got, n, benchPassTimeout, err)
		}
		time.Sleep(benchPollEvery)
	}
}

// processor runs one full pass from in to out in the consumer group, until
// ctx is done; it returns nil after a clean stop.
type processor func(ctx context.Context, brokers []string, in, out, group string) error

// bareLoop is the honest minimal at-least-once consume-transform-produce
// service in franz-go: a group consumer with manual commits that decodes,
// filters, maps and encodes each record as the Weir job does, produces the
// result keyed as its input, and every benchCheckpoint flushes the producer
// and then commits what it has polled.
func bareLoop(ctx context.Context, brokers []string, in, out, group string) error {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(in),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.DisableAutoCommit(),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)), // murmur2, as Weir
	)
	if err != nil {
		return err
	}
	defer cl.Close()

	var mu sync.Mutex
	var produceErr error
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			mu.Lock()
			if produceErr == nil {
				produceErr = err
			}
			mu.Unlock()
		}
	}
	checkpoint := func(ctx context.Context) error {
		if err := cl.Flush(ctx); err != nil {
			return err
		}
		mu.Lock()
		err := produceErr
		mu.Unlock()
		if err != nil {
			return err // never commit past an unacknowledged output
		}
		return cl.CommitUncommittedOffsets(ctx)
	}

	dec, enc := codec.JSON[shared.Event](), codec.JSON[shared.Tagged]()
	last := time.Now()
	for {
		fs := cl.PollRecords(ctx, 10000)
		if fs.IsClientClosed() || ctx.Err() != nil {
			break
		}
		if err := fs.Err0(); err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
		var recErr error
		fs.EachRecord(func(r *kgo.Record) {
			if recErr != nil {
				return
			}
			e, err := dec.Decode(r.Value)
			if err != nil {
				recErr = fmt.Errorf("%s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
				return
			}
			if e.Bot {
				return
			}
			t, err := shared.Tag(e)
			if err == nil {
				var v []byte
				if v, err = enc.Encode(t); err == nil {
					cl.Produce(ctx, &kgo.Record{Topic: out, Key: r.Key, Value: v, Timestamp: r.Timestamp}, promise)
				}
			}
			recErr = err
		})
		if recErr != nil {
			return recErr
		}
		if time.Since(last) >= benchCheckpoint {
			if err := checkpoint(ctx); err != nil {
				if ctx.Err() != nil {
					break
				}
				return err
			}
			last = time.Now()
		}
	}
	fctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return checkpoint(fctx)
}

// weirJob runs the stateless job of the e2e tests in process, with a
// benchCheckpoint checkpoint interval.
func weirJob(ctx context.Context, brokers []string, in, out, group string) error {
	dir, err := os.MkdirTemp("", "weir-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	job := engine.NewJob("bench-stateless", engine.WithBrokers(brokers...), engine.WithGroup(group),
		engine.WithMetricsAddr(""), engine.WithCheckpointInterval(benchCheckpoint), engine.WithLogLevel("warn"), engine.WithStateDir(dir),
		// Like the bare loop: its waitOutputs counts end offsets, which
		// transaction markers would inflate; BenchmarkGuarantees compares
		// the guarantees.
		engine.WithGuarantee(engine.AtLeastOnce))
	evs := connectors.KafkaSource(job, in, codec.JSON[shared.Event]())
	humans := operators.Filter(evs, func(e shared.Event) bool { return !e.Bot })
	connectors.KafkaSink(operators.Map(humans, shared.Tag), out, codec.JSON[shared.Tagged]())
	return job.Run(ctx)
}

// benchPass runs p over the whole input into a fresh output topic and
// group and returns the time from its start until the output held n
// records. Setting up and stopping are outside the benchmark timer.
func benchPass(b *testing.B, brokers []string, adm *kadm.Client, in string, n int, name string, p processor) time.Duration {
	b.Helper()
	b.StopTimer()
	out := kafkatest.CreateTopic(b, brokers, "bench-"+name+"-out", partitions)
	group := kafkatest.Name("bench-" + name)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)

	b.StartTimer()
	start := time.Now()
	go func() { done <- p(ctx, brokers, in, out, group) }()
	got, err := waitOutputs(adm, out, int64(n), done)
	took := time.Since(start)
	b.StopTimer()

	if err != nil {
		b.Fatalf("%s: %v", name, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			b.Fatalf("%s stopped with: %v", name, err)
		}
	case <-time.After(time.Minute):
		b.Fatalf("%s did not stop within a minute", name)
	}
	if got != int64(n) {
		b.Logf("%s: %d outputs for %d inputs (%d duplicates)", name, got, n, got-int64(n))
	}
	b.StartTimer()
	return took
}

// BenchmarkStatelessE2E measures records/s on one input topic of
// WEIR_BENCH_RECORDS keyed JSON events on 4 partitions, from a cold start
// (client creation and group join included) until every output is in
// Kafka, as counted by the output topic's end offsets:
//
//	bare         a plain franz-go consume-transform-produce loop that
//	             flushes and commits every 100ms
//	weir         the Weir stateless job in process, checkpoint interval 100ms
//	weir-vs-bare one bare pass then one weir pass per iteration, reporting
//	             both rates and weir/bare: the paired comparison, robust to
//	             load that drifts between sub-benchmarks
//
// Each iteration is one full pass (per processor) into a fresh output topic
// and group, reading the same input from the start; use -benchtime=1x and
// -count for repeats.
func BenchmarkStatelessE2E(b *testing.B) {
	brokers := kafkatest.Brokers(b)
	n := benchRecords(b)
	in := kafkatest.CreateTopic(b, brokers, "bench-in", partitions)
	benchInput(b, brokers, in, n)
	adm := kadm.NewClient(kafkatest.Client(b, brokers))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	total, err := endOffsets(ctx, adm, in)
	cancel()
	if err != nil || total != int64(n) {
		b.Fatalf("input topic holds %d records (%v), want %d", total, err, n)
	}

	for _, pc := range []struct {
		name string
		p    processor
	}{{"bare", bareLoop}, {"weir", weirJob}} {
		b.Run(pc.name, func(b *testing.B) {
			var took time.Duration
			for range b.N {
				took += benchPass(b, brokers, adm, in, n, pc.name, pc.p)
			}
			b.ReportMetric(float64(n)*float64(b.N)/took.Seconds(), "records/s")
		})
	}
	b.Run("weir-vs-bare", func(b *testing.B) {
		var bare, weir time.Duration
		for range b.N {
			bare += benchPass(b, brokers, adm, in, n, "bare", bareLoop)
			weir += benchPass(b, brokers, adm, in, n, "weir", weirJob)
		}
		recs := float64(n) * float64(b.N)
		b.ReportMetric(recs/bare.Seconds(), "bare-records/s")
		b.ReportMetric(recs/weir.Seconds(), "weir-records/s")
		b.ReportMetric(bare.Seconds()/weir.Seconds(), "weir/bare")
		b.Logf("%d records x %d: bare %.0f records/s, weir %.0f records/s, weir/bare %.3f",
			n, b.N, recs/bare.Seconds(), recs/weir.Seconds(), bare.Seconds()/weir.Seconds())
	})
}
