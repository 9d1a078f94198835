package deploy_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// manifests are the objects under deploy/kubernetes, decoded into the
// Kubernetes API's own types.
type manifests struct {
	deployments []*appsv1.Deployment
	services    []*corev1.Service
	configMaps  []*corev1.ConfigMap
	secrets     []*corev1.Secret
	pdbs        []*policyv1.PodDisruptionBudget
	cronJobs    []*batchv1.CronJob
}

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// loadManifests decodes every YAML document under kubernetes/ strictly
// into the k8s.io/api type of its apiVersion and kind: a field the API
// does not have (a typo, a wrong level), a duplicate key, or a kind the
// test does not know fails, as the API server would refuse it.
func loadManifests(t *testing.T) manifests {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("kubernetes", "*.y*ml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no manifests under deploy/kubernetes")
	}
	var m manifests
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range docSeparator.Split(string(raw), -1) {
			js, err := yaml.YAMLToJSONStrict([]byte(doc))
			if err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			if string(js) == "null" {
				continue // empty or comments only
			}
			var meta struct{ APIVersion, Kind string }
			if err := json.Unmarshal(js, &meta); err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			var obj any
			switch meta.APIVersion + " " + meta.Kind {
			case "apps/v1 Deployment":
				d := &appsv1.Deployment{}
				m.deployments, obj = append(m.deployments, d), d
			case "v1 Service":
				s := &corev1.Service{}
				m.services, obj = append(m.services, s), s
			case "v1 ConfigMap":
				c := &corev1.ConfigMap{}
				m.configMaps, obj = append(m.configMaps, c), c
			case "v1 Secret":
				s := &corev1.Secret{}
				m.secrets, obj = append(m.secrets, s), s
			case "batch/v1 CronJob":
				c := &batchv1.CronJob{}
				m.cronJobs, obj = append(m.cronJobs, c), c
			case "policy/v1 PodDisruptionBudget":
				p := &policyv1.PodDisruptionBudget{}
				m.pdbs, obj = append(m.pdbs, p), p
			default:
				t.Fatalf("%s document %d: %q %q is not a kind this test knows", f, i, meta.APIVersion, meta.Kind)
			}
			dec := json.NewDecoder(bytes.NewReader(js))
			dec.DisallowUnknownFields()
			if err := dec.Decode(obj); err != nil {
				t.Fatalf("%s: %s: %v", f, meta.Kind, err)
			}
		}
	}
	return m
}

// TestStrictDecodingCatchesATypo: the loader refuses what the API would.
func TestStrictDecodingCatchesATypo(t *testing.T) {
	js, err := yaml.YAMLToJSONStrict([]byte("apiVersion: apps/v1\nkind: Deployment\nspec:\n  replica: 2\n"))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&appsv1.Deployment{}); err == nil || !strings.Contains(err.Error(), "replica") {
		t.Fatalf("a misspelt field decoded: %v", err)
	}
	if _, err := yaml.YAMLToJSONStrict([]byte("a: 1\na: 2\n")); err == nil {
		t.Fatal("a duplicate key decoded")
	}
}

func TestKubernetesManifests(t *testing.T) {
	m := loadManifests(t)
	if len(m.deployments) != 1 || len(m.services) != 1 || len(m.configMaps) != 1 || len(m.secrets) != 1 || len(m.pdbs) != 1 {
		t.Fatalf("want one Deployment, Service, ConfigMap, Secret and PodDisruptionBudget; got %d, %d, %d, %d, %d",
			len(m.deployments), len(m.services), len(m.configMaps), len(m.secrets), len(m.pdbs))
	}
	dep, svc, cm, secret, pdb := m.deployments[0], m.services[0], m.configMaps[0], m.secrets[0], m.pdbs[0]
	pod := dep.Spec.Template.Spec
	labels := dep.Spec.Template.Labels

	if dep.Spec.Replicas == nil || *dep.Spec.Replicas < 2 {
		t.Errorf("replicas = %v, want at least 2", dep.Spec.Replicas)
	}
	selects := func(what string, sel map[string]string) {
		t.Helper()
		if len(sel) == 0 {
			t.Errorf("%s selects nothing", what)
		}
		for k, v := range sel {
			if labels[k] != v {
				t.Errorf("%s selector %s=%s does not match the pod labels %v", what, k, v, labels)
			}
		}
	}
	if dep.Spec.Selector == nil {
		t.Fatal("the Deployment has no selector")
	}
	selects("Deployment", dep.Spec.Selector.MatchLabels)
	selects("Service", svc.Spec.Selector)
	if pdb.Spec.Selector == nil {
		t.Fatal("the PodDisruptionBudget has no selector")
	}
	selects("PodDisruptionBudget", pdb.Spec.Selector.MatchLabels)
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("PodDisruptionBudget maxUnavailable = %v, want 1", pdb.Spec.MaxUnavailable)
	}

	if len(pod.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Containers))
	}
	c := pod.Containers[0]

	// The settings: the container's own env, and the ConfigMap through envFrom.
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		if _, dup := env[e.Name]; dup {
			t.Errorf("env %s set twice", e.Name)
		}
		env[e.Name] = e
	}
	settings := map[string]string{}
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef == nil || ef.ConfigMapRef.Name != cm.Name {
			t.Errorf("envFrom %+v: want the ConfigMap %s", ef, cm.Name)
			continue
		}
		maps.Copy(settings, cm.Data)
	}
	for _, k := range []string{"WEIR_BROKERS", "WEIR_GROUP", "WEIR_STATE_DIR", "WEIR_METRICS_ADDR"} {
		if settings[k] == "" {
			t.Errorf("%s is not set by the ConfigMap", k)
		}
	}

	// Shutdown: the pod's grace period covers the final checkpoint.
	shutdown := 30 * time.Second
	if s, ok := settings["WEIR_SHUTDOWN_TIMEOUT"]; ok {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("WEIR_SHUTDOWN_TIMEOUT=%q: %v", s, err)
		}
		shutdown = d
	}
	var grace time.Duration
	if g := pod.TerminationGracePeriodSeconds; g != nil {
		grace = time.Duration(*g) * time.Second
	}
	if grace <= shutdown+10*time.Second {
		t.Errorf("terminationGracePeriodSeconds %v must exceed WEIR_SHUTDOWN_TIMEOUT %v by at least 10s", grace, shutdown)
	}

	// Resources: a memory limit, and Weir's budget taken from it.
	limit, ok := c.Resources.Limits[corev1.ResourceMemory]
	if !ok || limit.IsZero() {
		t.Error("the container has no memory limit")
	}
	if req, ok := c.Resources.Requests[corev1.ResourceMemory]; !ok || req.Cmp(limit) != 0 {
		t.Errorf("memory request %v should equal the limit %v: a replica's memory is its budget", req.String(), limit.String())
	}
	if _, ok := c.Resources.Requests[corev1.ResourceCPU]; !ok {
		t.Error("the container requests no CPU")
	}
	if e, ok := env["WEIR_MEMORY_LIMIT"]; !ok || e.ValueFrom == nil || e.ValueFrom.ResourceFieldRef == nil ||
		e.ValueFrom.ResourceFieldRef.Resource != "limits.memory" {
		t.Errorf("WEIR_MEMORY_LIMIT should come from the container's limits.memory: %+v", e)
	}
	if _, ok := env["GOMEMLIMIT"]; ok {
		t.Error("GOMEMLIMIT is set: Weir sets the Go heap limit inside its memory budget itself")
	}

	// Probes: liveness on /healthz, readiness on /readyz, on the metrics port.
	const metricsPort = 9464
	port := func(p intstr.IntOrString) int {
		if p.Type == intstr.Int {
			return p.IntValue()
		}
		for _, cp := range c.Ports {
			if cp.Name == p.StrVal {
				return int(cp.ContainerPort)
			}
		}
		t.Errorf("container %s has no port named %q", c.Name, p.StrVal)
		return 0
	}
	probe := func(kind string, p *corev1.Probe, paths ...string) {
		t.Helper()
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s probe: want an httpGet probe", kind)
			return
		}
		if !slices.Contains(paths, p.HTTPGet.Path) || port(p.HTTPGet.Port) != metricsPort {
			t.Errorf("%s probe %s on port %v, want one of %v on %d", kind, p.HTTPGet.Path, p.HTTPGet.Port.String(), paths, metricsPort)
		}
	}
	probe("liveness", c.LivenessProbe, "/healthz")
	probe("readiness", c.ReadinessProbe, "/readyz")
	if c.StartupProbe != nil {
		probe("startup", c.StartupProbe, "/healthz", "/readyz")
	}
	var servesMetrics bool
	for _, p := range svc.Spec.Ports {
		target := p.TargetPort
		if target.Type == intstr.Int && target.IntVal == 0 {
			target = intstr.FromInt32(p.Port)
		}
		servesMetrics = servesMetrics || port(target) == metricsPort
	}
	if !servesMetrics {
		t.Errorf("the Service does not target container port %d", metricsPort)
	}
	ann := dep.Spec.Template.Annotations
	for k, v := range map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": strconv.Itoa(metricsPort), "prometheus.io/path": "/metrics"} {
		if ann[k] != v {
			t.Errorf("pod annotation %s = %q, want %q", k, ann[k], v)
		}
	}

	// Volumes: the state directory on an emptyDir; the Secret as files.
	mounts := map[string]corev1.VolumeMount{}
	for _, vm := range c.VolumeMounts {
		mounts[vm.MountPath] = vm
	}
	volume := func(name string) *corev1.Volume {
		for i := range pod.Volumes {
			if pod.Volumes[i].Name == name {
				return &pod.Volumes[i]
			}
		}
		return nil
	}
	if vm, ok := mounts[settings["WEIR_STATE_DIR"]]; !ok || volume(vm.Name) == nil || volume(vm.Name).EmptyDir == nil {
		t.Errorf("no emptyDir volume mounted at WEIR_STATE_DIR %q", settings["WEIR_STATE_DIR"])
	}
	var secretDir string
	var secretKeys []string
	for path, vm := range mounts {
		if v := volume(vm.Name); v != nil && v.Secret != nil {
			if v.Secret.SecretName != secret.Name {
				t.Errorf("volume %s mounts Secret %q, want %s", vm.Name, v.Secret.SecretName, secret.Name)
			}
			if !vm.ReadOnly {
				t.Errorf("the Secret is mounted writable at %s", path)
			}
			secretDir = path
		}
	}
	for k := range secret.StringData {
		secretKeys = append(secretKeys, k)
	}
	for k := range secret.Data {
		secretKeys = append(secretKeys, k)
	}
	if secretDir == "" {
		t.Fatal("the Secret is not mounted as files")
	}

	// Kafka security: every WEIR_KAFKA_*_FILE names a key of the mounted
	// Secret; no secret is in a variable (or the ConfigMap).
	var files int
	for name, e := range env {
		if !strings.HasPrefix(name, "WEIR_KAFKA_") {
			continue
		}
		switch {
		case strings.HasSuffix(name, "_PASSWORD") || strings.HasSuffix(name, "_TOKEN"):
			t.Errorf("%s holds a secret in a variable: use %s_FILE and the mounted Secret", name, name)
		case strings.HasSuffix(name, "_FILE"):
			files++
			dir, key := filepath.Split(e.Value)
			if filepath.Clean(dir) != filepath.Clean(secretDir) || !slices.Contains(secretKeys, key) {
				t.Errorf("%s=%s is not a key of the Secret mounted at %s (keys %v)", name, e.Value, secretDir, secretKeys)
			}
		}
	}
	if files == 0 {
		t.Error("no WEIR_KAFKA_*_FILE variable reads the mounted Secret")
	}
	for k := range cm.Data {
		if strings.Contains(k, "PASSWORD") || strings.Contains(k, "TOKEN") {
			t.Errorf("the ConfigMap holds %s: secrets go in the Secret", k)
		}
	}
	if got := fmt.Sprint(c.SecurityContext != nil && c.SecurityContext.ReadOnlyRootFilesystem != nil && *c.SecurityContext.ReadOnlyRootFilesystem); got != "true" {
		t.Error("the container's root filesystem is writable")
	}
}

// TestSavepointCronJob: the periodic savepoints run the weir CLI from the
// job's image, against the job's group, with the job's settings and Kafka
// credentials, one at a time.
func TestSavepointCronJob(t *testing.T) {
	m := loadManifests(t)
	if len(m.cronJobs) != 1 {
		t.Fatalf("want one CronJob (savepoints), got %d", len(m.cronJobs))
	}
	cj, dep := m.cronJobs[0], m.deployments[0]
	if cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		t.Errorf("concurrencyPolicy %q: two savepoints at once would race for the next id", cj.Spec.ConcurrencyPolicy)
	}
	if f := strings.Fields(cj.Spec.Schedule); len(f) != 5 {
		t.Errorf("schedule %q: want the five cron fields", cj.Spec.Schedule)
	}
	pod := cj.Spec.JobTemplate.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Containers))
	}
	c, job := pod.Containers[0], dep.Spec.Template.Spec.Containers[0]
	if c.Image != job.Image {
		t.Errorf("image %s, want the job's %s (it holds the weir CLI)", c.Image, job.Image)
	}
	if got := strings.Join(append(slices.Clone(c.Command), c.Args...), " "); !strings.HasPrefix(got, "/usr/local/bin/weir savepoint create --group $(WEIR_GROUP) ") {
		t.Errorf("runs %q, want weir savepoint create for the job's group", got)
	}
	if !reflect.DeepEqual(c.EnvFrom, job.EnvFrom) {
		t.Errorf("envFrom %+v, want the job's %+v (WEIR_BROKERS, WEIR_GROUP)", c.EnvFrom, job.EnvFrom)
	}
	for _, e := range job.Env {
		if !strings.HasPrefix(e.Name, "WEIR_KAFKA_") {
			continue
		}
		if !slices.ContainsFunc(c.Env, func(x corev1.EnvVar) bool { return x.Name == e.Name && x.Value == e.Value }) {
			t.Errorf("the job's %s=%s is not the CronJob's: it reaches Kafka as the job does", e.Name, e.Value)
		}
	}
	secret := func(vols []corev1.Volume) string {
		for _, v := range vols {
			if v.Secret != nil {
				return v.Secret.SecretName
			}
		}
		return ""
	}
	if got, want := secret(pod.Volumes), secret(dep.Spec.Template.Spec.Volumes); got == "" || got != want {
		t.Errorf("credentials from Secret %q, want the job's %q", got, want)
	}
	if pod.RestartPolicy != corev1.RestartPolicyOnFailure && pod.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("restartPolicy %q: a Job's pod takes OnFailure or Never", pod.RestartPolicy)
	}
}
