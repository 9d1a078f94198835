// Package features holds a job's feature flags: values a user function
// asks for at any record, to switch a path off (an enrichment, a new
// model) without a restart. They come from the environment
// (WEIR_FEATURE_<NAME>=value) and from a file or directory the job
// watches (WEIR_FEATURES_FILE): a change is seen within a fraction of a
// second (fsnotify), so a Kubernetes ConfigMap edit reaches running
// replicas without a rollout.
//
// A directory holds one flag per file, as a mounted ConfigMap lays its
// keys out: the file's name is the flag's, its content (trimmed) the
// value. A file holds name=value lines (or name: value); # starts a
// comment. The file's values win over the environment's. A file that
// cannot be read or parsed keeps the values before it, and says why in
// the log.
package features

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// EnvPrefix starts the environment variables that set flags:
// WEIR_FEATURE_RECOMMENDATIONS=false sets "recommendations".
const EnvPrefix = "WEIR_FEATURE_"

// Set is a job's feature flags. It is safe for concurrent use; reading a
// flag is a map lookup behind an atomic pointer.
type Set struct {
	cur     atomic.Pointer[map[string]string]
	reloads atomic.Int64

	mu      sync.Mutex
	path    string
	log     *zap.Logger
	watcher *fsnotify.Watcher
	done    chan struct{}
}

// New returns a Set with the environment's flags.
func New() *Set {
	s := &Set{}
	m := fromEnv()
	s.cur.Store(&m)
	return s
}

func fromEnv() map[string]string {
	m := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if name, ok := strings.CutPrefix(k, EnvPrefix); ok && name != "" {
			m[strings.ToLower(name)] = v
		}
	}
	return m
}

// Watch reads path (a file or a directory) and reloads it whenever it
// changes, until Close. The first read must succeed.
func (s *Set) Watch(path string, log *zap.Logger) error {
	if log == nil {
		log = zap.NewNop()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.watcher != nil {
		return fmt.Errorf("features: already watching %s", s.path)
	}
	s.path, s.log = path, log
	if err := s.load(); err != nil {
		return err
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("features: watching %s: %w", path, err)
	}
	// Watch the directory: a ConfigMap update, like an editor's save,
	// replaces files by renaming, which a watch on the file would lose.
	dir := path
	if fi, err := os.Stat(path); err == nil && !fi.IsDir() {
		dir = filepath.Dir(path)
	}
	if err := w.Add(dir); err != nil {
		_ = w.Close()
		return fmt.Errorf("features: watching %s: %w", dir, err)
	}
	s.watcher, s.done = w, make(chan struct{})
	go s.loop(w, s.done)
	return nil
}

func (s *Set) loop(w *fsnotify.Watcher, done chan struct{}) {
	defer close(done)
	var debounce <-chan time.Time
	for {
		select {
		case _, ok := <-w.Events:
			if !ok {
				return
			}
			// A ConfigMap update is several events: read once they settle.
			debounce = time.After(50 * time.Millisecond)
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			s.log.Warn("features: watching the flags", zap.Error(err))
		case <-debounce:
			s.mu.Lock()
			if err := s.load(); err != nil {
				s.log.Warn("features: the flags did not reload; the previous values stay", zap.String("path", s.path), zap.Error(err))
			}
			s.mu.Unlock()
		}
	}
}

// load reads s.path over the environment's flags. s.mu is held.
func (s *Set) load() error {
	m := fromEnv()
	fi, err := os.Stat(s.path)
	if err != nil {
		return fmt.Errorf("features: %w", err)
	}
	if fi.IsDir() {
		entries, err := os.ReadDir(s.path)
		if err != nil {
			return fmt.Errorf("features: %w", err)
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".") || e.IsDir() {
				continue // a ConfigMap's ..data links, hidden files
			}
			b, err := os.ReadFile(filepath.Join(s.path, e.Name()))
			if err != nil {
				return fmt.Errorf("features: %w", err)
			}
			m[e.Name()] = strings.TrimSpace(string(b))
		}
	} else {
		f, err := os.Open(s.path)
		if err != nil {
			return fmt.Errorf("features: %w", err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				k, v, ok = strings.Cut(line, ":")
			}
			if !ok || strings.TrimSpace(k) == "" {
				return fmt.Errorf("features: %s line %d: %q: want name=value", s.path, n, line)
			}
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("features: %w", err)
		}
	}
	old := s.cur.Swap(&m)
	s.reloads.Add(1)
	if old != nil && !mapsEqual(*old, m) {
		s.log.Info("features: flags changed", zap.Any("flags", m))
	}
	return nil
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// Close stops watching.
func (s *Set) Close() error {
	s.mu.Lock()
	w, done := s.watcher, s.done
	s.watcher = nil
	s.mu.Unlock()
	if w == nil {
		return nil
	}
	err := w.Close()
	<-done
	return err
}

// String returns the flag's value, or def when it is not set.
func (s *Set) String(name, def string) string {
	if v, ok := (*s.cur.Load())[name]; ok {
		return v
	}
	return def
}

// Bool returns the flag as a boolean (true, false, 1, 0, on, off, yes,
// no), or def when it is not set or not one of those.
func (s *Set) Bool(name string, def bool) bool {
	v, ok := (*s.cur.Load())[name]
	if !ok {
		return def
	}
	switch strings.ToLower(v) {
	case "on", "yes", "enabled":
		return true
	case "off", "no", "disabled":
		return false
	}
	if b, err := strconv.ParseBool(v); err == nil {
		return b
	}
	return def
}

// Float returns the flag as a number, or def when it is not set or not a
// number.
func (s *Set) Float(name string, def float64) float64 {
	if f, err := strconv.ParseFloat((*s.cur.Load())[name], 64); err == nil {
		return f
	}
	return def
}

// Values returns a copy of every flag set.
func (s *Set) Values() map[string]string {
	cur := *s.cur.Load()
	m := make(map[string]string, len(cur))
	for k, v := range cur {
		m[k] = v
	}
	return m
}

var (
	flagDesc   = prometheus.NewDesc("weir_feature_flag", "A feature flag's current value, in the value label (the sample is always 1).", []string{"name", "value"}, nil)
	reloadDesc = prometheus.NewDesc("weir_feature_flags_reloads_total", "Times the feature flags were read from their file.", nil, nil)
)

// Describe and Collect make the Set a Prometheus collector: each flag's
// current value on the metrics endpoint.
func (s *Set) Describe(ch chan<- *prometheus.Desc) { ch <- flagDesc; ch <- reloadDesc }

func (s *Set) Collect(ch chan<- prometheus.Metric) {
	for k, v := range *s.cur.Load() {
		ch <- prometheus.MustNewConstMetric(flagDesc, prometheus.GaugeValue, 1, k, v)
	}
	ch <- prometheus.MustNewConstMetric(reloadDesc, prometheus.CounterValue, float64(s.reloads.Load()))
}
