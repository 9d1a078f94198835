package deploy_test

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"go.yaml.in/yaml/v4"
)

type k8sObject struct {
	file       string
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name        string            `yaml:"name"`
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
	} `yaml:"metadata"`
	Spec yaml.Node `yaml:"spec"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"` // number or port name
	} `yaml:"httpGet"`
}

type containerPort struct {
	Name          string `yaml:"name"`
	ContainerPort int    `yaml:"containerPort"`
}

type container struct {
	Name  string `yaml:"name"`
	Image string `yaml:"image"`
	Env   []struct {
		Name      string         `yaml:"name"`
		Value     *string        `yaml:"value"`
		ValueFrom map[string]any `yaml:"valueFrom"`
	} `yaml:"env"`
	Ports          []containerPort `yaml:"ports"`
	LivenessProbe  *probe          `yaml:"livenessProbe"`
	ReadinessProbe *probe          `yaml:"readinessProbe"`
	StartupProbe   *probe          `yaml:"startupProbe"`
	VolumeMounts   []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

// resolvePort turns a probe or Service port (number or name) into a
// container port number.
func (c container) resolvePort(p any) (int, error) {
	switch v := p.(type) {
	case int:
		return v, nil
	case string:
		if n, err := strconv.Atoi(v); err == nil {
			return n, nil
		}
		for _, cp := range c.Ports {
			if cp.Name == v {
				return cp.ContainerPort, nil
			}
		}
		return 0, fmt.Errorf("container %s has no port named %q", c.Name, v)
	default:
		return 0, fmt.Errorf("port %v: unexpected type %T", p, p)
	}
}

type deploymentSpec struct {
	Replicas *int `yaml:"replicas"`
	Selector struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	} `yaml:"selector"`
	Template struct {
		Metadata struct {
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"metadata"`
		Spec struct {
			TerminationGracePeriodSeconds *int        `yaml:"terminationGracePeriodSeconds"`
			Containers                    []container `yaml:"containers"`
			Volumes                       []struct {
				Name     string    `yaml:"name"`
				EmptyDir *struct{} `yaml:"emptyDir"`
			} `yaml:"volumes"`
		} `yaml:"spec"`
	} `yaml:"template"`
}

type serviceSpec struct {
	Selector map[string]string `yaml:"selector"`
	Ports    []struct {
		Name       string `yaml:"name"`
		Port       int    `yaml:"port"`
		TargetPort any    `yaml:"targetPort"`
	} `yaml:"ports"`
}

// loadManifests parses every YAML document under kubernetes/.
func loadManifests(t *testing.T) []k8sObject {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("kubernetes", "*.y*ml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no manifests under deploy/kubernetes")
	}
	var objs []k8sObject
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var docs []k8sObject
		if err := yaml.Load(raw, &docs, yaml.WithAllDocuments(), yaml.WithUniqueKeys()); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, d := range docs {
			if d.Kind == "" && d.APIVersion == "" {
				continue // empty document
			}
			d.file = f
			if d.Kind == "" || d.APIVersion == "" || d.Metadata.Name == "" {
				t.Errorf("%s: object without kind, apiVersion or metadata.name: %+v", f, d)
			}
			objs = append(objs, d)
		}
	}
	return objs
}

func intPtr(p *int) string {
	if p == nil {
		return "unset"
	}
	return strconv.Itoa(*p)
}

func decodeSpec(t *testing.T, o k8sObject, out any) {
	t.Helper()
	if err := o.Spec.Load(out, yaml.WithUniqueKeys()); err != nil {
		t.Fatalf("%s: %s %s spec: %v", o.file, o.Kind, o.Metadata.Name, err)
	}
}

func TestKubernetesManifests(t *testing.T) {
	objs := loadManifests(t)

	var deployments, services []k8sObject
	for _, o := range objs {
		switch {
		case o.Kind == "Deployment" && o.APIVersion == "apps/v1":
			deployments = append(deployments, o)
		case o.Kind == "Service" && o.APIVersion == "v1":
			services = append(services, o)
		}
	}
	if len(deployments) != 1 || len(services) != 1 {
		t.Fatalf("want one apps/v1 Deployment and one v1 Service, got %d and %d", len(deployments), len(services))
	}

	var dep deploymentSpec
	decodeSpec(t, deployments[0], &dep)
	pod := dep.Template.Spec

	if dep.Replicas == nil || *dep.Replicas != 2 {
		t.Errorf("replicas = %s, want 2", intPtr(dep.Replicas))
	}
	if len(dep.Selector.MatchLabels) == 0 {
		t.Error("Deployment has no selector")
	}
	for k, v := range dep.Selector.MatchLabels {
		if dep.Template.Metadata.Labels[k] != v {
			t.Errorf("selector %s=%s does not match the pod template labels %v", k, v, dep.Template.Metadata.Labels)
		}
	}
	if pod.TerminationGracePeriodSeconds == nil || *pod.TerminationGracePeriodSeconds != 60 {
		t.Errorf("terminationGracePeriodSeconds = %s, want 60", intPtr(pod.TerminationGracePeriodSeconds))
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Containers))
	}
	c := pod.Containers[0]

	env := map[string]string{}
	for _, e := range c.Env {
		if e.Value == nil && e.ValueFrom == nil {
			t.Errorf("env %s has neither value nor valueFrom", e.Name)
		}
		if _, dup := env[e.Name]; dup {
			t.Errorf("env %s set twice", e.Name)
		}
		if e.Value != nil {
			env[e.Name] = *e.Value
		} else {
			env[e.Name] = ""
		}
	}
	for _, k := range []string{"WEIR_BROKERS", "WEIR_GROUP"} {
		if v, ok := env[k]; !ok || v == "" {
			t.Errorf("env %s not set", k)
		}
	}

	// Probes: liveness on /healthz, readiness on /readyz, both on the
	// metrics port; any other probe on one of the two.
	metricsPort := 9464
	if !slices.ContainsFunc(c.Ports, func(p containerPort) bool { return p.ContainerPort == metricsPort }) {
		t.Errorf("container does not declare port %d", metricsPort)
	}
	checkProbe := func(kind string, p *probe, wantPaths ...string) {
		t.Helper()
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s probe: want an httpGet probe", kind)
			return
		}
		if !slices.Contains(wantPaths, p.HTTPGet.Path) {
			t.Errorf("%s probe path %q, want %v", kind, p.HTTPGet.Path, wantPaths)
		}
		port, err := c.resolvePort(p.HTTPGet.Port)
		if err != nil || port != metricsPort {
			t.Errorf("%s probe port %v (%d, %v), want %d", kind, p.HTTPGet.Port, port, err, metricsPort)
		}
	}
	checkProbe("liveness", c.LivenessProbe, "/healthz")
	checkProbe("readiness", c.ReadinessProbe, "/readyz")
	if c.StartupProbe != nil {
		checkProbe("startup", c.StartupProbe, "/healthz", "/readyz")
	}

	// State on an emptyDir at /var/lib/weir, matching WEIR_STATE_DIR.
	stateDir := "/var/lib/weir"
	if v, ok := env["WEIR_STATE_DIR"]; ok && v != stateDir {
		t.Errorf("WEIR_STATE_DIR = %q, want %s", v, stateDir)
	}
	var stateMounted bool
	for _, m := range c.VolumeMounts {
		if m.MountPath != stateDir {
			continue
		}
		for _, v := range pod.Volumes {
			stateMounted = stateMounted || (v.Name == m.Name && v.EmptyDir != nil)
		}
	}
	if !stateMounted {
		t.Errorf("no emptyDir volume mounted at %s", stateDir)
	}

	// Prometheus scrape annotations point at the metrics port.
	ann := dep.Template.Metadata.Annotations
	wantAnn := map[string]string{
		"prometheus.io/scrape": "true",
		"prometheus.io/port":   strconv.Itoa(metricsPort),
		"prometheus.io/path":   "/metrics",
	}
	for k, v := range wantAnn {
		if ann[k] != v {
			t.Errorf("pod annotation %s = %q, want %q (have %v)", k, ann[k], v, slices.Sorted(maps.Keys(ann)))
		}
	}

	// The Service selects the Deployment's pods and targets the metrics port.
	var svc serviceSpec
	decodeSpec(t, services[0], &svc)
	if len(svc.Selector) == 0 {
		t.Error("Service has no selector")
	}
	for k, v := range svc.Selector {
		if dep.Template.Metadata.Labels[k] != v {
			t.Errorf("Service selector %s=%s does not match the pod labels %v", k, v, dep.Template.Metadata.Labels)
		}
	}
	var servesMetrics bool
	for _, p := range svc.Ports {
		target := p.TargetPort
		if target == nil {
			target = p.Port
		}
		port, err := c.resolvePort(target)
		if err != nil {
			t.Errorf("Service port %s: %v", p.Name, err)
		}
		servesMetrics = servesMetrics || port == metricsPort
	}
	if !servesMetrics {
		t.Errorf("Service does not target container port %d", metricsPort)
	}
}
