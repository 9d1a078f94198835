package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weirstream/weir/internal/kafkatest"
)

// TestBoundedRunSurvivesSIGKILL runs a job over a bounded range
// (WEIR_UNTIL=end: the input as it stands when the job starts), kills it
// in the middle, and starts it again: the second life ends by itself with
// exit code 0, and the output is every record exactly once. The input is
// complete before the first start, so both lives have the same end.
func TestBoundedRunSurvivesSIGKILL(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	in := kafkatest.CreateTopic(t, brokers, "bounded-in", partitions)
	out := kafkatest.CreateTopic(t, brokers, "bounded-out", partitions)
	group := kafkatest.Name("bounded")
	const users, perUser = 200, 200
	bot := func(u, seq int) bool { return (u+seq)%7 == 0 }
	want := wantIDs(users, perUser, bot)
	kafkatest.ProduceSync(t, kafkatest.Client(t, brokers), events(in, users, perUser, bot)...)

	r := &replica{name: "bounded", job: "stateless", env: []string{"JOB_INPUT=" + in, "JOB_OUTPUT=" + out,
		"WEIR_BROKERS=" + strings.Join(brokers, ","), "WEIR_GROUP=" + group, "WEIR_METRICS_ADDR=",
		"WEIR_CHECKPOINT_INTERVAL=100ms", "WEIR_STATE_DIR=" + t.TempDir(), "WEIR_UNTIL=end",
		"WEIR_TASK_QUEUE_RECORDS=500"}}
	outputs := collect(t, brokers, out)
	r.start(t)
	kafkatest.Eventually(t, time.Minute, "some output", func() bool { return outputs.len() > 0 })
	if n := outputs.len(); n >= len(want) {
		t.Logf("the first life finished before the kill (%d outputs)", n)
	}
	_ = r.p.cmd.Process.Signal(syscall.SIGKILL)
	<-r.p.done
	r.start(t)
	if code := r.p.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("the second life exited %d, want 0 at the end of its input:\n%s", code, r.p.output.String())
	}
	if !strings.Contains(r.p.output.String(), "end of input") {
		t.Errorf("the second life did not say it reached the end of its input:\n%s", r.p.output.String())
	}
	kafkatest.Eventually(t, time.Minute, "every record", func() bool { return distinct(t, outputs.snapshot()) == len(want) })
	checkOutputs(t, outputs.snapshot(), want, partitions, true)
}
