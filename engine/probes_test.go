package engine_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
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

func get(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestProbesAndMetrics checks what Kubernetes and Prometheus see: live at
// once, ready once the group assigned the job its tasks, and per-operator
// record counts and lag in /metrics.
func TestProbesAndMetrics(t *testing.T) {
	brokers := kafkatest.Fake(t, 2, "views", "tagged")
	var recs []*kgo.Record
	for i := range 100 {
		b, _ := json.Marshal(event{User: "u", Seq: i})
		recs = append(recs, &kgo.Record{Topic: "views", Partition: int32(i % 2), Value: b})
	}
	kafkatest.ProduceSync(t, kafkatest.Client(t, brokers, kgo.RecordPartitioner(kgo.ManualPartitioner())), recs...)
	addr := kafkatest.FreeAddr(t)
	job := buildJob("probes", "views", "tagged", engine.WithBrokers(brokers...), engine.WithMetricsAddr(addr), engine.WithStateDir(t.TempDir()),
		engine.WithCheckpointInterval(20*time.Millisecond))
	stop := runJob(t, job)
	base := "http://" + addr
	kafkatest.Eventually(t, 10*time.Second, "/healthz", func() bool { c, _ := get(base + "/healthz"); return c == 200 })
	kafkatest.Eventually(t, 10*time.Second, "/readyz", func() bool { c, _ := get(base + "/readyz"); return c == 200 })
	want := []string{
		`weir_records_in_total{job="probes",operator="source:views"} 100`,
		`weir_records_out_total{job="probes",operator="sink:tagged"} 100`,
		`weir_records_in_total{job="probes",operator="filter"} 100`,
		`weir_consumer_lag_records{job="probes",partition="0",topic="views"} 0`,
		`weir_tasks_assigned{job="probes"} 2`,
		`weir_ready{job="probes"} 1`,
		`weir_checkpoints_total{job="probes",outcome="ok"}`,
	}
	var body string
	deadline := time.Now().Add(10 * time.Second)
	for missing := want; len(missing) > 0; {
		if time.Now().After(deadline) {
			t.Fatalf("/metrics lacks %q; it has:\n%s", missing, body)
		}
		time.Sleep(20 * time.Millisecond)
		_, body = get(base + "/metrics")
		missing = nil
		for _, w := range want {
			if !strings.Contains(body, w) {
				missing = append(missing, w)
			}
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if c, _ := get(base + "/readyz"); c == 200 {
		t.Fatal("still ready after stopping")
	}
}

func TestNotReadyWhileBrokerUnreachable(t *testing.T) {
	addr := kafkatest.FreeAddr(t)
	job := buildJob("unready", "views", "tagged", engine.WithBrokers("127.0.0.1:1"), engine.WithMetricsAddr(addr), engine.WithStateDir(t.TempDir()))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- job.Run(ctx) }()
	kafkatest.Eventually(t, 10*time.Second, "/healthz", func() bool { c, _ := get("http://" + addr + "/healthz"); return c == 200 })
	// Not ready from the start ("starting"), then saying why.
	kafkatest.Eventually(t, 10*time.Second, "/readyz saying it waits for Kafka", func() bool {
		code, body := get("http://" + addr + "/readyz")
		if code != http.StatusServiceUnavailable {
			t.Fatalf("/readyz = %d %q while the broker is unreachable, want 503", code, body)
		}
		return strings.Contains(body, "waiting for the Kafka cluster")
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel while waiting: %v", err)
	}
}

// TestWatermarkMetrics: a task's watermark and idleness reach /metrics.
func TestWatermarkMetrics(t *testing.T) {
	brokers := kafkatest.Fake(t, 1, "views", "tagged")
	at := time.Date(2024, 1, 1, 10, 0, 5, 0, time.UTC)
	b, _ := json.Marshal(event{User: "u", Seq: 1})
	kafkatest.ProduceSync(t, kafkatest.Client(t, brokers), &kgo.Record{Topic: "views", Value: b, Timestamp: at})
	addr := kafkatest.FreeAddr(t)
	job := engine.NewJob("wm", engine.WithBrokers(brokers...), engine.WithMetricsAddr(addr), engine.WithStateDir(t.TempDir()))
	src := connectors.KafkaSource(job, "views", codec.JSON[event](),
		connectors.WithWatermarks(windowing.RecordTimestamps[event](time.Second).WithIdleness(100*time.Millisecond)))
	connectors.KafkaSink(src, "tagged", codec.JSON[event]())
	runJob(t, job)
	// 10:00:05 - 1s - 1ms, in Unix seconds; then the input goes idle.
	want := []string{
		`weir_watermark_timestamp_seconds{job="wm",task="0_0"} 1.704103203999e+09`,
		`weir_task_inputs_idle{job="wm",task="0_0"} 1`,
	}
	kafkatest.Eventually(t, 10*time.Second, "watermark metrics", func() bool {
		_, body := get("http://" + addr + "/metrics")
		for _, w := range want {
			if !strings.Contains(body, w) {
				return false
			}
		}
		return true
	})
}

// TestHealthzFailsWhenUserCodeWedgesTheReplica: a Map function that never
// returns holds its task. With checkpoints due, the next one waits for the
// task's barrier and the poll loop stops coming round; with none due, the
// poll loop goes on but the task stays on the same records. Either way
// /healthz turns 503 after the liveness timeout, so Kubernetes restarts the
// replica, and is 200 again once the function returns.
func TestHealthzFailsWhenUserCodeWedgesTheReplica(t *testing.T) {
	for _, tc := range []struct {
		name     string
		interval time.Duration
		want     string
	}{
		{"checkpoint waits", 20 * time.Millisecond, "the poll loop has not come round"},
		{"no checkpoint due", 5 * time.Minute, "task 0_0 has been on the same records"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			brokers := kafkatest.Fake(t, 1, "in", "out")
			kafkatest.ProduceSync(t, kafkatest.Client(t, brokers), &kgo.Record{Topic: "in", Value: []byte("first")}, &kgo.Record{Topic: "in", Value: []byte("wedge")})
			addr := kafkatest.FreeAddr(t)
			release := make(chan struct{})
			wedged := make(chan struct{})
			job := engine.NewJob("wedged", engine.WithBrokers(brokers...), engine.WithMetricsAddr(addr), engine.WithStateDir(t.TempDir()),
				engine.WithCheckpointInterval(tc.interval), engine.WithTransactionTimeout(max(10*time.Second, 2*tc.interval)),
				engine.WithLivenessTimeout(time.Second), engine.WithLogLevel("error"))
			src := connectors.KafkaSource(job, "in", codec.String())
			connectors.KafkaSink(operators.Map(src, func(s string) (string, error) {
				if s == "wedge" {
					close(wedged)
					<-release
				}
				return s, nil
			}), "out", codec.String())
			stop := runJob(t, job)
			base := "http://" + addr
			select {
			case <-wedged:
			case <-time.After(30 * time.Second):
				t.Fatal("the task never reached the record that wedges it")
			}
			if c, body := get(base + "/healthz"); c != 200 {
				t.Fatalf("/healthz %d %q before the liveness timeout", c, body)
			}
			kafkatest.Eventually(t, 10*time.Second, "/healthz 503 while the task is wedged", func() bool {
				c, body := get(base + "/healthz")
				return c == http.StatusServiceUnavailable && strings.Contains(body, tc.want)
			})
			close(release)
			kafkatest.Eventually(t, 10*time.Second, "/healthz 200 once the function returned", func() bool { c, _ := get(base + "/healthz"); return c == 200 })
			if err := stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestPprofOnlyWhenAsked: Go's profiles are served on the metrics address
// with WEIR_PPROF, and not otherwise (they show the command line, and a
// CPU profile costs while it runs).
func TestPprofOnlyWhenAsked(t *testing.T) {
	brokers := kafkatest.Fake(t, 1, "views", "tagged")
	for _, on := range []bool{false, true} {
		addr := kafkatest.FreeAddr(t)
		job := buildJob("pprof", "views", "tagged", engine.WithBrokers(brokers...), engine.WithMetricsAddr(addr),
			engine.WithStateDir(t.TempDir()), engine.WithPprof(on))
		stop := runJob(t, job)
		base := "http://" + addr
		kafkatest.Eventually(t, 10*time.Second, "/healthz", func() bool { c, _ := get(base + "/healthz"); return c == 200 })
		code, body := get(base + "/debug/pprof/heap?debug=1")
		if on && (code != 200 || !strings.Contains(body, "heap profile")) {
			t.Fatalf("pprof on: /debug/pprof/heap gave %d %.200q", code, body)
		}
		if !on && code != 404 {
			t.Fatalf("pprof off: /debug/pprof/heap gave %d, want 404", code)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReadyWhenTheFirstAssignmentWinsTheRace: the client joins the group
// as soon as it exists, so the first assignment, and even the end of the
// tasks' restores, may come before the start goes on. The replica must
// still end up ready: readiness is what the tasks say, not the order in
// which the start reached its steps.
func TestReadyWhenTheFirstAssignmentWinsTheRace(t *testing.T) {
	brokers := kafkatest.Fake(t, 2, "views", "tagged")
	addr := kafkatest.FreeAddr(t)
	base := "http://" + addr
	defer engine.SetClientStartedHook(func() {
		// Hold the start until the assignment made the replica ready.
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if c, _ := get(base + "/readyz"); c == 200 {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})()
	job := buildJob("race", "views", "tagged", engine.WithBrokers(brokers...), engine.WithMetricsAddr(addr), engine.WithStateDir(t.TempDir()),
		engine.WithCheckpointInterval(20*time.Millisecond))
	runJob(t, job)
	kafkatest.Eventually(t, 10*time.Second, "the job's tasks assigned", func() bool {
		_, body := get(base + "/metrics")
		return strings.Contains(body, `weir_tasks_assigned{job="race"} 2`)
	})
	kafkatest.Eventually(t, 5*time.Second, "/readyz", func() bool { c, _ := get(base + "/readyz"); return c == 200 })
	if _, body := get(base + "/metrics"); !strings.Contains(body, `weir_ready{job="race"} 1`) {
		t.Fatal("/readyz is 200 but weir_ready is not 1")
	}
}
