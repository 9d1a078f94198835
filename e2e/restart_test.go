package e2e

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weirstream/weir/internal/kafkatest"
)

// TestCrashLoopResumesAtOnce is a crash-looping pod: the job, exactly
// once, with the default 45 s session timeout, is SIGKILLed and restarted
// at once on its state directory ten times, 2-4 s apart, while input keeps
// arriving. Every life must make progress, well before the session timeout
// would have expired its previous incarnation (static membership: it
// rejoins as the same member), and the output must be exactly once.
func TestCrashLoopResumesAtOnce(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	in := kafkatest.CreateTopic(t, brokers, "loop-in", partitions)
	out := kafkatest.CreateTopic(t, brokers, "loop-out", partitions)
	group := kafkatest.Name("loop")
	const users, perUser = 200, 400
	bot := func(u, seq int) bool { return (u+seq)%13 == 0 }
	want := wantIDs(users, perUser, bot)
	input := events(in, users, perUser, bot)

	producer := kafkatest.Client(t, brokers)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	produced := make(chan struct{})
	go func() { // over a minute of input, a slice every 200 ms: more than the lives take
		defer close(produced)
		for i := 0; i < len(input) && ctx.Err() == nil; i += 250 {
			if err := producer.ProduceSync(ctx, input[i:min(i+250, len(input))]...).FirstErr(); err != nil && ctx.Err() == nil {
				t.Errorf("producing input: %v", err)
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()

	env := []string{"JOB_INPUT=" + in, "JOB_OUTPUT=" + out, "WEIR_BROKERS=" + strings.Join(brokers, ","),
		"WEIR_GROUP=" + group, "WEIR_METRICS_ADDR=", "WEIR_CHECKPOINT_INTERVAL=100ms", "WEIR_STATE_DIR=" + t.TempDir()}
	outputs := collect(t, brokers, out)
	rng := rand.New(rand.NewPCG(3, 5))
	var firstOutput []time.Duration
	for life := range 11 {
		before := outputs.len()
		start := time.Now()
		p := startJob(t, env...)
		kafkatest.Eventually(t, 40*time.Second, "a new committed output in this life", func() bool { return outputs.len() > before })
		firstOutput = append(firstOutput, time.Since(start))
		if life == 10 {
			<-produced
			kafkatest.Eventually(t, 2*time.Minute, "every record", func() bool { return distinct(t, outputs.snapshot()) == len(want) })
			if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if code := p.wait(t, time.Minute); code != 0 {
				t.Fatalf("exit code %d after SIGTERM", code)
			}
			break
		}
		time.Sleep(time.Duration(2000+rng.IntN(2000)) * time.Millisecond) // the schedule, not a wait for a state
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		p.wait(t, 30*time.Second)
	}
	sorted := slices.Clone(firstOutput)
	slices.Sort(sorted)
	t.Logf("time from start to the first new committed output, per life: %v (median %v, max %v)",
		firstOutput, sorted[len(sorted)/2], sorted[len(sorted)-1])
	// The session timeout is 45 s: a life that waited for it would not
	// have made progress within 40 s. 10 s leaves room for a slow machine.
	for i, d := range firstOutput {
		if d > 10*time.Second {
			t.Errorf("life %d made its first output after %v: it waited for the group", i, d)
		}
	}
	checkOutputs(t, outputs.snapshot(), want, partitions, true)
}
