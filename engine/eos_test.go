package engine_test

// Exactly-once cases outside the crash tests' reach (issue 10), each against
// the real broker: what a restarted task commits before any input arrives,
// and where internal topics start.

import (
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/internal/kafkatest"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/state"
)

// delayed holds each record in state and emits it from a processing-time
// timer `after` later; a record whose value starts with "now" is emitted at
// once.
type delayed struct {
	after   time.Duration
	pending *state.Value[string]
}

func (d *delayed) Open(r *state.Registry) error {
	d.pending = state.NewValue(r, "pending", codec.String())
	return nil
}

func (d *delayed) Process(c operators.Context[string], in string, out operators.Collector[string]) error {
	if strings.HasPrefix(in, "now") {
		return out.Collect(in)
	}
	c.Timers().RegisterProcessingTimeTimer(time.Now().Add(d.after))
	return d.pending.Set(c, in)
}

func (d *delayed) OnTimer(c operators.Context[string], _ time.Time, _ engine.TimeDomain, out operators.Collector[string]) error {
	v, ok, err := d.pending.Get(c)
	if err != nil || !ok {
		return err
	}
	d.pending.Clear(c)
	return out.Collect(v)
}

// values reads topic read_committed until want records arrived (or a
// minute passed) and returns their values in order.
func values(t *testing.T, brokers []string, topic string, want int) []string {
	t.Helper()
	var vs []string
	for _, r := range kafkatest.ReadAll(t, brokers, topic, want, time.Minute) {
		vs = append(vs, string(r.Value))
	}
	return vs
}

// committedOffset returns the group's committed offset of topic's
// partition 0, or -1 while there is none or the coordinator is not ready.
func committedOffset(t *testing.T, brokers []string, group, topic string) int64 {
	t.Helper()
	offs, err := kafkatest.TryCommittedOffsets(t, brokers, group, topic)
	if o, ok := offs[0]; err == nil && ok {
		return o
	}
	return -1
}

// TestProcessingTimerFiredBeforeAnyInputIsCommittedWithItsState: a task
// restarts holding a processing-time timer that is due, and fires it before
// any record of its input arrives. Its output and its state change (the
// timer and the value cleared) commit; the offsets' metadata must move to
// the changelog position of that change, or the next start finds the local
// store "ahead" of Kafka, restores the old position and fires the timer
// again: a duplicate.
func TestProcessingTimerFiredBeforeAnyInputIsCommittedWithItsState(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	in := kafkatest.CreateTopic(t, brokers, "delay-in", 1)
	out := kafkatest.CreateTopic(t, brokers, "delay-out", 1)
	group := kafkatest.Name("delay")
	dir := t.TempDir()
	build := func() *engine.Job {
		job := engine.NewJob("delay", engine.WithBrokers(brokers...), engine.WithGroup(group), engine.WithStateDir(dir),
			engine.WithMetricsAddr(""), engine.WithCheckpointInterval(100*time.Millisecond), engine.WithLogLevel("warn"))
		src := connectors.KafkaSource(job, in, codec.String())
		keyed := operators.KeyByRecordKey(src, codec.Key[string]())
		connectors.KafkaSink(operators.Process(keyed, "delay", &delayed{after: 4 * time.Second}), out, codec.String())
		return job
	}
	producer := kafkatest.Client(t, brokers)
	kafkatest.ProduceSync(t, producer, &kgo.Record{Topic: in, Key: []byte("k"), Value: []byte("held")})

	// Run 1 takes the record, holds it in state with its timer, commits and
	// stops before the timer is due.
	stop := runJob(t, build())
	kafkatest.Eventually(t, time.Minute, "run 1 commits the record", func() bool {
		return committedOffset(t, brokers, group, in) == 1
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// Run 2 restores the timer and fires it with no input to read.
	stop = runJob(t, build())
	if got := values(t, brokers, out, 1); len(got) != 1 || got[0] != "held" {
		t.Fatalf("run 2 emitted %q, want the held record", got)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// Run 3 must find the timer gone.
	stop = runJob(t, build())
	kafkatest.ProduceSync(t, producer, &kgo.Record{Topic: in, Key: []byte("k"), Value: []byte("now-1")})
	values(t, brokers, out, 2)
	kafkatest.ProduceSync(t, producer, &kgo.Record{Topic: in, Key: []byte("k"), Value: []byte("now-2")})
	got := values(t, brokers, out, 3)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "held,now-1,now-2" {
		t.Fatalf("outputs %q, want held once, then now-1 and now-2", got)
	}
}

// TestStartOffsetLatestStillReadsInternalTopicsFromTheStart: "latest"
// says where a new job starts reading its own inputs. A repartition
// topic's records were committed by the job's upstream stage, and a
// downstream partition that has not committed yet (it crashed before its
// first checkpoint) must read them all, not skip to the end.
func TestStartOffsetLatestStillReadsInternalTopicsFromTheStart(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	in := kafkatest.CreateTopic(t, brokers, "latest-in", 1)
	out := kafkatest.CreateTopic(t, brokers, "latest-out", 1)
	group := kafkatest.Name("latest")
	// What the upstream stage committed before the downstream one's crash.
	repartition := group + "-rekey-repartition"
	kafkatest.CreateNamedTopic(t, brokers, repartition, 1)
	producer := kafkatest.Client(t, brokers)
	kafkatest.ProduceSync(t, producer, &kgo.Record{Topic: repartition, Key: []byte("a"), Value: []byte(`"upstream"`)})

	job := engine.NewJob("latest", engine.WithBrokers(brokers...), engine.WithGroup(group), engine.WithStateDir(t.TempDir()),
		engine.WithMetricsAddr(""), engine.WithCheckpointInterval(100*time.Millisecond), engine.WithStartOffset("latest"),
		engine.WithLogLevel("warn"))
	src := connectors.KafkaSource(job, in, codec.String())
	keyed := operators.KeyBy(src, func(s string) string { return s }, operators.KeyByName("rekey"))
	connectors.KafkaSink(keyed.Stream, out, codec.String())
	stop := runJob(t, job)
	// The source topic does start at the end: wait until the job has
	// joined, then write.
	kafkatest.Eventually(t, time.Minute, "the job commits its first input", func() bool {
		kafkatest.ProduceSync(t, producer, &kgo.Record{Topic: in, Key: []byte("b"), Value: []byte("after-start")})
		return committedOffset(t, brokers, group, in) > 0
	})
	got := values(t, brokers, out, 2)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if len(got) < 2 || got[0] != "upstream" {
		t.Fatalf("outputs %q: the repartition topic's committed record was skipped", got)
	}
}
