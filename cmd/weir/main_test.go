package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/internal/kafkatest"
	"github.com/weirstream/weir/provenance"
)

// cli runs the CLI with args and returns its exit code, stdout and stderr.
func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	t.Logf("weir %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, stdout.String(), stderr.String())
	return code, stdout.String(), stderr.String()
}

// fakeOutput starts a kfake cluster with topic "out" holding one output per
// origin (in/0/0, in/0/1, ...), and returns its brokers joined for --brokers.
func fakeOutput(t *testing.T, origins ...int64) string {
	t.Helper()
	brokers := kafkatest.Fake(t, 1, "out")
	cl := kafkatest.Client(t, brokers)
	var recs []*kgo.Record
	for _, o := range origins {
		recs = append(recs, &kgo.Record{Topic: "out", Key: []byte("k"), Value: []byte("v"), Headers: []kgo.RecordHeader{
			{Key: provenance.SourceHeader, Value: []byte(provenance.Origin{Topic: "in", Offset: o}.String())},
			{Key: provenance.PathHeader, Value: []byte("0")},
			{Key: provenance.CheckpointHeader, Value: []byte("0_0@1")},
		}})
	}
	kafkatest.ProduceSync(t, cl, recs...)
	return strings.Join(brokers, ",")
}

func TestVerifyClean(t *testing.T) {
	brokers := fakeOutput(t, 0, 1, 2)
	code, stdout, _ := cli(t, "verify", "--brokers", brokers, "--output", "out")
	if code != exitOK || !strings.Contains(stdout, "OK") || !strings.Contains(stdout, "3 records") {
		t.Fatalf("exit %d, stdout %q; want 0 and an OK report of 3 records", code, stdout)
	}
}

func TestVerifyDuplicates(t *testing.T) {
	brokers := fakeOutput(t, 0, 1, 1, 2)
	code, stdout, _ := cli(t, "verify", "--brokers", brokers, "--output", "out")
	if code != exitViolations || !strings.Contains(stdout, "duplicate") {
		t.Fatalf("exit %d, stdout %q; want 1 and a report naming the duplicate", code, stdout)
	}
}

func TestVerifyJSON(t *testing.T) {
	brokers := fakeOutput(t, 0, 0, 1)
	code, stdout, _ := cli(t, "verify", "--brokers", brokers, "--output", "out", "--json", "--max-examples", "1")
	if code != exitViolations {
		t.Fatalf("exit %d, want %d", code, exitViolations)
	}
	var rep struct {
		OK         bool  `json:"ok"`
		Duplicates int64 `json:"duplicates"`
		Outputs    []struct {
			Topic   string `json:"topic"`
			Records int64  `json:"records"`
		} `json:"outputs"`
		Examples struct {
			Duplicates []json.RawMessage `json:"duplicates"`
		} `json:"examples"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("--json output does not parse: %v\n%s", err, stdout)
	}
	if rep.OK || rep.Duplicates != 1 || len(rep.Outputs) != 1 || rep.Outputs[0].Records != 3 || len(rep.Examples.Duplicates) != 1 {
		t.Errorf("report = %+v", rep)
	}
}

func TestVerifyBrokersFromEnv(t *testing.T) {
	t.Setenv("WEIR_BROKERS", fakeOutput(t, 0))
	if code, _, _ := cli(t, "verify", "--output", "out"); code != exitOK {
		t.Fatalf("exit %d, want 0 with brokers from WEIR_BROKERS", code)
	}
}

func TestVerifyMissingTopic(t *testing.T) {
	brokers := fakeOutput(t, 0)
	for _, args := range [][]string{
		{"verify", "--brokers", brokers, "--output", "out", "--output", "no-such-topic"},
		{"verify", "--brokers", brokers, "--output", "out", "--input", "no-such-topic"},
	} {
		code, _, stderr := cli(t, args...)
		if code != exitError || !strings.Contains(stderr, `"no-such-topic"`) || strings.Contains(stderr, "goroutine") {
			t.Errorf("%v: exit %d, stderr %q; want 2 and a message naming the topic", args, code, stderr)
		}
	}
}

func TestVerifyUnreachableBrokers(t *testing.T) {
	code, _, stderr := cli(t, "verify", "--brokers", "127.0.0.1:1", "--output", "out", "--timeout", "20s")
	if code != exitError || !strings.Contains(stderr, "cannot reach brokers") {
		t.Fatalf("exit %d, stderr %q; want 2 and a connection error", code, stderr)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"verify", "--bogus"},
		{"verify"}, // no --output
		{"verify", "--output", "out", "--max-examples", "many"},
		{"verify", "--output", "out", "--max-examples", "-1"},
		{"verify", "--output", "out", "--timeout", "0s"},
		{"verify", "--output", "out", "--brokers", ","},
		{"verify", "--output", "out", "stray"},
		{"no-such-command"},
	} {
		code, stdout, stderr := cli(t, args...)
		if code != exitError || !strings.Contains(stderr, "--help' for usage") || stdout != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 2 and a usage hint on stderr only", args, code, stdout, stderr)
		}
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{}, {"--help"}, {"verify", "--help"}, {"help", "verify"}} {
		code, stdout, _ := cli(t, args...)
		if code != exitOK || !strings.Contains(stdout, "verify") {
			t.Errorf("%v: exit %d; want 0 and help on stdout", args, code)
		}
	}
}
