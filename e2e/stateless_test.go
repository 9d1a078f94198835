package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
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

const partitions = 4

// TestStatelessJob runs the stateless job in process over 100k keyed
// records on 4 partitions: every record arrives once, in per-key order, in
// the partition the Java client would choose for its key.
func TestStatelessJob(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	in := kafkatest.CreateTopic(t, brokers, "stateless-in", partitions)
	out := kafkatest.CreateTopic(t, brokers, "stateless-out", partitions)
	const users, perUser = 1000, 100
	kafkatest.ProduceSync(t, kafkatest.Client(t, brokers), events(in, users, perUser, nil)...)

	job := engine.NewJob("stateless", engine.WithBrokers(brokers...), engine.WithGroup(kafkatest.Name("stateless")),
		engine.WithMetricsAddr(""), engine.WithCheckpointInterval(100*time.Millisecond), engine.WithStateDir(t.TempDir()))
	shared.BuildStateless(job, in, out)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- job.Run(ctx) }()

	recs := kafkatest.ReadAll(t, brokers, out, users*perUser, 2*time.Minute)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("job: %v", err)
	}
	checkOutputs(t, recs, wantIDs(users, perUser, nil), partitions, true)
}

// TestKillAndRestart SIGKILLs the job process mid-stream, while input keeps
// arriving and after it has committed some progress, and starts it again:
// at-least-once means every record is in the output afterwards, and the
// restart resumes from the committed offsets rather than from the start.
func TestKillAndRestart(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	in := kafkatest.CreateTopic(t, brokers, "kill-in", partitions)
	out := kafkatest.CreateTopic(t, brokers, "kill-out", partitions)
	group := kafkatest.Name("kill")
	const users, perUser = 500, 200
	bot := func(u, seq int) bool { return (u+seq)%17 == 0 }
	want := wantIDs(users, perUser, bot)
	input := events(in, users, perUser, bot)

	// Input arrives in steady slices for the whole test.
	producer := kafkatest.Client(t, brokers)
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		for i := 0; i < len(input); i += 1000 {
			if err := producer.ProduceSync(context.Background(), input[i:min(i+1000, len(input))]...).FirstErr(); err != nil {
				t.Errorf("producing input: %v", err)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()

	env := []string{"JOB_INPUT=" + in, "JOB_OUTPUT=" + out, "WEIR_BROKERS=" + strings.Join(brokers, ","),
		"WEIR_GROUP=" + group, "WEIR_METRICS_ADDR=", "WEIR_CHECKPOINT_INTERVAL=100ms", "WEIR_SESSION_TIMEOUT=6s",
		"WEIR_TASK_QUEUE_RECORDS=2000"}
	outputs := collect(t, brokers, out)
	first := startJob(t, env...)
	committedSum := func() (sum int64) {
		for _, o := range kafkatest.CommittedOffsets(t, brokers, group, in) {
			sum += o
		}
		return sum
	}
	kafkatest.Eventually(t, 2*time.Minute, "the first run to commit 20000 offsets", func() bool { return committedSum() >= 20000 })
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first.wait(t, 30*time.Second)
	committed, before := committedSum(), distinct(t, outputs.snapshot())
	if committed >= int64(len(input)) {
		t.Fatalf("all input was committed before the kill; the test proves nothing")
	}
	t.Logf("killed after committing %d offsets, with %d distinct outputs written", committed, before)

	second := startJob(t, env...)
	<-produced
	kafkatest.Eventually(t, 3*time.Minute, "every record after the restart", func() bool {
		return distinct(t, outputs.snapshot()) == len(want)
	})
	if err := second.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := second.wait(t, time.Minute); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	recs := outputs.snapshot()
	checkOutputs(t, recs, want, partitions, false)
	// Only what was processed after the last commit may be replayed: the
	// restart resumed from the committed offsets, not from the beginning.
	if dups := len(recs) - len(want); dups >= before {
		t.Fatalf("%d duplicates of %d outputs written before the kill: the restart did not resume from its commits", dups, before)
	}
}

// TestGracefulShutdown sends SIGTERM to a job that has caught up: it exits
// 0, has committed every input offset and has left the group. The
// checkpoint interval is long, so only the shutdown checkpoint can have
// committed everything. Exactly once, the outputs stay invisible to
// read_committed readers until that commit, and then all are there, once.
func TestGracefulShutdown(t *testing.T) {
	for _, tc := range []struct {
		guarantee string
		env       []string
	}{
		{"at-least-once", []string{"WEIR_CHECKPOINT_INTERVAL=1h"}},
		{"exactly-once", []string{"WEIR_CHECKPOINT_INTERVAL=5m", "WEIR_TRANSACTION_TIMEOUT=10m"}},
	} {
		t.Run(tc.guarantee, func(t *testing.T) {
			brokers := kafkatest.Brokers(t)
			in := kafkatest.CreateTopic(t, brokers, "term-in", partitions)
			out := kafkatest.CreateTopic(t, brokers, "term-out", partitions)
			group := kafkatest.Name("term")
			const users, perUser = 100, 50
			kafkatest.ProduceSync(t, kafkatest.Client(t, brokers), events(in, users, perUser, nil)...)
			p := startJob(t, append([]string{"JOB_INPUT=" + in, "JOB_OUTPUT=" + out, "WEIR_BROKERS=" + strings.Join(brokers, ","),
				"WEIR_GROUP=" + group, "WEIR_METRICS_ADDR=127.0.0.1:0", "WEIR_GUARANTEE=" + tc.guarantee, "WEIR_STATE_DIR=" + t.TempDir()}, tc.env...)...)
			// Uncommitted outputs count too: the job has processed
			// everything once all are written, committed or not.
			written := collect(t, brokers, out, kgo.FetchIsolationLevel(kgo.ReadUncommitted()))
			committed := collect(t, brokers, out)
			kafkatest.Eventually(t, time.Minute, "all outputs written", func() bool { return written.len() >= users*perUser })
			if tc.guarantee == "exactly-once" && committed.len() != 0 {
				t.Fatalf("%d outputs visible read_committed before any checkpoint committed", committed.len())
			}
			if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if code := p.wait(t, time.Minute); code != 0 {
				t.Fatalf("exit code %d after SIGTERM, want 0; output:\n%s", code, p.output.String())
			}
			var total int64
			for _, off := range kafkatest.CommittedOffsets(t, brokers, group, in) {
				total += off
			}
			if total != users*perUser {
				t.Fatalf("committed offsets sum to %d, want %d", total, users*perUser)
			}
			kafkatest.Eventually(t, time.Minute, "all outputs committed", func() bool { return committed.len() >= users*perUser })
			if tc.guarantee == "exactly-once" {
				if got := len(kafkatest.ReadAllSettled(t, brokers, out, users*perUser, time.Minute, 2*time.Second)); got != users*perUser {
					t.Fatalf("%d outputs committed, want exactly %d", got, users*perUser)
				}
			}
			adm := kadm.NewClient(kafkatest.Client(t, brokers))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			groups, err := adm.DescribeGroups(ctx, group)
			if err != nil {
				t.Fatal(err)
			}
			if g := groups[group]; len(g.Members) != 0 {
				t.Fatalf("group %s still has %d members after shutdown (state %s)", group, len(g.Members), g.State)
			}
		})
	}
}

// TestPoisonRecordStopsTheProcess feeds the job binary an undecodable
// record: it exits non-zero naming topic, partition and offset, and has
// committed exactly up to that record.
func TestPoisonRecordStopsTheProcess(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	in := kafkatest.CreateTopic(t, brokers, "poison-in", 1)
	out := kafkatest.CreateTopic(t, brokers, "poison-out", 1)
	group := kafkatest.Name("poison")
	var recs []*kgo.Record
	for i := range 100 {
		v := fmt.Sprintf(`{"user":"u","seq":%d}`, i)
		if i == 42 {
			v = `not json`
		}
		recs = append(recs, &kgo.Record{Topic: in, Value: []byte(v)})
	}
	kafkatest.ProduceSync(t, kafkatest.Client(t, brokers), recs...)
	// Both lives on one state directory, as a restarted container: the
	// same replica, so the second rejoins the group as the first's static
	// member at once. (A replica stopped by an error does not leave the
	// group; another would wait out the session timeout for its tasks.)
	stateDir := t.TempDir()
	p := startJob(t, "JOB_INPUT="+in, "JOB_OUTPUT="+out, "WEIR_BROKERS="+strings.Join(brokers, ","),
		"WEIR_GROUP="+group, "WEIR_METRICS_ADDR=", "WEIR_STATE_DIR="+stateDir)
	if code := p.wait(t, time.Minute); code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	if want := fmt.Sprintf("record %s/0@42 failed in source:%s", in, in); !strings.Contains(p.output.String(), want) {
		t.Fatalf("output does not name the record (%q):\n%s", want, p.output.String())
	}
	if got := kafkatest.CommittedOffsets(t, brokers, group, in)[0]; got != 42 {
		t.Fatalf("committed offset %d, want 42", got)
	}
	if got := kafkatest.ReadAll(t, brokers, out, 43, 3*time.Second); len(got) != 42 {
		t.Fatalf("%d outputs, want the 42 before the poison record", len(got))
	}
	// Restarting does not skip it: the job stops at the same record again.
	again := startJob(t, "JOB_INPUT="+in, "JOB_OUTPUT="+out, "WEIR_BROKERS="+strings.Join(brokers, ","),
		"WEIR_GROUP="+group, "WEIR_METRICS_ADDR=", "WEIR_STATE_DIR="+stateDir)
	if code := again.wait(t, time.Minute); code != 1 || !strings.Contains(again.output.String(), "@42") {
		t.Fatalf("restart: exit %d, output:\n%s", code, again.output.String())
	}
}

// TestBrokerRestartMidStream restarts the broker (SIGKILL, same data) under
// a running job: the job rides it out without failing and, once the broker
// is back, every record produced before and after is in the output.
func TestBrokerRestartMidStream(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	script := os.Getenv("WEIR_KAFKA_SH")
	if script == "" {
		t.Skip("needs the broker scripts/kafka.sh started (make test); it restarts it")
	}
	in := kafkatest.CreateTopic(t, brokers, "restart-in", partitions)
	out := kafkatest.CreateTopic(t, brokers, "restart-out", partitions)
	const users, perUser = 200, 100
	input := events(in, users, perUser, nil)
	kafkatest.ProduceSync(t, kafkatest.Client(t, brokers), input[:len(input)/2]...)

	job := engine.NewJob("restart", engine.WithBrokers(brokers...), engine.WithGroup(kafkatest.Name("restart")),
		engine.WithMetricsAddr(""), engine.WithCheckpointInterval(100*time.Millisecond), engine.WithStateDir(t.TempDir()))
	evs := connectors.KafkaSource(job, in, codec.JSON[shared.Event]())
	connectors.KafkaSink(operators.Map(evs, shared.Tag), out, codec.JSON[shared.Tagged]())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- job.Run(ctx) }()
	outputs := collect(t, brokers, out)
	kafkatest.Eventually(t, time.Minute, "the first half", func() bool { return distinct(t, outputs.snapshot()) == len(input)/2 })

	cmd := exec.Command("bash", script, "restart", "--kill")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("restarting the broker: %v\n%s", err, b)
	}
	select {
	case err := <-done:
		t.Fatalf("the job stopped while the broker restarted: %v", err)
	default:
	}
	kafkatest.ProduceSync(t, kafkatest.Client(t, brokers), input[len(input)/2:]...)
	kafkatest.Eventually(t, 2*time.Minute, "every record after the broker restart", func() bool {
		return distinct(t, outputs.snapshot()) == len(input)
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("job: %v", err)
	}
	checkOutputs(t, outputs.snapshot(), wantIDs(users, perUser, nil), partitions, false)
}
