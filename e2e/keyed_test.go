package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/e2e/jobs/shared"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/internal/kafkatest"
	"github.com/weirstream/weir/weirtest"
)

// clicks generates the activity job's input: keyed by page (not by user,
// so the job must repartition), event times rising with jitter inside the
// out-of-orderness bound, so no click is late; then one trailer per
// partition an hour later, so every watermark passes every bucket.
func clicks(topic string, n int, partitions int32) []*kgo.Record {
	rng := rand.New(rand.NewPCG(7, 11))
	base := time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC)
	var recs []*kgo.Record
	last := base
	for i := range n {
		at := base.Add(time.Duration(i)*5*time.Millisecond + time.Duration(rng.IntN(1500))*time.Millisecond)
		c := shared.Click{User: fmt.Sprintf("user-%d", rng.IntN(100)), Page: fmt.Sprintf("/page/%d", rng.IntN(20)), At: at}
		b, _ := json.Marshal(c)
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(c.Page), Value: b, Timestamp: at, Partition: javaPartition([]byte(c.Page), partitions)})
		if at.After(last) {
			last = at
		}
	}
	for p := range partitions {
		at := last.Add(time.Hour)
		b, _ := json.Marshal(shared.Click{User: "zz-trailer", Page: "/", At: at})
		recs = append(recs, &kgo.Record{Topic: topic, Value: b, Timestamp: at, Partition: p})
	}
	return recs
}

// bucketCounts decodes outputs into "user bucket" -> count, failing on a
// bucket reported twice with different counts.
func bucketCounts(t *testing.T, recs []*kgo.Record) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, r := range recs {
		var bc shared.BucketCount
		if err := json.Unmarshal(r.Value, &bc); err != nil {
			t.Fatalf("undecodable output %q: %v", r.Value, err)
		}
		k := bc.User + " " + bc.Bucket.Format(time.TimeOnly)
		if prev, ok := out[k]; ok && prev != bc.Count {
			t.Fatalf("bucket %s reported as %d and %d", k, prev, bc.Count)
		}
		out[k] = bc.Count
	}
	return out
}

// harnessCounts is the reference: the activity job through the harness,
// same records in the same per-partition order.
func harnessCounts(t *testing.T, in, out string, input []*kgo.Record) map[string]int {
	t.Helper()
	job := engine.NewJob("activity")
	shared.BuildActivity(job, in, out)
	h := weirtest.New(t, job, weirtest.Partitions(partitions))
	for _, r := range input {
		if err := h.SendBytesTo(in, r.Partition, r.Key, r.Value, r.Timestamp); err != nil {
			t.Fatalf("harness: %v", err)
		}
	}
	return bucketCounts(t, h.ReadOutput(out))
}

// TestKeyedJobTwoReplicasMatchesHarness runs the activity job (re-key by
// user through a repartition topic, per-user bucket counts in map state,
// event-time timers fed by watermarks that cross the repartition topic)
// as two processes in one consumer group against the real broker, and
// checks every per-user result against the same job run on the same input
// through the test harness.
func TestKeyedJobTwoReplicasMatchesHarness(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	in := kafkatest.CreateTopic(t, brokers, "clicks", partitions)
	out := kafkatest.CreateTopic(t, brokers, "activity", partitions)
	group := kafkatest.Name("activity")
	input := clicks(in, 20000, partitions)

	want := harnessCounts(t, in, out, input)
	t.Logf("harness: %d user buckets", len(want))

	rs := startReplicas(t, "activity", brokers, group, in, out, 2)
	a, b := rs[0], rs[1]

	producer := kafkatest.Client(t, brokers, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	kafkatest.ProduceSync(t, producer, input...)
	outputs := collect(t, brokers, out)
	kafkatest.Eventually(t, 3*time.Minute, "every user bucket from the replicas", func() bool {
		return len(bucketCounts(t, outputs.snapshot())) >= len(want)
	})
	got := bucketCounts(t, outputs.snapshot())
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%s: replicas counted %d, harness %d", k, got[k], n)
		}
	}
	for k, n := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: replicas reported %d, harness nothing", k, n)
		}
	}
	for _, p := range []*process{a, b} {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []*process{a, b} {
		if code := p.wait(t, time.Minute); code != 0 {
			t.Fatalf("a replica exited %d after SIGTERM", code)
		}
	}
}

// TestKeyedJobRestartKeepsLocalState stops the activity job (SIGTERM)
// halfway through its input and starts it again on the same state
// directory: the tasks resume from their local state, so buckets that span
// the restart are counted whole, exactly as the harness counts them.
func TestKeyedJobRestartKeepsLocalState(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	in := kafkatest.CreateTopic(t, brokers, "clicks-restart", partitions)
	out := kafkatest.CreateTopic(t, brokers, "activity-restart", partitions)
	group := kafkatest.Name("activity-restart")
	input := clicks(in, 8000, partitions)
	half := len(input) / 2

	want := harnessCounts(t, in, out, input)

	env := []string{"JOB_INPUT=" + in, "JOB_OUTPUT=" + out, "WEIR_BROKERS=" + strings.Join(brokers, ","),
		"WEIR_GROUP=" + group, "WEIR_METRICS_ADDR=", "WEIR_CHECKPOINT_INTERVAL=100ms", "WEIR_SESSION_TIMEOUT=6s",
		"WEIR_STATE_DIR=" + t.TempDir()}
	bin := binary(t, "activity")
	producer := kafkatest.Client(t, brokers, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	first := startBinary(t, bin, env...)
	kafkatest.ProduceSync(t, producer, input[:half]...)
	// Wait until the first half is committed through both stages.
	endOf := func(topic string) (sum int64) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ends, err := kadm.NewClient(kafkatest.Client(t, brokers)).ListEndOffsets(ctx, topic)
		if err != nil {
			return -1
		}
		ends.Each(func(o kadm.ListedOffset) { sum += o.Offset })
		return sum
	}
	committed := func(topic string) (sum int64) {
		for _, o := range kafkatest.CommittedOffsets(t, brokers, group, topic) {
			sum += o
		}
		return sum
	}
	repartition := group + "-by-user-repartition"
	// The internal topic keeps records whatever their (event-time)
	// timestamps: time-based retention would delete replayed history
	// before the next stage reads it.
	retention := func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cfgs, err := kadm.NewClient(kafkatest.Client(t, brokers)).DescribeTopicConfigs(ctx, repartition)
		if err != nil {
			return ""
		}
		c, err := cfgs.On(repartition, nil)
		if err != nil {
			return ""
		}
		return configValue(c, "retention.ms")
	}
	kafkatest.Eventually(t, time.Minute, "the repartition topic, with infinite retention", func() bool { return retention() == "-1" })
	// Each partition of the repartition topic ends with the marker of the
	// last transaction that wrote it, which takes an offset but is no
	// record: the committed offset stops one short of the end.
	kafkatest.Eventually(t, 2*time.Minute, "the first half committed through both stages", func() bool {
		c := committed(repartition)
		return committed(in) == int64(half) && c > 0 && c >= endOf(repartition)-partitions
	})
	if err := first.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := first.wait(t, time.Minute); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}

	second := startBinary(t, bin, env...)
	kafkatest.ProduceSync(t, producer, input[half:]...)
	outputs := collect(t, brokers, out)
	deadline := time.Now().Add(2 * time.Minute)
	for len(bucketCounts(t, outputs.snapshot())) < len(want) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	got := bucketCounts(t, outputs.snapshot())
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%s: counted %d across the restart, harness %d", k, got[k], n)
		}
	}
	if !strings.Contains(second.output.String(), "task resumes from its local state") {
		t.Errorf("the restarted job did not resume from local state; output:\n%s", second.output.String())
	}
	if err := second.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := second.wait(t, time.Minute); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
}

func configValue(c kadm.ResourceConfig, name string) string {
	for _, e := range c.Configs {
		if e.Key == name && e.Value != nil {
			return *e.Value
		}
	}
	return ""
}
