package features_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/weirstream/weir/features"
)

// waitFor polls cond for up to a second and reports how long it took.
func waitFor(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > time.Second {
			t.Fatalf("%s: not within a second", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// A ConfigMap mounted as a directory: one file per flag, replaced by the
// kubelet through a renamed ..data directory. Editing a flag switches it
// within a second.
func TestFlagsFromAConfigMapDirectory(t *testing.T) {
	t.Setenv("WEIR_FEATURE_RECOMMENDATIONS", "true")
	t.Setenv("WEIR_FEATURE_MODEL", "v1")
	dir := t.TempDir()
	write := func(name, v string) {
		t.Helper()
		// As the kubelet does: write beside, then rename over.
		tmp := filepath.Join(dir, ".tmp-"+name)
		if err := os.WriteFile(tmp, []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	write("model", "v2")
	s := features.New()
	if !s.Bool("recommendations", false) {
		t.Fatal("the environment's flag is not set")
	}
	if err := s.Watch(dir, nil); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.String("model", ""); got != "v2" {
		t.Fatalf("model %q, want the directory's v2 over the environment's v1", got)
	}
	write("recommendations", "off")
	took := waitFor(t, "the flag switched off", func() bool { return !s.Bool("recommendations", true) })
	t.Logf("switched %v after the file changed", took)
	write("rate", "0.25")
	waitFor(t, "a new flag", func() bool { return s.Float("rate", 0) == 0.25 })

	reg := prometheus.NewRegistry()
	reg.MustRegister(s)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP weir_feature_flag A feature flag's current value, in the value label (the sample is always 1).
# TYPE weir_feature_flag gauge
weir_feature_flag{name="model",value="v2"} 1
weir_feature_flag{name="rate",value="0.25"} 1
weir_feature_flag{name="recommendations",value="off"} 1
`), "weir_feature_flag"); err != nil {
		t.Fatal(err)
	}
}

// A flags file of name=value lines; a broken edit keeps the values before
// it.
func TestFlagsFromAFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flags.properties")
	write := func(body string) {
		t.Helper()
		tmp := path + ".new"
		if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write("# flags\nrecommendations = on\nmodel: v3\n")
	core, logs := observer.New(zap.WarnLevel)
	s := features.New()
	if err := s.Watch(path, zap.New(core)); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.Bool("recommendations", false) || s.String("model", "") != "v3" {
		t.Fatalf("flags %v", s.Values())
	}
	write("recommendations = off\n")
	waitFor(t, "the flag switched off", func() bool { return !s.Bool("recommendations", true) })
	write("this line is broken\n")
	waitFor(t, "the broken file read and refused", func() bool { return logs.FilterMessageSnippet("did not reload").Len() > 0 })
	if s.Bool("recommendations", true) {
		t.Fatal("a broken file changed the flags")
	}
	if err := features.New().Watch(filepath.Join(t.TempDir(), "missing"), nil); err == nil {
		t.Fatal("watching a missing file did not fail")
	}
}
