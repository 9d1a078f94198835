package deploy_test

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v4"
)

// loadCompose loads ../docker-compose.yml the way `docker compose` does:
// schema validation, interpolation, normalization, path resolution and the
// consistency checks (undefined services, volumes, networks, ...). The host
// environment is left out so the result does not depend on the machine.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	root := repoRoot(t)
	opts, err := cli.NewProjectOptions(
		[]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root),
		cli.WithInterpolation(true),
		cli.WithNormalization(true),
		cli.WithResolvedPaths(true),
		cli.WithConsistency(true),
	)
	if err != nil {
		t.Fatal(err)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return project
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, err := p.GetService(name)
	if err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return s
}

func env(s types.ServiceConfig, key string) (string, bool) {
	v, ok := s.Environment[key]
	if !ok || v == nil {
		return "", false
	}
	return *v, true
}

func TestComposeServices(t *testing.T) {
	p := loadCompose(t)
	for _, name := range []string{"kafka", "demo", "prometheus", "grafana"} {
		if _, ok := p.Services[name]; !ok {
			t.Errorf("service %q missing (have %v)", name, p.ServiceNames())
		}
	}
	if len(p.DisabledServices) > 0 {
		t.Errorf("services behind a profile: %v; the stack should start with a plain `docker compose up`", sortedKeys(p.DisabledServices))
	}
	if t.Failed() {
		t.FailNow()
	}

	if img := service(t, p, "kafka").Image; img != "apache/kafka:4.4.0" {
		t.Errorf("kafka image %q, want apache/kafka:4.4.0", img)
	}
	for _, name := range []string{"prometheus", "grafana"} {
		if s := service(t, p, name); s.Image == "" || s.Build != nil {
			t.Errorf("%s: want a published image, got image=%q build=%v", name, s.Image, s.Build)
		}
	}
}

func TestComposeDemoBuild(t *testing.T) {
	p := loadCompose(t)
	demo := service(t, p, "demo")
	if demo.Build == nil {
		t.Fatal("demo has no build section")
	}
	root := repoRoot(t)
	if demo.Build.Context != root {
		t.Errorf("demo build context %s, want the repository root %s", demo.Build.Context, root)
	}
	dockerfile := demo.Build.Dockerfile
	if dockerfile == "" {
		dockerfile = "Dockerfile"
	}
	if !filepath.IsAbs(dockerfile) {
		dockerfile = filepath.Join(demo.Build.Context, dockerfile)
	}
	if _, err := os.Stat(dockerfile); err != nil {
		t.Errorf("demo dockerfile: %v", err)
	}
	job, ok := demo.Build.Args["JOB"]
	if !ok || job == nil || *job != "demo" {
		t.Errorf("demo build args JOB = %v, want demo", job)
	}
	// Every build arg is declared by the Dockerfile.
	globalArgs, stages := parseDockerfile(t, dockerfile)
	for name := range demo.Build.Args {
		_, declared := globalArgs[name]
		for _, st := range stages {
			_, inStage := st.argDefault(name)
			declared = declared || inStage
		}
		if !declared {
			t.Errorf("demo build arg %s is not declared (ARG) in %s", name, dockerfile)
		}
	}
}

func TestComposeDemoDependsOnHealthyKafka(t *testing.T) {
	p := loadCompose(t)
	demo, kafka := service(t, p, "demo"), service(t, p, "kafka")

	dep, ok := demo.DependsOn["kafka"]
	if !ok {
		t.Fatalf("demo does not depend on kafka (depends_on: %v)", demo.DependsOn)
	}
	if dep.Condition != types.ServiceConditionHealthy {
		t.Errorf("demo depends on kafka with condition %q, want %q", dep.Condition, types.ServiceConditionHealthy)
	}
	if !dep.Required {
		t.Error("demo's kafka dependency is not required")
	}
	// service_healthy needs a healthcheck to ever become true.
	hc := kafka.HealthCheck
	if hc == nil || hc.Disable || len(hc.Test) < 2 || hc.Test[0] == "NONE" {
		t.Fatalf("kafka has no healthcheck (%+v): demo would never start", hc)
	}
	if !strings.Contains(strings.Join(hc.Test, " "), "/opt/kafka/bin/kafka-broker-api-versions.sh") {
		t.Errorf("kafka healthcheck %v does not use kafka-broker-api-versions.sh", hc.Test)
	}
	// The demo image is distroless: a healthcheck command would not run.
	if demo.HealthCheck != nil && !demo.HealthCheck.Disable {
		t.Errorf("demo has a healthcheck %v, but its image has no shell or curl", demo.HealthCheck.Test)
	}
}

// kafkaListeners parses a Kafka listener list ("NAME://host:port,...") into
// name -> host:port.
func kafkaListeners(t *testing.T, value string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for l := range strings.SplitSeq(value, ",") {
		name, addr, ok := strings.Cut(strings.TrimSpace(l), "://")
		if !ok {
			t.Fatalf("malformed Kafka listener %q", l)
		}
		out[name] = addr
	}
	return out
}

func TestComposeKafkaKRaft(t *testing.T) {
	p := loadCompose(t)
	kafka := service(t, p, "kafka")
	get := func(key string) string {
		t.Helper()
		v, ok := env(kafka, key)
		if !ok {
			t.Errorf("kafka: %s not set", key)
		}
		return v
	}

	if roles := get("KAFKA_PROCESS_ROLES"); roles != "broker,controller" {
		t.Errorf("KAFKA_PROCESS_ROLES = %q, want broker,controller", roles)
	}
	nodeID := get("KAFKA_NODE_ID")
	listeners := kafkaListeners(t, get("KAFKA_LISTENERS"))
	if listeners["PLAINTEXT"] != ":9092" || listeners["CONTROLLER"] != ":9093" {
		t.Errorf("KAFKA_LISTENERS = %v, want PLAINTEXT://:9092,CONTROLLER://:9093", listeners)
	}
	advertised := kafkaListeners(t, get("KAFKA_ADVERTISED_LISTENERS"))
	if advertised["PLAINTEXT"] != "kafka:9092" {
		t.Errorf("KAFKA_ADVERTISED_LISTENERS = %v, want PLAINTEXT://kafka:9092", advertised)
	}
	if _, ok := advertised["CONTROLLER"]; ok {
		t.Error("the controller listener must not be advertised to clients")
	}
	controllerName := get("KAFKA_CONTROLLER_LISTENER_NAMES")
	if _, ok := listeners[controllerName]; !ok {
		t.Errorf("KAFKA_CONTROLLER_LISTENER_NAMES = %q is not one of KAFKA_LISTENERS %v", controllerName, listeners)
	}
	// Every listener has a security protocol.
	protocols := map[string]string{}
	for pair := range strings.SplitSeq(get("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"), ",") {
		name, proto, _ := strings.Cut(pair, ":")
		protocols[name] = proto
	}
	for name := range listeners {
		if protocols[name] == "" {
			t.Errorf("listener %s has no entry in KAFKA_LISTENER_SECURITY_PROTOCOL_MAP %v", name, protocols)
		}
	}
	// The single voter is this node, on the controller listener's port.
	_, controllerPort, _ := net.SplitHostPort(listeners[controllerName])
	if voters, want := get("KAFKA_CONTROLLER_QUORUM_VOTERS"), fmt.Sprintf("%s@kafka:%s", nodeID, controllerPort); voters != want {
		t.Errorf("KAFKA_CONTROLLER_QUORUM_VOTERS = %q, want %q", voters, want)
	}
	// One broker: internal topics must not ask for more replicas.
	for _, key := range []string{
		"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
		"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
		"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
	} {
		if v := get(key); v != "1" {
			t.Errorf("%s = %q, want 1", key, v)
		}
	}
}

// reachableNames are the host names other services can use for s: its
// service name, its hostname and its network aliases.
func reachableNames(s types.ServiceConfig) []string {
	names := []string{s.Name}
	if s.Hostname != "" {
		names = append(names, s.Hostname)
	}
	for _, n := range s.Networks {
		if n != nil {
			names = append(names, n.Aliases...)
		}
	}
	return names
}

func shareNetwork(a, b types.ServiceConfig) bool {
	for name := range a.Networks {
		if _, ok := b.Networks[name]; ok {
			return true
		}
	}
	return false
}

func TestComposeDemoReachesKafka(t *testing.T) {
	p := loadCompose(t)
	demo, kafka := service(t, p, "demo"), service(t, p, "kafka")
	if !shareNetwork(demo, kafka) {
		t.Fatalf("demo (networks %v) and kafka (networks %v) share no network", sortedKeys(demo.Networks), sortedKeys(kafka.Networks))
	}

	brokers, ok := env(demo, "WEIR_BROKERS")
	if !ok || brokers == "" {
		t.Fatal("demo: WEIR_BROKERS not set")
	}
	advertisedValue, _ := env(kafka, "KAFKA_ADVERTISED_LISTENERS")
	advertised := kafkaListeners(t, advertisedValue)
	for b := range strings.SplitSeq(brokers, ",") {
		b = strings.TrimSpace(b)
		var listener string
		for name, addr := range advertised {
			if addr == b {
				listener = name
			}
		}
		if listener == "" {
			t.Errorf("demo WEIR_BROKERS entry %q is not one of kafka's advertised listeners %v", b, advertised)
			continue
		}
		host, _, err := net.SplitHostPort(b)
		if err != nil {
			t.Errorf("WEIR_BROKERS entry %q: %v", b, err)
			continue
		}
		if !slices.Contains(reachableNames(kafka), host) {
			t.Errorf("WEIR_BROKERS host %q does not resolve to the kafka service (names %v)", host, reachableNames(kafka))
		}
	}
}

func TestComposeDemoRuntime(t *testing.T) {
	p := loadCompose(t)
	demo := service(t, p, "demo")

	want := map[string]string{
		"WEIR_METRICS_ADDR": ":9464",
		"WEIR_STATE_DIR":    "/var/lib/weir",
	}
	for k, v := range want {
		if got, _ := env(demo, k); got != v {
			t.Errorf("demo %s = %q, want %q", k, got, v)
		}
	}

	// State lives on a named volume mounted at WEIR_STATE_DIR.
	stateDir, _ := env(demo, "WEIR_STATE_DIR")
	var stateVolume bool
	for _, v := range demo.Volumes {
		if v.Target == stateDir {
			stateVolume = v.Type == types.VolumeTypeVolume && v.Source != ""
			if _, declared := p.Volumes[v.Source]; !declared {
				t.Errorf("demo state volume %q is not declared under volumes:", v.Source)
			}
		}
	}
	if !stateVolume {
		t.Errorf("demo: no named volume mounted at WEIR_STATE_DIR %s (volumes: %v)", stateDir, demo.Volumes)
	}

	// The published port is the one the metrics server listens on.
	addr, _ := env(demo, "WEIR_METRICS_ADDR")
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("WEIR_METRICS_ADDR %q: %v", addr, err)
	}
	if !publishes(demo, port, port) {
		t.Errorf("demo does not publish its metrics port %s (ports %+v)", port, demo.Ports)
	}
}

// publishes reports whether s maps host port published to container port
// target over TCP.
func publishes(s types.ServiceConfig, published, target string) bool {
	for _, p := range s.Ports {
		if fmt.Sprint(p.Target) == target && p.Published == published && (p.Protocol == "" || p.Protocol == "tcp") {
			return true
		}
	}
	return false
}

func TestComposePorts(t *testing.T) {
	p := loadCompose(t)
	for _, c := range []struct{ service, port string }{
		{"demo", "9464"},
		{"prometheus", "9090"},
		{"grafana", "3000"},
	} {
		if s := service(t, p, c.service); !publishes(s, c.port, c.port) {
			t.Errorf("%s: want port %s:%s, have %+v", c.service, c.port, c.port, s.Ports)
		}
	}
	// Kafka advertises kafka:9092, which the host cannot resolve: publishing
	// it would only invite confusing connection errors.
	if ports := service(t, p, "kafka").Ports; len(ports) > 0 {
		t.Errorf("kafka publishes ports %+v, but only advertises the in-network name kafka:9092", ports)
	}
}

// TestComposeBindMounts checks that every host path the stack mounts exists
// and lies inside the repository (compose would otherwise create an empty
// directory in its place, and the container would start without its config).
func TestComposeBindMounts(t *testing.T) {
	p := loadCompose(t)
	root := repoRoot(t)
	var n int
	for _, name := range p.ServiceNames() {
		s := service(t, p, name)
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			n++
			rel, err := filepath.Rel(root, v.Source)
			if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
				t.Errorf("%s: bind mount source %s is outside the repository", name, v.Source)
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("%s: bind mount source %s: %v", name, rel, err)
			}
			if !v.ReadOnly {
				t.Errorf("%s: bind mount of %s should be read-only", name, rel)
			}
		}
	}
	if n == 0 {
		t.Error("no bind mounts found: prometheus and grafana need their configuration")
	}
}

// hostPath maps a path inside service s's container to the repository file
// bind-mounted there, or "" if none is.
func hostPath(s types.ServiceConfig, containerPath string) string {
	for _, v := range s.Volumes {
		if v.Type != types.VolumeTypeBind {
			continue
		}
		if containerPath == v.Target {
			return v.Source
		}
		if rest, ok := strings.CutPrefix(containerPath, strings.TrimSuffix(v.Target, "/")+"/"); ok {
			return filepath.Join(v.Source, filepath.FromSlash(rest))
		}
	}
	return ""
}

func loadYAMLFile(t *testing.T, path string, out any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Load(raw, out, yaml.WithUniqueKeys()); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func TestComposePrometheusScrapesDemo(t *testing.T) {
	p := loadCompose(t)
	prom, demo := service(t, p, "prometheus"), service(t, p, "demo")

	cfgPath := hostPath(prom, "/etc/prometheus/prometheus.yml")
	if cfgPath == "" {
		t.Fatalf("prometheus: nothing mounted on /etc/prometheus/prometheus.yml (volumes %v)", prom.Volumes)
	}
	if want := filepath.Join(repoRoot(t), "deploy", "prometheus", "prometheus.yml"); cfgPath != want {
		t.Errorf("prometheus config is %s, want %s", cfgPath, want)
	}
	var cfg struct {
		Global struct {
			ScrapeInterval string `yaml:"scrape_interval"`
		} `yaml:"global"`
		ScrapeConfigs []struct {
			JobName        string `yaml:"job_name"`
			MetricsPath    string `yaml:"metrics_path"`
			ScrapeInterval string `yaml:"scrape_interval"`
			HonorLabels    bool   `yaml:"honor_labels"`
			StaticConfigs  []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	loadYAMLFile(t, cfgPath, &cfg)

	addr, _ := env(demo, "WEIR_METRICS_ADDR")
	_, port, _ := net.SplitHostPort(addr)
	target := net.JoinHostPort("demo", port)
	var found bool
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			if !slices.Contains(st.Targets, target) {
				continue
			}
			found = true
			if path := cmp.Or(sc.MetricsPath, "/metrics"); path != "/metrics" {
				t.Errorf("scrape job %s: metrics_path %q, want /metrics", sc.JobName, path)
			}
			if iv := cmp.Or(sc.ScrapeInterval, cfg.Global.ScrapeInterval); iv != "5s" {
				t.Errorf("scrape job %s: scrape_interval %q, want 5s", sc.JobName, iv)
			}
			// weir_* series carry the stream job's name in `job`; without
			// honor_labels Prometheus renames it to exported_job.
			if !sc.HonorLabels {
				t.Errorf("scrape job %s: honor_labels must be true to keep Weir's job label", sc.JobName)
			}
		}
	}
	if !found {
		t.Errorf("%s does not scrape %s", cfgPath, target)
	}
	if !shareNetwork(prom, demo) {
		t.Error("prometheus and demo share no network")
	}
}

func TestComposeGrafanaProvisioning(t *testing.T) {
	p := loadCompose(t)
	graf, prom := service(t, p, "grafana"), service(t, p, "prometheus")
	root := repoRoot(t)

	for k, want := range map[string]string{
		"GF_AUTH_ANONYMOUS_ENABLED":  "true",
		"GF_AUTH_ANONYMOUS_ORG_ROLE": "Admin",
	} {
		if got, _ := env(graf, k); got != want {
			t.Errorf("grafana %s = %q, want %q", k, got, want)
		}
	}
	if dep, ok := graf.DependsOn["prometheus"]; !ok {
		t.Error("grafana does not depend on prometheus")
	} else if dep.Condition == types.ServiceConditionHealthy && (prom.HealthCheck == nil || prom.HealthCheck.Disable) {
		t.Error("grafana waits for a healthy prometheus, which has no healthcheck")
	}

	provisioning := hostPath(graf, "/etc/grafana/provisioning")
	if want := filepath.Join(root, "deploy", "grafana", "provisioning"); provisioning != want {
		t.Fatalf("grafana provisioning mounted from %q, want %s", provisioning, want)
	}

	// Datasource: Prometheus at http://prometheus:9090, with the uid the
	// dashboard refers to.
	var ds struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name string `yaml:"name"`
			UID  string `yaml:"uid"`
			Type string `yaml:"type"`
			URL  string `yaml:"url"`
		} `yaml:"datasources"`
	}
	loadYAMLFile(t, filepath.Join(provisioning, "datasources", "prometheus.yml"), &ds)
	var promDS bool
	for _, d := range ds.Datasources {
		if d.Type != "prometheus" {
			continue
		}
		promDS = true
		if d.URL != "http://prometheus:9090" {
			t.Errorf("datasource %s url %q, want http://prometheus:9090", d.Name, d.URL)
		}
		if d.UID != dashboardDatasourceUID {
			t.Errorf("datasource %s uid %q, the dashboard uses %q", d.Name, d.UID, dashboardDatasourceUID)
		}
		u, err := url.Parse(d.URL)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(reachableNames(prom), u.Hostname()) || !slices.ContainsFunc(prom.Ports, func(p types.ServicePortConfig) bool { return fmt.Sprint(p.Target) == u.Port() }) {
			t.Errorf("datasource url %s does not point at the prometheus service", d.URL)
		}
	}
	if !promDS {
		t.Error("no prometheus datasource provisioned")
	}

	// Dashboards: the file provider reads the directory the repository's
	// dashboards are mounted on, and weir.json is there.
	var dp struct {
		Providers []struct {
			Name    string `yaml:"name"`
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	loadYAMLFile(t, filepath.Join(provisioning, "dashboards", "weir.yml"), &dp)
	if len(dp.Providers) == 0 {
		t.Fatal("no dashboard provider")
	}
	for _, prov := range dp.Providers {
		if prov.Type != "file" {
			continue
		}
		dir := hostPath(graf, prov.Options.Path)
		if want := filepath.Join(root, "deploy", "grafana", "dashboards"); dir != want {
			t.Errorf("dashboard provider %s reads %s, mounted from %q, want %s", prov.Name, prov.Options.Path, dir, want)
		}
		if _, err := os.Stat(filepath.Join(dir, "weir.json")); err != nil {
			t.Errorf("dashboard provider %s: %v", prov.Name, err)
		}
	}
	if home, ok := env(graf, "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"); ok {
		if _, err := os.Stat(hostPath(graf, home)); err != nil {
			t.Errorf("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH %s is not a mounted file: %v", home, err)
		}
	}
}
