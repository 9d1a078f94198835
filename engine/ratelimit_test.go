package engine_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/internal/kafkatest"
	"github.com/weirstream/weir/operators"
)

// arrivals records when each record reached the job's map.
type arrivals struct {
	mu    sync.Mutex
	times []time.Time
}

func (a *arrivals) add() {
	a.mu.Lock()
	a.times = append(a.times, time.Now())
	a.mu.Unlock()
}

func (a *arrivals) snapshot() []time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]time.Time(nil), a.times...)
}

// TestRateCapHoldsACatchUp: a backlog read with a cap (over the replica's
// inputs, or on one source) is read at the cap, not as fast as the replica
// can, and the cap is in the metrics. The rate it logs is the figure the
// issue asks for (within 10% of the cap); the test fails only above the
// cap or far below it, not on the machine's speed.
func TestRateCapHoldsACatchUp(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	const n, capRate = 8000, 2000.0
	for _, perSource := range []bool{false, true} {
		t.Run("per-source="+strconv.FormatBool(perSource), func(t *testing.T) {
			in := kafkatest.CreateTopic(t, brokers, "capped-in", 2)
			out := kafkatest.CreateTopic(t, brokers, "capped-out", 2)
			var recs []*kgo.Record
			for i := range n {
				b, _ := json.Marshal(event{User: "u" + strconv.Itoa(i%10), Seq: i})
				recs = append(recs, &kgo.Record{Topic: in, Key: []byte("u" + strconv.Itoa(i%10)), Value: b})
			}
			kafkatest.ProduceSync(t, kafkatest.Client(t, brokers), recs...)

			addr := kafkatest.FreeAddr(t)
			opts := []engine.Opt{engine.WithBrokers(brokers...), engine.WithGroup(kafkatest.Name("capped")), engine.WithMetricsAddr(addr),
				engine.WithStateDir(t.TempDir()), engine.WithCheckpointInterval(100 * time.Millisecond), engine.WithLogLevel("warn")}
			var srcOpts []connectors.SourceOpt
			label := `topic="*"`
			if perSource {
				srcOpts = append(srcOpts, connectors.WithMaxRecordsPerSecond(capRate))
				label = `topic="` + in + `"`
			} else {
				opts = append(opts, engine.WithMaxRecordsPerSecond(capRate))
			}
			job := engine.NewJob("capped", opts...)
			var seen arrivals
			views := connectors.KafkaSource(job, in, codec.JSON[event](), srcOpts...)
			connectors.KafkaSink(operators.Map(views, func(e event) (event, error) { seen.add(); return e, nil }), out, codec.JSON[event]())
			stop := runJob(t, job)
			kafkatest.Eventually(t, time.Minute, "every record read", func() bool { return len(seen.snapshot()) >= n })
			_, metrics := get("http://" + addr + "/metrics")
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			times := seen.snapshot()
			// Records come in bursts of a bucket each, a poll apart: count
			// from the start of a burst in the second half (the first has
			// the full bucket's) to the start of the last one.
			var starts []int
			for i := len(times) / 2; i < len(times); i++ {
				if times[i].Sub(times[i-1]) > 30*time.Millisecond {
					starts = append(starts, i)
				}
			}
			if len(starts) < 2 {
				t.Fatalf("no pauses in the second half of the records: the cap did not hold (%d records in %v)", n, times[len(times)-1].Sub(times[0]))
			}
			first, last := starts[0], starts[len(starts)-1]
			rate := float64(last-first) / times[last].Sub(times[first]).Seconds()
			t.Logf("cap %v records/s, read at %.0f records/s", capRate, rate)
			// The cap is the behaviour: never above it (10% for the
			// measurement's granularity). Below it only by a margin a
			// slow machine cannot explain: paused inputs must resume.
			if rate > capRate*1.1 {
				t.Errorf("read at %.0f records/s, above the cap %v", rate, capRate)
			}
			if rate < capRate/2 {
				t.Errorf("read at %.0f records/s, under half the cap %v: paused inputs resume late", rate, capRate)
			}
			found := false
			for _, line := range strings.Split(metrics, "\n") {
				if strings.HasPrefix(line, "weir_rate_limit_records_per_second{") && strings.Contains(line, label) && strings.HasSuffix(line, " 2000") {
					found = true
				}
			}
			if !found {
				t.Errorf("/metrics has no weir_rate_limit_records_per_second{%s} 2000", label)
			}
		})
	}
}
