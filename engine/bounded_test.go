package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/internal/kafkatest"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/windowing"
)

// TestBoundedRunFiresEveryWindowAndStops runs a two-stage windowed job
// (re-keyed through a repartition topic) over a bounded range against the
// real broker: it must fire every window, the last ones included, which
// no later record's watermark would ever close, and then stop by itself
// with nil, as a Flink job over a bounded source ends with MAX_WATERMARK.
// One input partition is empty and another ends in an aborted
// transaction, so its last offset below the end is a marker, never a
// record. With a time as the end, records from the first one stamped at
// or after it are not read.
func TestBoundedRunFiresEveryWindowAndStops(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	in := kafkatest.CreateTopic(t, brokers, "bounded-in", 3)
	noon := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	rec := func(p int32, key string, at time.Duration) *kgo.Record {
		return &kgo.Record{Topic: in, Partition: p, Key: []byte(key), Value: []byte(key), Timestamp: noon.Add(at)}
	}
	producer := kafkatest.Client(t, brokers, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	kafkatest.ProduceSync(t, producer,
		rec(0, "a", 10*time.Second), rec(0, "b", 20*time.Second), rec(0, "a", 70*time.Second),
		rec(1, "a", 30*time.Second), rec(1, "a", 130*time.Second), rec(1, "b", 190*time.Second))
	// Partition 0 ends in an aborted transaction; partition 2 stays empty.
	txn := kafkatest.Client(t, brokers, kgo.TransactionalID(kafkatest.Name("bounded-txn")), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := txn.ProduceSync(ctx, rec(0, "aborted", 40*time.Second)).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := txn.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, until string
		want        []string
	}{
		{"to the end", "end", []string{"a@12:00=2", "a@12:01=1", "a@12:02=1", "b@12:00=1", "b@12:03=1"}},
		// Partition 1 stops at its 130s record; partition 0 has none that late.
		{"to a time", noon.Add(2 * time.Minute).Format(time.RFC3339), []string{"a@12:00=2", "a@12:01=1", "b@12:00=1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := kafkatest.CreateTopic(t, brokers, "bounded-out", 1)
			job := engine.NewJob("bounded", engine.WithBrokers(brokers...), engine.WithGroup(kafkatest.Name("bounded")),
				engine.WithStateDir(t.TempDir()), engine.WithMetricsAddr(""), engine.WithCheckpointInterval(100*time.Millisecond),
				engine.WithLogLevel("warn"), engine.WithUntil(tc.until))
			src := connectors.KafkaSource(job, in, codec.String(), connectors.WithWatermarks(windowing.RecordTimestamps[string](0)))
			byValue := operators.KeyBy(src, func(v string) string { return v }, operators.KeyByCodecs(codec.String(), codec.String()))
			connectors.KafkaSink(operators.WindowAggregate(byValue, "per-minute", windowing.Tumbling(time.Minute),
				operators.Count[string]{}, codec.JSON[int64]()), out, codec.JSON[operators.Windowed[string, int64]]())

			runCtx, stop := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- job.Run(runCtx) }()
			select {
			case err := <-done:
				stop()
				if err != nil {
					t.Fatalf("the bounded run failed: %v", err)
				}
			case <-time.After(2 * time.Minute):
				stop()
				<-done
				t.Fatal("the bounded run did not stop by itself")
			}
			var got []string
			for _, r := range kafkatest.ReadAll(t, brokers, out, len(tc.want), 10*time.Second) {
				var w operators.Windowed[string, int64]
				if err := json.Unmarshal(r.Value, &w); err != nil {
					t.Fatal(err)
				}
				got = append(got, fmt.Sprintf("%s@%s=%d", w.Key, w.Start.UTC().Format("15:04"), w.Value))
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("windows %q, want %q", got, tc.want)
			}
		})
	}
}

// TestRestartedTaskKeepsItsWatermark: a task that restarts resumes the
// watermark its checkpoint saved. A record late before the restart is
// late after it too: it goes to the late topic, and does not re-create a
// window that fired, to fire it again with the one record. (The checkpoint
// metadata once wrote the task's watermark under a name it read back as a
// topic's, so a restarted task started at the minimum.)
func TestRestartedTaskKeepsItsWatermark(t *testing.T) {
	brokers := kafkatest.Fake(t, 1, "wm-in", "wm-out")
	group := kafkatest.Name("wm")
	noon := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	producer := kafkatest.Client(t, brokers)
	send := func(at time.Duration) {
		kafkatest.ProduceSync(t, producer, &kgo.Record{Topic: "wm-in", Key: []byte("k"), Value: []byte("k"), Timestamp: noon.Add(at)})
	}
	start := func() func() error {
		job := engine.NewJob("wm", engine.WithBrokers(brokers...), engine.WithGroup(group), engine.WithStateDir(t.TempDir()),
			engine.WithMetricsAddr(""), engine.WithCheckpointInterval(50*time.Millisecond), engine.WithLogLevel("warn"))
		src := connectors.KafkaSource(job, "wm-in", codec.String(), connectors.WithWatermarks(windowing.RecordTimestamps[string](0)))
		keyed := operators.KeyByRecordKey(src, codec.Key[string]())
		connectors.KafkaSink(operators.WindowAggregate(keyed, "tens", windowing.Tumbling(10*time.Second),
			operators.Count[string]{}, codec.JSON[int64]()), "wm-out", codec.JSON[operators.Windowed[string, int64]]())
		return runJob(t, job)
	}
	windows := func(n int) []string {
		t.Helper()
		var got []string
		for _, r := range kafkatest.ReadAll(t, brokers, "wm-out", n, 30*time.Second) {
			var w operators.Windowed[string, int64]
			if err := json.Unmarshal(r.Value, &w); err != nil {
				t.Fatal(err)
			}
			got = append(got, fmt.Sprintf("%s=%d", w.Start.Sub(noon), w.Value))
		}
		return got
	}
	late := group + "-tens-late"

	stop := start()
	send(1 * time.Second)
	send(2 * time.Second)
	send(15 * time.Second) // the watermark passes 10s: [0s, 10s) fires with 2
	if got := windows(1); fmt.Sprint(got) != "[0s=2]" {
		t.Fatalf("first run: windows %v, want [0s=2]", got)
	}
	send(3 * time.Second) // late
	kafkatest.ReadAll(t, brokers, late, 1, 30*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	stop = start()         // a new state directory: restored from the changelog and the offsets' metadata
	send(4 * time.Second)  // late still
	send(25 * time.Second) // the watermark passes 20s: [10s, 20s) fires with 1
	got := windows(2)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[0s=2 10s=1]" {
		t.Fatalf("after the restart: windows %v, want [0s=2 10s=1]: a record late before the restart re-created a window", got)
	}
	if n := len(kafkatest.ReadAll(t, brokers, late, 2, 30*time.Second)); n != 2 {
		t.Fatalf("%d records on the late topic, want 2", n)
	}
}
