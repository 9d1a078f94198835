package e2e

import (
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/weirstream/weir/internal/kafkatest"
)

// TestAsyncMapCrashesExactlyOnce SIGKILLs a job whose records are tagged
// by an HTTP service through AsyncMap (32 calls in flight, 10 ms each)
// four times while input arrives, and restarts it at once. Calls in flight
// at a kill are lost and made again; the committed outputs must be every
// record exactly once, each tagged by the service (never the fallback:
// the service stays up).
func TestAsyncMapCrashesExactlyOnce(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		time.Sleep(10 * time.Millisecond)
		_, _ = io.WriteString(w, "human")
	}))
	defer srv.Close()

	brokers := kafkatest.Brokers(t)
	in := kafkatest.CreateTopic(t, brokers, "enrich-in", partitions)
	out := kafkatest.CreateTopic(t, brokers, "enrich-out", partitions)
	group := kafkatest.Name("enrich")
	const users, perUser = 100, 150
	bot := func(u, seq int) bool { return (u+seq)%11 == 0 }
	want := wantIDs(users, perUser, bot)
	input := events(in, users, perUser, bot)

	produced := produceInSlices(t, brokers, placed(input, partitions), len(input)/250, 100*time.Millisecond) // about 6 s of input

	r := &replica{name: "enrich", job: "enrich", env: []string{"JOB_INPUT=" + in, "JOB_OUTPUT=" + out,
		"WEIR_BROKERS=" + strings.Join(brokers, ","), "WEIR_GROUP=" + group, "WEIR_METRICS_ADDR=",
		"WEIR_CHECKPOINT_INTERVAL=100ms", "WEIR_STATE_DIR=" + t.TempDir(), "ENRICH_URL=" + srv.URL}}
	outputs := collect(t, brokers, out)
	r.start(t)
	rng := rand.New(rand.NewPCG(7, 11))
	for range 4 {
		time.Sleep(time.Duration(1000+rng.IntN(1500)) * time.Millisecond) // the schedule, not a wait for a state
		if err := r.p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-r.p.done
		r.start(t)
	}
	<-produced
	kafkatest.Eventually(t, 2*time.Minute, "every record", func() bool { return distinct(t, outputs.snapshot()) == len(want) })
	r.stop(t, nil)
	t.Logf("%d calls for %d records", calls.Load(), len(want))
	checkOutputs(t, outputs.snapshot(), want, partitions, true)
}
