package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/e2e/jobs/shared"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/internal/kafkatest"
)

// poisonKind says what an input record of the failure tests is.
type poisonKind int

const (
	good poisonKind = iota
	undecodable
	negative
	flakyGood
)

// purchases returns n keyed input records, with kind(i) choosing which are
// poison, and what each is.
func purchases(topic string, n int, kind func(i int) poisonKind) ([]*kgo.Record, []poisonKind) {
	recs := make([]*kgo.Record, n)
	kinds := make([]poisonKind, n)
	for i := range n {
		k := kind(i)
		kinds[i] = k
		var v []byte
		switch k {
		case undecodable:
			v = []byte(fmt.Sprintf(`{"id":%d,"amount":`, i)) // truncated JSON
		case negative:
			v, _ = json.Marshal(shared.Purchase{ID: i, Amount: -i})
		case flakyGood:
			v, _ = json.Marshal(shared.Purchase{ID: i, Amount: i, Flaky: true})
		default:
			v, _ = json.Marshal(shared.Purchase{ID: i, Amount: i})
		}
		recs[i] = &kgo.Record{Topic: topic, Key: []byte("p" + strconv.Itoa(i)), Value: v,
			Headers: []kgo.RecordHeader{{Key: "source", Value: []byte("test")}}}
	}
	return recs, kinds
}

// startPoison starts the failure-handling job with the dead-letter
// policy, serving its probes on addr.
func startPoison(t *testing.T, brokers []string, in, out, group, addr string, env ...string) *process {
	t.Helper()
	return startBinary(t, binary(t, "poison"), append([]string{"JOB_INPUT=" + in, "JOB_OUTPUT=" + out,
		"WEIR_BROKERS=" + strings.Join(brokers, ","), "WEIR_GROUP=" + group, "WEIR_METRICS_ADDR=" + addr,
		"WEIR_CHECKPOINT_INTERVAL=100ms", "WEIR_ERROR_POLICY=dead-letter"}, env...)...)
}

// checkFailureRun checks a finished run: every valid purchase in the output
// exactly once, and every poison record exactly once in the dead-letter
// topic, as it was read, with headers naming where it came from and why.
func checkFailureRun(t *testing.T, in string, input []*kgo.Record, kinds []poisonKind, outs, dlq []*kgo.Record) {
	t.Helper()
	seen := map[int]int{}
	for _, r := range outs {
		var c shared.Checked
		if err := json.Unmarshal(r.Value, &c); err != nil {
			t.Fatalf("undecodable output %q: %v", r.Value, err)
		}
		seen[c.ID]++
	}
	var wantOut, dups, missing, wrong int
	for i, k := range kinds {
		switch k {
		case good, flakyGood:
			wantOut++
			switch seen[i] {
			case 1:
			case 0:
				missing++
			default:
				dups++
			}
		default:
			if seen[i] > 0 {
				wrong++
			}
		}
	}
	if dups+missing+wrong > 0 || len(outs) != wantOut {
		t.Errorf("outputs: %d records, want %d: %d duplicated, %d missing, %d poison records in it", len(outs), wantOut, dups, missing, wrong)
	}
	byOffset := map[string]*kgo.Record{}
	offsetOf := map[string]int{} // "partition/offset" -> input index
	for i, r := range input {
		offsetOf[fmt.Sprintf("%d/%d", r.Partition, r.Offset)] = i
	}
	var wantDLQ int
	for _, k := range kinds {
		if k == undecodable || k == negative {
			wantDLQ++
		}
	}
	bad := 0
	for _, r := range dlq {
		h := map[string]string{}
		for _, x := range r.Headers {
			h[x.Key] = string(x.Value)
		}
		at := h[engine.HeaderErrorPartition] + "/" + h[engine.HeaderErrorOffset]
		if byOffset[at] != nil {
			t.Errorf("dead letter for %s twice", at)
			bad++
			continue
		}
		byOffset[at] = r
		i, ok := offsetOf[at]
		if !ok || h[engine.HeaderErrorTopic] != in {
			t.Errorf("dead letter names %s/%s, which is no input record", h[engine.HeaderErrorTopic], at)
			bad++
			continue
		}
		orig := input[i]
		wantClass, wantOp := engine.ClassDecode, "source:"+in
		if kinds[i] == negative {
			wantClass, wantOp = engine.ClassError, "map"
		}
		switch {
		case kinds[i] != undecodable && kinds[i] != negative:
			t.Errorf("dead letter for %s, a valid record", at)
		case string(r.Key) != string(orig.Key) || string(r.Value) != string(orig.Value) || !r.Timestamp.Equal(orig.Timestamp):
			t.Errorf("dead letter for %s is not the record read: %q=%q at %v, want %q=%q at %v", at, r.Key, r.Value, r.Timestamp, orig.Key, orig.Value, orig.Timestamp)
		case h["source"] != "test":
			t.Errorf("dead letter for %s lost the record's own headers", at)
		case h[engine.HeaderErrorClass] != wantClass || h[engine.HeaderErrorOperator] != wantOp:
			t.Errorf("dead letter for %s: class %q in %q, want %q in %q", at, h[engine.HeaderErrorClass], h[engine.HeaderErrorOperator], wantClass, wantOp)
		case h[engine.HeaderErrorMessage] == "" || h[engine.HeaderErrorAttempts] != "1" || h[engine.HeaderErrorTime] == "" || h[engine.HeaderErrorTask] == "":
			t.Errorf("dead letter for %s: headers incomplete: %v", at, h)
		default:
			continue
		}
		bad++
		if bad > 10 {
			t.Fatalf("too many bad dead letters")
		}
	}
	if len(dlq) != wantDLQ {
		t.Errorf("dead letters: %d, want %d (one per poison record)", len(dlq), wantDLQ)
	}
}

// TestDeadLettersExactlyOnceThroughCrashes runs the failure-handling job
// over 100k purchases, 1% of them poison (half undecodable, half rejected
// by the validator), with the dead-letter policy, SIGKILLing it several
// times during the run: exactly the poison records are in the dead-letter
// topic, once each, and every valid purchase is in the output once.
func TestDeadLettersExactlyOnceThroughCrashes(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	in := kafkatest.CreateTopic(t, brokers, "dlq-in", partitions)
	out := kafkatest.CreateTopic(t, brokers, "dlq-out", partitions)
	group := kafkatest.Name("dlq")
	const n = 100_000
	input, kinds := purchases(in, n, func(i int) poisonKind {
		switch {
		case i%200 == 7:
			return undecodable
		case i%200 == 107:
			return negative
		case i%500 == 3:
			return flakyGood
		}
		return good
	})
	produced := produceInSlices(t, brokers, input, 1000, 20*time.Millisecond) // about 20 s of input
	outs := collect(t, brokers, out)
	env := []string{"JOB_INPUT=" + in, "JOB_OUTPUT=" + out, "WEIR_BROKERS=" + strings.Join(brokers, ","),
		"WEIR_GROUP=" + group, "WEIR_METRICS_ADDR=", "WEIR_CHECKPOINT_INTERVAL=100ms", "WEIR_SESSION_TIMEOUT=6s",
		"WEIR_ERROR_POLICY=dead-letter", "WEIR_RETRY_INITIAL_INTERVAL=5ms", "WEIR_RETRY_MAX_INTERVAL=20ms",
		"WEIR_STATE_DIR=" + t.TempDir()}
	bin := binary(t, "poison")
	p := startBinary(t, bin, env...)
	for kill := range 3 {
		want := (kill + 1) * n / 5
		kafkatest.Eventually(t, 2*time.Minute, fmt.Sprintf("%d outputs before kill %d", want, kill+1), func() bool { return outs.len() >= want })
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
		p = startBinary(t, bin, env...)
	}
	<-produced
	valid := n - n/100
	kafkatest.Eventually(t, 3*time.Minute, "every valid purchase in the output", func() bool { return outs.len() >= valid })
	dlq := kafkatest.ReadAll(t, brokers, group+"-dlq", n/100, time.Minute)
	time.Sleep(time.Second) // anything extra (a duplicate) would be committed by now
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, time.Minute); code != 0 {
		t.Fatalf("job exited %d", code)
	}
	checkFailureRun(t, in, readInput(t, brokers, in, n), kinds, outs.snapshot(), kafkatest.ReadAllSettled(t, brokers, group+"-dlq", len(dlq), time.Minute, 2*time.Second))
}

// readInput reads the input topic back, so each record's partition and
// offset are known, ordered by the id in its key.
func readInput(t *testing.T, brokers []string, topic string, n int) []*kgo.Record {
	t.Helper()
	recs := kafkatest.ReadAll(t, brokers, topic, n, time.Minute)
	byID := make([]*kgo.Record, n)
	for _, r := range recs {
		i, err := strconv.Atoi(strings.TrimPrefix(string(r.Key), "p"))
		if err != nil || i >= n {
			t.Fatalf("input key %q", r.Key)
		}
		byID[i] = r
	}
	return byID
}

// TestCircuitBreakerHaltsAndResumes feeds the job 20% poison: the breaker
// trips, the replica halts (nothing more is committed, /readyz says why),
// and after a resume with a higher threshold it finishes with exact
// outputs and dead letters.
func TestCircuitBreakerHaltsAndResumes(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	in := kafkatest.CreateTopic(t, brokers, "breaker-in", partitions)
	out := kafkatest.CreateTopic(t, brokers, "breaker-out", partitions)
	group := kafkatest.Name("breaker")
	const n = 20_000
	input, kinds := purchases(in, n, func(i int) poisonKind {
		if i%5 == 2 {
			return negative
		}
		return good
	})
	kafkatest.ProduceSync(t, kafkatest.Client(t, brokers), input...)
	addr := kafkatest.FreeAddr(t)
	p := startPoison(t, brokers, in, out, group, addr)
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	kafkatest.Eventually(t, time.Minute, "the breaker to open (/readyz unready)", func() bool {
		code, body := get("/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "circuit breaker open")
	})
	_, why := get("/readyz")
	t.Logf("/readyz: %s", strings.TrimSpace(why))
	if !regexp.MustCompile(`operator map in task 0_\d: 10\d of its last 1000 records failed`).MatchString(why) {
		t.Errorf("/readyz does not say which operator tripped the breaker and why: %q", why)
	}
	// Halted: what is committed stops moving, and accounts for every
	// input record before it exactly (outputs and dead letters).
	committed := func() int64 {
		var sum int64
		for _, off := range kafkatest.CommittedOffsets(t, brokers, group, in) {
			sum += off
		}
		return sum
	}
	time.Sleep(time.Second) // the last checkpoint before the halt commits
	before := committed()
	time.Sleep(2 * time.Second)
	after := committed()
	if before != after || after >= n {
		t.Fatalf("committed offsets moved while halted: %d, then %d (of %d)", before, after, n)
	}
	outsHalted := readToEnd(t, brokers, out)
	dlqHalted := readToEnd(t, brokers, group+"-dlq")
	if int64(len(outsHalted)+len(dlqHalted)) != after {
		t.Errorf("halted with %d input records committed, but %d outputs and %d dead letters", after, len(outsHalted), len(dlqHalted))
	}
	if code, body := get("/metrics"); code != http.StatusOK || !strings.Contains(body, "weir_circuit_breaker_open{job=\"e2e-poison\"} 1") {
		t.Errorf("metrics do not show the breaker open")
	}
	// weir breaker status says why; resume with a threshold above the
	// poison share.
	if out := weirRun(t, "breaker", "status", "--addr", addr); !strings.HasPrefix(out, "halted: circuit breaker open") {
		t.Errorf("weir breaker status: %q", out)
	}
	if out := weirRun(t, "breaker", "resume", "--addr", addr, "--threshold", "0.3"); !strings.Contains(out, "resumed (threshold 0.3 of the last 1000 records)") {
		t.Fatalf("weir breaker resume: %q", out)
	}
	var st engine.BreakerStatus
	resp, err := http.Get("http://" + addr + "/breaker")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || st.Halted || st.Threshold != 0.3 {
		t.Fatalf("GET /breaker after the resume: %+v (%v)", st, err)
	}
	resp.Body.Close()
	kafkatest.Eventually(t, time.Minute, "every input committed after the resume", func() bool { return committed() == n })
	kafkatest.Eventually(t, 10*time.Second, "/readyz ready again", func() bool { code, _ := get("/readyz"); return code == http.StatusOK })
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, time.Minute); code != 0 {
		t.Fatalf("job exited %d", code)
	}
	checkFailureRun(t, in, readInput(t, brokers, in, n), kinds,
		kafkatest.ReadAll(t, brokers, out, n, 3*time.Second), kafkatest.ReadAll(t, brokers, group+"-dlq", n, 3*time.Second))

	// weir dlq shows every dead letter, and replays chosen ones into the
	// input topic with their own headers only.
	show := weirRun(t, "dlq", "show", "--brokers", strings.Join(brokers, ","), "--topic", group+"-dlq", "--json")
	if lines := strings.Count(show, "\n"); lines != n/5 {
		t.Errorf("weir dlq show --json printed %d dead letters, want %d", lines, n/5)
	}
	var first struct {
		ID, Class, Operator string
		Topic               string `json:"source_topic"`
	}
	if err := json.Unmarshal([]byte(show[:strings.Index(show, "\n")]), &first); err != nil || first.Topic != in || first.Class != engine.ClassError || first.Operator != "map" {
		t.Errorf("weir dlq show: first dead letter %+v (%v)", first, err)
	}
	if out := weirRun(t, "dlq", "replay", "--brokers", strings.Join(brokers, ","), "--topic", group+"-dlq", "--records", "0@0-4,1@0"); !strings.Contains(out, "replayed 6 of ") {
		t.Fatalf("weir dlq replay: %q", out)
	}
	replayed := kafkatest.ReadAll(t, brokers, in, n+6, 30*time.Second)
	if len(replayed) != n+6 {
		t.Fatalf("input topic has %d records after the replay, want %d", len(replayed), n+6)
	}
	for _, r := range replayed {
		for _, h := range r.Headers {
			if strings.HasPrefix(h.Key, "weir.error.") {
				t.Errorf("a replayed record kept header %s", h.Key)
			}
		}
	}
}

// weirRun runs the weir CLI with args and returns its output, failing the
// test unless it exits 0.
func weirRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(weirCLI(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("weir %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestTransientFailuresAreRetried: an enrichment that fails twice with a
// retryable error and then succeeds produces no dead letter and no
// duplicate, and the retries show in weir_retries_total.
func TestTransientFailuresAreRetried(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	in := kafkatest.CreateTopic(t, brokers, "retry-in", partitions)
	out := kafkatest.CreateTopic(t, brokers, "retry-out", partitions)
	group := kafkatest.Name("retry")
	const n = 2000
	input, kinds := purchases(in, n, func(i int) poisonKind {
		if i%20 == 1 {
			return flakyGood
		}
		return good
	})
	kafkatest.ProduceSync(t, kafkatest.Client(t, brokers), input...)
	addr := kafkatest.FreeAddr(t)
	p := startPoison(t, brokers, in, out, group, addr, "WEIR_RETRY_INITIAL_INTERVAL=5ms", "WEIR_RETRY_MAX_INTERVAL=20ms")
	outs := kafkatest.ReadAll(t, brokers, out, n, 2*time.Minute)
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`weir_retries_total\{job="e2e-poison",operator="map-2"\} (\d+)`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("no weir_retries_total for the enrichment in:\n%s", grepLines(string(body), "weir_retries", "weir_records_dead"))
	}
	if got, want := string(m[1]), strconv.Itoa(n/20*shared.FlakyAttempts); got != want {
		t.Errorf("weir_retries_total = %s, want %s (%d flaky records, %d retries each)", got, want, n/20, shared.FlakyAttempts)
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, time.Minute); code != 0 {
		t.Fatalf("job exited %d", code)
	}
	checkFailureRun(t, in, readInput(t, brokers, in, n), kinds, outs, kafkatest.ReadAll(t, brokers, group+"-dlq", 1, 2*time.Second))
}
