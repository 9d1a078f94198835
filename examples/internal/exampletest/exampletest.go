// Package exampletest runs the examples as their users do, for the
// examples' real-broker tests: it builds an example's binary, runs it to
// its end, and reads what it committed to a topic, all of it and nothing
// more.
package exampletest

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/internal/kafkatest"
	"github.com/weirstream/weir/verify"
)

// Build compiles the example in the test's working directory (its own
// package) with the race detector, as `go build` would for a user, and
// returns the binary's path.
func Build(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(mustGetwd(t)))
	start := time.Now()
	out, err := exec.Command("go", "build", "-race", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("built %s in %v", filepath.Base(bin), time.Since(start).Round(time.Millisecond))
	return bin
}

func mustGetwd(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}

// Run runs bin with args and the environment plus env, waits for it to
// exit, and returns what it printed. A non-zero exit, or one not within
// timeout (the process is then killed), fails the test.
func Run(t testing.TB, timeout time.Duration, bin string, env []string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s %v did not exit within %v; its output:\n%s", filepath.Base(bin), args, timeout, out)
	}
	if err != nil {
		t.Fatalf("%s %v: %v; its output:\n%s", filepath.Base(bin), args, err, out)
	}
	t.Logf("%s %v exited 0 after %v", filepath.Base(bin), args, time.Since(start).Round(time.Millisecond))
	return string(out)
}

// JobEnv is the environment of a bounded run of a job against brokers in
// group: its state in a directory of the test's, its metrics on a free
// port, checkpoints every 100ms, and it stops at the end of its input.
func JobEnv(t testing.TB, brokers []string, group string) []string {
	t.Helper()
	return []string{
		"WEIR_BROKERS=" + strings.Join(brokers, ","),
		"WEIR_GROUP=" + group,
		"WEIR_STATE_DIR=" + t.TempDir(),
		"WEIR_METRICS_ADDR=" + kafkatest.FreeAddr(t),
		"WEIR_CHECKPOINT_INTERVAL=100ms",
		"WEIR_UNTIL=end",
	}
}

// DeleteTopicsAtEnd deletes topics, and the internal topics of group
// (those named <group>-...), when the test ends, unless it failed: they
// are then kept, to look into.
func DeleteTopicsAtEnd(t testing.TB, brokers []string, group string, topics ...string) {
	t.Helper()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kept topics %v and group %s's internal topics", topics, group)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		adm := kadm.NewClient(kafkatest.Client(t, brokers))
		all, err := adm.ListTopics(ctx)
		if err != nil {
			t.Logf("listing topics to delete: %v", err)
			return
		}
		del := slices.Clone(topics)
		for _, name := range all.Names() {
			if strings.HasPrefix(name, group+"-") {
				del = append(del, name)
			}
		}
		if _, err := adm.DeleteTopics(ctx, del...); err != nil {
			t.Logf("deleting topics %v: %v", del, err)
		}
	})
}

// Headers returns a record's headers as a map.
func Headers(r *kgo.Record) map[string]string {
	h := make(map[string]string, len(r.Headers))
	for _, hd := range r.Headers {
		h[hd.Key] = string(hd.Value)
	}
	return h
}

// AssertJSON compares got and want as JSON, one element a line, so that a
// difference reads as one.
func AssertJSON[T any](t testing.TB, what string, got, want []T) {
	t.Helper()
	lines := func(vs []T) string {
		var b strings.Builder
		for _, v := range vs {
			j, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			b.Write(j)
			b.WriteByte('\n')
		}
		return b.String()
	}
	if g, w := lines(got), lines(want); g != w {
		t.Errorf("%s:\ngot:\n%swant:\n%s", what, g, w)
	}
}

// ReadToEnd reads topic as a read_committed consumer sees it now, from
// its start to its last stable offset, every record once: for checks that
// must also see what should not be there, where ReadAll's count and
// timeout could stop early.
func ReadToEnd(t testing.TB, brokers []string, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out []*kgo.Record
	if err := verify.ReadCommitted(ctx, []string{topic}, func(r *kgo.Record) { out = append(out, r) }, kgo.SeedBrokers(brokers...)); err != nil {
		t.Fatalf("reading %s: %v", topic, err)
	}
	return out
}
