package deploy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.yaml.in/yaml/v4"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/internal/kafkatest"
	"github.com/weirstream/weir/operators"
)

// TestPrometheusScrapesAJob runs a job, and a real Prometheus (Debian's
// package, through scripts/prometheus.sh) with the repository's own
// prometheus.yml and alert rules, its target pointed at the job; then asks
// Prometheus's HTTP API for the series the dashboard and the alerts use,
// under the job's own name in the job label (honor_labels).
func TestPrometheusScrapesAJob(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Prometheus server")
	}
	brokers := kafkatest.Fake(t, 2, "prom-in", "prom-out")
	metricsAddr, promAddr := kafkatest.FreeAddr(t), kafkatest.FreeAddr(t)
	const name = "prom-scraped"
	job := engine.NewJob(name, engine.WithBrokers(brokers...), engine.WithMetricsAddr(metricsAddr),
		engine.WithStateDir(t.TempDir()), engine.WithCheckpointInterval(100*time.Millisecond), engine.WithLogLevel("warn"))
	upper := operators.Map(connectors.KafkaSource(job, "prom-in", codec.String()),
		func(s string) (string, error) { return strings.ToUpper(s), nil })
	connectors.KafkaSink(upper, "prom-out", codec.String())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- job.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	cl := kafkatest.Client(t, brokers)
	for i := range 100 {
		kafkatest.ProduceSync(t, cl, &kgo.Record{Topic: "prom-in", Value: []byte(fmt.Sprint("r", i))})
	}

	// The repository's configuration, its target and rule file made local.
	raw, err := os.ReadFile(filepath.Join("prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var conf map[string]any
	if err := yaml.Unmarshal(raw, &conf); err != nil {
		t.Fatal(err)
	}
	rules, err := filepath.Abs(filepath.Join("prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	conf["rule_files"] = []string{rules}
	conf["global"] = map[string]any{"scrape_interval": "1s", "evaluation_interval": "1s"}
	scrapes, _ := conf["scrape_configs"].([]any)
	if len(scrapes) != 1 {
		t.Fatalf("prometheus.yml has %d scrape configs, want the one for Weir", len(scrapes))
	}
	sc := scrapes[0].(map[string]any)
	sc["scrape_interval"] = "1s"
	sc["static_configs"] = []any{map[string]any{"targets": []string{metricsAddr}}}
	dir := t.TempDir()
	out, err := yaml.Marshal(conf)
	if err != nil {
		t.Fatal(err)
	}
	confFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(confFile, out, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", filepath.Join("..", "scripts", "prometheus.sh"), "--config.file="+confFile,
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+promAddr)
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus output:\n%s", log.String())
		}
	})

	query := func(q string) []map[string]any {
		resp, err := http.Get("http://" + promAddr + "/api/v1/query?query=" + url.QueryEscape(q))
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		var r struct {
			Data struct {
				Result []map[string]any `json:"result"`
			} `json:"data"`
		}
		b, _ := io.ReadAll(resp.Body)
		if json.Unmarshal(b, &r) != nil {
			return nil
		}
		return r.Data.Result
	}
	for _, q := range []string{
		`up{instance="` + metricsAddr + `"} == 1`,
		`sum(weir_records_in_total{job="` + name + `"}) >= 100`,
		`sum(weir_records_out_total{job="` + name + `"}) >= 100`,
		`weir_ready{job="` + name + `"} == 1`,
		`sum(weir_checkpoints_total{job="` + name + `"}) > 0`,
		`weir_consumer_lag_records{job="` + name + `"}`,
		`weir_tasks_assigned{job="` + name + `"} > 0`,
	} {
		if !eventually(time.Minute, func() bool { return len(query(q)) > 0 }) {
			t.Fatalf("Prometheus does not answer %s; the job's own metrics say:\n%s", q, grepMetrics(t, metricsAddr, "weir_ready", "weir_tasks", "weir_records_in"))
		}
	}

	// The alert rules are loaded and evaluate.
	resp, err := http.Get("http://" + promAddr + "/api/v1/rules")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []struct {
					Name   string `json:"name"`
					Health string `json:"health"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	var n int
	for _, g := range r.Data.Groups {
		for _, rule := range g.Rules {
			n++
			if rule.Health == "err" {
				t.Errorf("alert %s in group %s does not evaluate", rule.Name, g.Name)
			}
		}
	}
	if n == 0 {
		t.Fatal("Prometheus loaded no alert rules")
	}
	t.Logf("Prometheus scraped %s at %s and loaded %d alert rules", name, metricsAddr, n)
}

// eventually polls cond every 200 ms until it holds or d passes.
func eventually(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// grepMetrics returns the lines of the job's /metrics that start with
// one of prefixes.
func grepMetrics(t *testing.T, addr string, prefixes ...string) string {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				lines = append(lines, l)
			}
		}
	}
	return strings.Join(lines, "\n")
}
