package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/e2e/jobs/shared"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/internal/kafkatest"
	"github.com/weirstream/weir/observe"
)

// restoreDone is an observer that reports the first finished restore.
type restoreDone struct {
	observe.Nop
	done chan restored
}

type restored struct {
	records int64
	took    time.Duration
}

func (o restoreDone) RestoreDone(_ string, records int64, took time.Duration) {
	select {
	case o.done <- restored{records, took}:
	default:
	}
}

// BenchmarkRestore measures how fast a replica restores a task's state
// from its changelog: WEIR_BENCH_RESTORE_MB (256 by default) of 1 KiB
// values under distinct keys in the changelog of the keyed counter's
// task, named by its committed offset's metadata, restored into an empty
// state directory, as after a pod was rescheduled. It reports MB/s of
// state (keys and values) from the task's start to its restore's end.
func BenchmarkRestore(b *testing.B) {
	brokers := kafkatest.Brokers(b)
	mb := 256
	if s := os.Getenv("WEIR_BENCH_RESTORE_MB"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			b.Fatalf("WEIR_BENCH_RESTORE_MB=%q: want a positive number", s)
		}
		mb = n
	}
	in := kafkatest.CreateTopic(b, brokers, "restore-in", 1)
	out := kafkatest.CreateTopic(b, brokers, "restore-out", 1)
	group := kafkatest.Name("restore")
	repartition, changelog := group+"-by-key-repartition", group+"-counts-changelog"
	kafkatest.CreateNamedTopic(b, brokers, repartition, 1)
	cl := kafkatest.Client(b, brokers, kgo.ProducerBatchMaxBytes(1<<20), kgo.ProducerLinger(5*time.Millisecond))
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}, changelog); err != nil {
		b.Fatal(err)
	}

	const valueSize = 1 << 10
	n := mb << 10
	value := make([]byte, valueSize)
	rand.Read(value) // incompressible
	var bytes int64
	start := time.Now()
	for i := 0; i < n; i += 4096 {
		var recs []*kgo.Record
		for j := i; j < min(i+4096, n); j++ {
			key := fmt.Appendf(nil, "key-%012d", j)
			recs = append(recs, &kgo.Record{Topic: changelog, Key: key, Value: value})
			bytes += int64(len(key) + len(value))
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("wrote %d MB of state to %s in %v", bytes>>20, changelog, time.Since(start).Round(time.Millisecond))
	ends, err := adm.ListEndOffsets(ctx, changelog)
	if err != nil {
		b.Fatal(err)
	}
	end, _ := ends.Lookup(changelog, 0)
	// The task's checkpoint: its input at offset 0, its state the whole
	// changelog.
	meta := engine.CommitMetadata{Checkpoint: 1, Changelog: map[string]int64{changelog: end.Offset}}
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: repartition, Partition: 0, At: 0, LeaderEpoch: -1, Metadata: meta.Encode(group)})
	offs.Add(kadm.Offset{Topic: in, Partition: 0, At: 0, LeaderEpoch: -1, Metadata: engine.CommitMetadata{Checkpoint: 1}.Encode(group)})
	if resp, err := adm.CommitOffsets(ctx, group, offs); err != nil || resp.Error() != nil {
		b.Fatalf("committing the checkpoint: %v %v", err, resp.Error())
	}

	b.ResetTimer()
	var took time.Duration
	for range b.N {
		obs := restoreDone{done: make(chan restored, 1)}
		job := engine.NewJob("restore-bench", engine.WithBrokers(brokers...), engine.WithGroup(group), engine.WithStateDir(b.TempDir()),
			engine.WithMetricsAddr(""), engine.WithLogLevel("warn"), engine.WithObserver(obs))
		shared.BuildCounter(job, in, out)
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- job.Run(runCtx) }()
		select {
		case r := <-obs.done:
			if r.records != int64(n) {
				b.Fatalf("restored %d records, want %d", r.records, n)
			}
			took += r.took
		case err := <-done:
			cancel()
			b.Fatalf("job stopped before restoring: %v", err)
		case <-time.After(10 * time.Minute):
			cancel()
			b.Fatal("no restore within 10 minutes")
		}
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	perRun := took / time.Duration(b.N)
	b.ReportMetric(float64(bytes)/(1<<20)/perRun.Seconds(), "MB/s")
	b.ReportMetric(perRun.Seconds(), "s/restore")
	b.Logf("restored %d MB (%d records) in %v: %.0f MB/s", bytes>>20, n, perRun.Round(time.Millisecond), float64(bytes)/(1<<20)/perRun.Seconds())
}
