// Package e2e runs Weir jobs against the real Kafka broker that `make test`
// starts, in process and as separate processes that the tests kill.
package e2e

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/e2e/jobs/shared"
	"github.com/weirstream/weir/internal/kafkatest"
	"github.com/weirstream/weir/verify"
)

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "weir-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

var builds sync.Map // job name -> *build

type build struct {
	once sync.Once
	path string
	err  error
}

// jobBinary builds the stateless job once, with the race detector, and
// returns its path.
func jobBinary(t *testing.T) string { return binary(t, "stateless") }

// binary builds e2e/jobs/<name> once, with the race detector and the
// fault points (engine/fault_on.go), which do nothing unless WEIR_FAULT
// names them.
func binary(t testing.TB, name string) string {
	t.Helper()
	v, _ := builds.LoadOrStore(name, &build{})
	b := v.(*build)
	b.once.Do(func() {
		b.path = filepath.Join(binDir, name)
		out, err := exec.Command("go", "build", "-race", "-tags", "weirfault", "-o", b.path, "./jobs/"+name).CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// syncBuffer is a bytes.Buffer safe to write from a child's output pipes
// while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// process is a job binary running as a child process.
type process struct {
	cmd    *exec.Cmd
	output *syncBuffer
	done   chan struct{}
	err    error
}

func startJob(t *testing.T, env ...string) *process {
	t.Helper()
	return startBinary(t, jobBinary(t), env...)
}

func startBinary(t testing.TB, bin string, env ...string) *process {
	t.Helper()
	cmd := exec.Command(bin)
	// Each process gets a state directory of its own (and with it a
	// replica id) unless the test gives one.
	cmd.Env = append(append(os.Environ(), "WEIR_STATE_DIR="+t.TempDir()), env...)
	p := &process{cmd: cmd, output: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.output, p.output
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting job: %v", err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			logJobOutput(t, bin, cmd.Process.Pid, p.output.String())
		}
	})
	return p
}

// jobOutputTail is how many lines of a failed test's job output the test
// log shows; the whole output goes to a file.
const jobOutputTail = 40

// logJobOutput writes a failed test's job output whole to a file under
// $WEIR_E2E_LOG_DIR (default: weir-e2e-logs in the temporary directory)
// and shows its last lines: a test that ran twenty processes would
// otherwise bury its own failure message under their logs.
func logJobOutput(t testing.TB, bin string, pid int, out string) {
	t.Helper()
	dir := filepath.Join(cmp.Or(os.Getenv("WEIR_E2E_LOG_DIR"), filepath.Join(os.TempDir(), "weir-e2e-logs")),
		strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
	file := filepath.Join(dir, fmt.Sprintf("%s-%d.log", filepath.Base(bin), pid))
	saved := "saved whole to " + file
	if err := os.MkdirAll(dir, 0o755); err != nil {
		saved = "not saved: " + err.Error()
	} else if err := os.WriteFile(file, []byte(out), 0o644); err != nil {
		saved = "not saved: " + err.Error()
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) > jobOutputTail {
		lines = lines[len(lines)-jobOutputTail:]
	}
	t.Logf("job %s (pid %d) output, %s; its last %d lines:\n%s", filepath.Base(bin), pid, saved, len(lines), strings.Join(lines, "\n"))
}

// stacks makes the process print its goroutines and exit (SIGQUIT, as Go
// handles it), and returns a summary of them: for each goroutine in Weir's
// or franz-go's code, its state and the functions on its stack, innermost
// first. The whole dump is in the process's output.
func (p *process) stacks(t testing.TB) string {
	t.Helper()
	select {
	case <-p.done:
		return fmt.Sprintf("none: the process had exited (%v)", p.err)
	default:
	}
	from := len(p.output.String())
	if err := p.cmd.Process.Signal(syscall.SIGQUIT); err != nil {
		return "no stacks: " + err.Error()
	}
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		return "no stacks: the process did not exit within 15s of SIGQUIT"
	}
	return summarizeStacks(p.output.String()[from:])
}

// summarizeStacks condenses a Go goroutine dump to one line per goroutine
// that runs Weir's or franz-go's code.
func summarizeStacks(dump string) string {
	var out []string
	for g := range strings.SplitSeq(dump, "\n\n") {
		lines := strings.Split(strings.TrimSpace(g), "\n")
		if len(lines) == 0 || !strings.HasPrefix(lines[0], "goroutine ") {
			continue
		}
		var fns []string
		for _, l := range lines[1:] {
			if strings.HasPrefix(l, "\t") || strings.HasPrefix(l, "created by") {
				continue
			}
			fn := l[:max(0, strings.LastIndexByte(l, '('))]
			fn = fn[strings.LastIndexByte(fn, '/')+1:]
			if !strings.HasPrefix(fn, "runtime.") { // gopark, selectgo, goexit: the state says as much
				fns = append(fns, fn)
			}
		}
		if j := strings.Join(fns, " < "); strings.Contains(g, "weirstream/weir/") || strings.Contains(g, "franz-go/pkg/kgo") {
			out = append(out, strings.TrimSuffix(lines[0], ":")+": "+j)
		}
	}
	if len(out) == 0 {
		return "no goroutine dump in the output"
	}
	return strings.Join(out, "\n")
}

// wait waits for the process to exit and returns its exit code.
func (p *process) wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("job did not exit within %v; output:\n%s", timeout, p.output.String())
	}
	if p.err == nil {
		return 0
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	t.Fatalf("waiting for job: %v", p.err)
	return -1
}

// collector reads a topic in the background, read_committed unless opts
// say otherwise.
type collector struct {
	mu   sync.Mutex
	recs []*kgo.Record
}

func collect(t testing.TB, brokers []string, topic string, opts ...kgo.Opt) *collector {
	t.Helper()
	c := &collector{}
	cl := kafkatest.Client(t, brokers, append([]kgo.Opt{kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted())}, opts...)...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			c.mu.Lock()
			fs.EachRecord(func(r *kgo.Record) { c.recs = append(c.recs, r) })
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

func (c *collector) snapshot() []*kgo.Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*kgo.Record(nil), c.recs...)
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.recs)
}

// distinct counts the distinct (user, seq) pairs among the outputs.
func distinct(t *testing.T, recs []*kgo.Record) int {
	t.Helper()
	seen := map[string]bool{}
	for _, r := range recs {
		var e shared.Tagged
		if err := json.Unmarshal(r.Value, &e); err != nil {
			t.Fatalf("undecodable output %q: %v", r.Value, err)
		}
		seen[e.User+"/"+strconv.Itoa(e.Seq)] = true
	}
	return len(seen)
}

// events returns users×perUser keyed input records, user u's events in
// order of seq.
func events(topic string, users, perUser int, bot func(user, seq int) bool) []*kgo.Record {
	recs := make([]*kgo.Record, 0, users*perUser)
	for seq := range perUser {
		for u := range users {
			e := shared.Event{User: "user-" + strconv.Itoa(u), Seq: seq, Bot: bot != nil && bot(u, seq)}
			b, _ := json.Marshal(e)
			recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(e.User), Value: b})
		}
	}
	return recs
}

// readToEnd reads topic as a read_committed consumer sees it now, to its
// last stable offset (see verify.ReadCommitted).
func readToEnd(t *testing.T, brokers []string, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out []*kgo.Record
	if err := verify.ReadCommitted(ctx, []string{topic}, func(r *kgo.Record) { out = append(out, r) }, kgo.SeedBrokers(brokers...)); err != nil {
		t.Fatalf("reading %s: %v", topic, err)
	}
	return out
}

// placed sets each keyed record's partition to the one Java's (and
// franz-go's) default partitioner picks among n, for produceInSlices.
func placed(recs []*kgo.Record, n int32) []*kgo.Record {
	for _, r := range recs {
		r.Partition = javaPartition(r.Key, n)
	}
	return recs
}

// checkOutputs checks outputs against the expected (user, seq) pairs: every
// one present, none unexpected, each in the partition murmur2 assigns its
// key, and per user in seq order. With exact, no duplicates either; without,
// a replayed suffix is allowed (at-least-once), but first appearances must
// still be in order.
func checkOutputs(t *testing.T, recs []*kgo.Record, want map[string]bool, partitions int32, exact bool) {
	t.Helper()
	seen := map[string]bool{}
	lastFirst := map[string]int{}
	dups := 0
	for _, r := range recs {
		var e shared.Tagged
		if err := json.Unmarshal(r.Value, &e); err != nil {
			t.Fatalf("undecodable output %q: %v", r.Value, err)
		}
		id := e.User + "/" + strconv.Itoa(e.Seq)
		if !want[id] {
			t.Fatalf("unexpected output %s", id)
		}
		if string(r.Key) != e.User || e.Tag != "human" {
			t.Fatalf("output %s has key %q, tag %q", id, r.Key, e.Tag)
		}
		if p := javaPartition(r.Key, partitions); r.Partition != p {
			t.Fatalf("output %s in partition %d, murmur2 assigns %d", id, r.Partition, p)
		}
		if seen[id] {
			dups++
			continue
		}
		seen[id] = true
		if prev, ok := lastFirst[e.User]; ok && e.Seq < prev {
			t.Fatalf("user %s: seq %d first seen after seq %d", e.User, e.Seq, prev)
		}
		lastFirst[e.User] = e.Seq
	}
	if len(seen) != len(want) {
		t.Fatalf("%d of %d expected outputs present (%d missing)", len(seen), len(want), len(want)-len(seen))
	}
	if exact && dups > 0 {
		t.Fatalf("%d duplicate outputs in a run without failures", dups)
	}
	t.Logf("%d outputs, %d distinct, %d duplicates", len(recs), len(seen), dups)
}

func wantIDs(users, perUser int, bot func(user, seq int) bool) map[string]bool {
	want := map[string]bool{}
	for u := range users {
		for seq := range perUser {
			if bot == nil || !bot(u, seq) {
				want["user-"+strconv.Itoa(u)+"/"+strconv.Itoa(seq)] = true
			}
		}
	}
	return want
}

// startReplicas starts n processes of the job e2e/jobs/<job> in one
// consumer group, each with its own state directory, and waits until the
// group is stable with all of them in it.
func startReplicas(t *testing.T, job string, brokers []string, group, in, out string, n int) []*process {
	t.Helper()
	env := []string{"JOB_INPUT=" + in, "JOB_OUTPUT=" + out, "WEIR_BROKERS=" + strings.Join(brokers, ","),
		"WEIR_GROUP=" + group, "WEIR_METRICS_ADDR=", "WEIR_CHECKPOINT_INTERVAL=100ms", "WEIR_SESSION_TIMEOUT=6s"}
	bin := binary(t, job)
	ps := make([]*process, n)
	for i := range ps {
		ps[i] = startBinary(t, bin, append(env, "WEIR_STATE_DIR="+t.TempDir())...)
	}
	adm := kadm.NewClient(kafkatest.Client(t, brokers))
	kafkatest.Eventually(t, time.Minute, fmt.Sprintf("%d replicas in the group, stable", n), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		gs, err := adm.DescribeGroups(ctx, group)
		if err != nil {
			return false
		}
		g := gs[group]
		return g.State == "Stable" && len(g.Members) == n
	})
	return ps
}

// TestSummarizeStacks checks the condensed goroutine dump a failing test
// shows on a real dump of this process.
func TestSummarizeStacks(t *testing.T) {
	buf := make([]byte, 1<<20)
	dump := string(buf[:runtime.Stack(buf, true)])
	got := summarizeStacks("SIGQUIT: quit\nPC=0x0 m=0 sigcode=0\n\n" + dump)
	if !strings.Contains(got, "e2e.TestSummarizeStacks < ") || strings.Contains(got, "\t") {
		t.Fatalf("summary of the dump:\n%s\nmisses this test's goroutine or keeps file lines; dump:\n%s", got, dump)
	}
	if got := summarizeStacks("no dump here"); got != "no goroutine dump in the output" {
		t.Fatalf("summary of no dump: %q", got)
	}
}
