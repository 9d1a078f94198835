package e2e

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/e2e/jobs/shared"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/internal/kafkatest"
)

// payments generates the totals job's input: n payments of accounts keyed
// by account (so each account's payments keep their order through the
// job's repartition), event times rising with the index so none is late,
// then one trailer per partition an hour later so every window closes.
// It returns the records in production order.
func payments(topic string, n int, partitions int32) []*kgo.Record {
	rng := rand.New(rand.NewPCG(3, 5))
	base := time.Date(2024, 3, 1, 9, 0, 0, 0, time.UTC)
	recs := make([]*kgo.Record, 0, n+int(partitions))
	at := base
	for i := range n {
		at = base.Add(time.Duration(i) * 5 * time.Millisecond)
		p := shared.Payment{Account: fmt.Sprintf("acct-%d", rng.IntN(1000)), Amount: 1 + rng.Int64N(1000), At: at}
		b, _ := json.Marshal(p)
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(p.Account), Value: b, Timestamp: at, Partition: javaPartition([]byte(p.Account), partitions)})
	}
	for p := range partitions {
		// A trailer account hashing to partition p.
		for k := 0; ; k++ {
			acct := fmt.Sprintf("zz-trailer-%d", k)
			if javaPartition([]byte(acct), partitions) != p {
				continue
			}
			tr := shared.Payment{Account: acct, Amount: 1, At: at.Add(time.Hour)}
			b, _ := json.Marshal(tr)
			recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(acct), Value: b, Timestamp: tr.At, Partition: p})
			break
		}
	}
	return recs
}

// totalsReference computes the totals job's outputs from its input alone:
// per account, the running totals in order, and the count per account and
// window of every window the trailers close.
func totalsReference(t *testing.T, input []*kgo.Record) (map[string][]shared.Total, map[string]int64) {
	t.Helper()
	totals := map[string][]shared.Total{}
	windows := map[string]int64{}
	for _, r := range input {
		var p shared.Payment
		if err := json.Unmarshal(r.Value, &p); err != nil {
			t.Fatal(err)
		}
		prev := shared.Total{Account: p.Account}
		if ts := totals[p.Account]; len(ts) > 0 {
			prev = ts[len(ts)-1]
		}
		totals[p.Account] = append(totals[p.Account], shared.Total{Account: p.Account, N: prev.N + 1, Total: prev.Total + p.Amount})
		if !strings.HasPrefix(p.Account, "zz-trailer") {
			windows[windowKey(p.Account, p.At.Truncate(shared.TotalsWindow))]++
		}
	}
	return totals, windows
}

func windowKey(account string, start time.Time) string {
	return account + " " + start.UTC().Format(time.RFC3339)
}

// produceInSlices writes input in n slices, one every pause, in the
// background; the channel closes once all is written.
func produceInSlices(t testing.TB, brokers []string, input []*kgo.Record, n int, pause time.Duration) <-chan struct{} {
	t.Helper()
	producer := kafkatest.Client(t, brokers, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		step := len(input)/n + 1
		for i := 0; i < len(input); i += step {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			err := producer.ProduceSync(ctx, input[i:min(i+step, len(input))]...).FirstErr()
			cancel()
			if err != nil {
				t.Errorf("producing input: %v", err)
				return
			}
			time.Sleep(pause)
		}
	}()
	return produced
}

// grepLines returns the lines of s containing any of subs.
func grepLines(s string, subs ...string) string {
	return filterLines(s, -1, func(line string) bool { return containsAny(line, subs) })
}

// grepLinesNot returns the first max lines of s that contain none of subs.
func grepLinesNot(s string, max int, subs ...string) string {
	return filterLines(s, max, func(line string) bool { return !containsAny(line, subs) })
}

// filterLines returns the first max lines of s (all if max < 0) that keep
// holds for.
func filterLines(s string, max int, keep func(string) bool) string {
	var out []string
	for line := range strings.Lines(s) {
		if len(out) == max {
			break
		}
		if keep(line) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "")
}

func containsAny(s string, subs []string) bool {
	return slices.ContainsFunc(subs, func(sub string) bool { return strings.Contains(s, sub) })
}

// weirCLI builds cmd/weir once.
func weirCLI(t testing.TB) string {
	t.Helper()
	v, _ := builds.LoadOrStore("cmd/weir", &build{})
	b := v.(*build)
	b.once.Do(func() {
		b.path = filepath.Join(binDir, "weir")
		if out, err := exec.Command("go", "build", "-o", b.path, "../cmd/weir").CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// runVerify runs `weir verify --require-provenance` and fails the test
// unless it exits 0.
func runVerify(t testing.TB, brokers []string, args ...string) string {
	t.Helper()
	return verifyCLI(t, brokers, append([]string{"--require-provenance"}, args...)...)
}

// verifyCLI runs `weir verify` with args and fails the test unless it
// exits 0.
func verifyCLI(t testing.TB, brokers []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(weirCLI(t), append([]string{"verify", "--brokers", strings.Join(brokers, ",")}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("weir verify %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// totalsRun is what the totals job's chaos tests share: fresh input and
// output topics and group, the generated input with the windows it must
// give, and two replicas, each with a state directory of its own.
type totalsRun struct {
	brokers        []string
	in, out, group string
	input          []*kgo.Record
	wantWindows    map[string]int64
	a, b           *replica
}

// newTotalsRun sets up a run over n payments on 4 partitions; env adds to
// (or, later in the list, overrides) the replicas' common settings.
func newTotalsRun(t *testing.T, name string, n int, env ...string) *totalsRun {
	t.Helper()
	const parts = 4
	r := &totalsRun{brokers: kafkatest.Brokers(t)}
	r.in = kafkatest.CreateTopic(t, r.brokers, name+"-in", parts)
	r.out = kafkatest.CreateTopic(t, r.brokers, name+"-totals", parts)
	kafkatest.CreateNamedTopic(t, r.brokers, shared.WindowsTopic(r.out), parts)
	r.group = kafkatest.Name(name)
	r.input = payments(r.in, n, parts)
	_, r.wantWindows = totalsReference(t, r.input)
	common := append([]string{"JOB_INPUT=" + r.in, "JOB_OUTPUT=" + r.out, "WEIR_BROKERS=" + strings.Join(r.brokers, ","),
		"WEIR_GROUP=" + r.group, "WEIR_METRICS_ADDR=", "WEIR_PROVENANCE=true", "WEIR_LOG_LEVEL=info"}, env...)
	r.a = &replica{name: "a", env: append(slices.Clone(common), "WEIR_STATE_DIR="+t.TempDir())}
	r.b = &replica{name: "b", env: append(slices.Clone(common), "WEIR_STATE_DIR="+t.TempDir())}
	return r
}

// replica is one replica of the crash test's job (or of e2e/jobs/<job>):
// its state directory outlives the processes that run on it.
type replica struct {
	name string
	job  string // default totals
	env  []string
	p    *process
}

func (r *replica) start(t testing.TB) {
	r.p = startBinary(t, binary(t, cmp.Or(r.job, "totals")), r.env...)
}

func (r *replica) exited() bool {
	select {
	case <-r.p.done:
		return true
	default:
		return false
	}
}

// faulted reports whether the process died at an injected fault.
func (r *replica) faulted() bool { return strings.Contains(r.p.output.String(), "fault injected at") }

// fenced reports whether the process stopped itself so that its restart
// fences a transaction an abort left open (engine.ErrAbortNotSent): a
// death by design, which Kubernetes answers with a restart, as the tests
// do.
func (r *replica) fenced() bool {
	return strings.Contains(r.p.output.String(), engine.ErrAbortNotSent.Error())
}

// stop sends SIGTERM once the process handles it (it logs "job starting"
// after installing the handler: a process killed before that would only
// show the test's timing) and wants a clean exit, or a death at an injected
// fault. revive, if not nil, restarts the process should it die meanwhile.
func (r *replica) stop(t testing.TB, revive func(*replica)) {
	t.Helper()
	kafkatest.Eventually(t, time.Minute, "replica "+r.name+" handling SIGTERM", func() bool {
		if revive != nil {
			revive(r)
		}
		return strings.Contains(r.p.output.String(), "job starting")
	})
	if err := r.p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := r.p.wait(t, time.Minute); code != 0 && !r.faulted() && !r.fenced() {
		t.Fatalf("replica %s exited %d after SIGTERM:\n%s", r.name, code, r.p.output.String())
	}
}

// TestCrashesExactlyOnce is the exactly-once proof: a stateful job (keyed
// running totals and tumbling-window counts, behind a repartition) over
// 100k payments on 4 partitions, written while it runs, is SIGKILLed at
// least 10 times at random moments, and kills itself at random between a
// transaction's commit and the Pebble commit (fault point after-commit);
// the broker is restarted once under it, and a second replica joins and
// leaves. Afterwards weir verify (provenance headers against the input)
// and a reference computed from the input alone find no duplicate, no
// missing and no wrong record.
func TestCrashesExactlyOnce(t *testing.T) { runCrashes(t, "exactly-once", 12) }

// TestCrashesAtLeastOnce runs the same chaos at least once, with fewer
// kills: nothing may be lost. Outputs repeat, and so do the repartition
// records of work redone after a crash, which the second stage counts
// again (as Kafka Streams at least once does): totals and window counts
// may come out higher, never lower, and every total's position (the n-th
// payment of an account) must appear.
func TestCrashesAtLeastOnce(t *testing.T) { runCrashes(t, "at-least-once", 6) }

func runCrashes(t *testing.T, guarantee string, minKills int) {
	script := os.Getenv("WEIR_KAFKA_SH")
	if script == "" {
		t.Skip("needs the broker scripts/kafka.sh started (make test); it restarts it")
	}
	run := newTotalsRun(t, "crash", 100_000, "WEIR_CHECKPOINT_INTERVAL=200ms", "WEIR_SESSION_TIMEOUT=3s",
		"WEIR_FAULT=after-commit:0.03", "WEIR_GUARANTEE="+guarantee,
		"WEIR_LOG_LEVEL="+cmp.Or(os.Getenv("WEIR_CRASH_LOG_LEVEL"), "info"))
	brokers, in, out, group, input, wantWindows, a, b := run.brokers, run.in, run.out, run.group, run.input, run.wantWindows, run.a, run.b
	a.start(t)

	// The input arrives while the job runs and crashes.
	produced := produceInSlices(t, brokers, input, 20, 500*time.Millisecond)

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	var kills, faults int
	bRunning, bDone := false, false
	// restartDead restarts a replica that died on its own: at an injected
	// fault (counted), or for any other reason (a failure).
	restartDead := func(r *replica) {
		if !r.exited() {
			return
		}
		if !r.faulted() && !r.fenced() {
			t.Fatalf("replica %s died, not at an injected fault:\n%s", r.name, r.p.output.String())
		}
		faults++
		r.start(t)
	}
	if v, err := strconv.Atoi(os.Getenv("WEIR_CRASH_KILLS")); err == nil {
		minKills = v // for debugging the job without chaos
	}
	for kills < minKills {
		// A random moment: anywhere from mid-restore to mid-commit.
		time.Sleep(time.Duration(300+rng.IntN(2200)) * time.Millisecond)
		restartDead(a)
		if bRunning {
			restartDead(b)
		}
		victim := a
		if bRunning && rng.IntN(3) == 0 {
			victim = b
		}
		if err := victim.p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-victim.p.done
		kills++
		victim.start(t)
		switch kills {
		case 3:
			b.start(t)
			bRunning = true
		case 5:
			if out, err := exec.Command("bash", script, "restart", "--kill").CombinedOutput(); err != nil {
				t.Fatalf("restarting the broker: %v\n%s", err, out)
			}
		case 8:
			b.stop(t, restartDead) // it leaves the group
			bRunning, bDone = false, true
		}
	}
	if !bDone && minKills >= 8 {
		t.Fatal("replica b never left")
	}
	<-produced
	t.Logf("%d SIGKILLs, %d deaths at the after-commit fault point", kills, faults)

	// Let the job catch up (restarting it should it die at the fault
	// point), then stop it cleanly.
	totals := collect(t, brokers, out)
	windows := collect(t, brokers, shared.WindowsTopic(out))
	start := time.Now()
	kafkatest.Eventually(t, 4*time.Minute, "every total and window committed", func() bool {
		restartDead(a)
		done := totals.len() >= len(input) && windows.len() >= len(wantWindows)
		if guarantee == "at-least-once" {
			// Repeats count too: wait for the job to have committed
			// everything it read, through both stages.
			done = done && caughtUp(t, brokers, group, in, group+"-by-account-repartition", 4)
		}
		if !done && time.Since(start) > 3*time.Minute {
			t.Logf("%d of %d totals, %d of %d windows", totals.len(), len(input), windows.len(), len(wantWindows))
		}
		return done
	})
	t.Logf("caught up %v after the last kill", time.Since(start))
	a.stop(t, restartDead)

	if guarantee == "at-least-once" {
		late := kafkatest.ReadAll(t, brokers, group+"-window-counts-late", 1<<30, 3*time.Second)
		t.Logf("%d records on the late topic", len(late))
		checkTotals(t, brokers, in, out, input, true)
		return
	}
	checkTotalsExactlyOnce(t, brokers, in, out, input)
}

// caughtUp reports whether group has committed the end of in and, but for
// a trailing transaction marker per partition, of the repartition topic.
func caughtUp(t testing.TB, brokers []string, group, in, repartition string, parts int64) bool {
	adm := kadm.NewClient(kafkatest.Client(t, brokers))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, in, repartition)
	if err != nil {
		return false
	}
	sum := func(topic string) (end, committed int64, ok bool) {
		ends.Each(func(o kadm.ListedOffset) {
			if o.Topic == topic {
				end += o.Offset
			}
		})
		offs, err := kafkatest.TryCommittedOffsets(t, brokers, group, topic)
		if err != nil {
			return 0, 0, false // the coordinator not ready: ask again
		}
		for _, o := range offs {
			committed += o
		}
		return end, committed, true
	}
	inEnd, inCommitted, inOK := sum(in)
	repEnd, repCommitted, repOK := sum(repartition)
	return inOK && repOK && inCommitted == inEnd && repCommitted >= repEnd-parts
}

// checkTotalsExactlyOnce checks the totals job's committed outputs with
// weir verify (provenance against the input: every payment produced
// exactly one total; the windows for duplicates and order) and against a
// reference computed from the input alone: no duplicate, missing or wrong
// total or window.
func checkTotalsExactlyOnce(t *testing.T, brokers []string, in, out string, input []*kgo.Record) {
	t.Helper()
	t.Log(runVerify(t, brokers, "--output", out, "--input", in))
	t.Log(runVerify(t, brokers, "--output", shared.WindowsTopic(out)))
	checkTotals(t, brokers, in, out, input, false)
}

// checkTotals compares the totals job's committed outputs with a reference
// computed from the input alone: no missing or wrong total or window, and,
// unless repeats are allowed (at least once), no repeated one either.
func checkTotals(t *testing.T, brokers []string, in, out string, input []*kgo.Record, repeats bool) {
	t.Helper()
	wantTotals, wantWindows := totalsReference(t, input)
	gotTotals := kafkatest.ReadAll(t, brokers, out, 10*len(input), 10*time.Second)
	perAccount := map[string][]shared.Total{}
	for _, r := range gotTotals {
		var tot shared.Total
		if err := json.Unmarshal(r.Value, &tot); err != nil {
			t.Fatalf("undecodable total %q: %v", r.Value, err)
		}
		perAccount[tot.Account] = append(perAccount[tot.Account], tot)
	}
	var dupTotals, missingTotals, wrongTotals int
	for acct, want := range wantTotals {
		got := perAccount[acct]
		seen := map[int64]bool{}
		for _, g := range got {
			if seen[g.N] {
				dupTotals++
			}
			seen[g.N] = true
			if g.N < 1 || g.N > int64(len(want)) || want[g.N-1] != g {
				wrongTotals++
			}
		}
		for _, w := range want {
			if !seen[w.N] {
				missingTotals++
			}
		}
		if len(got) == len(want) && !slices.Equal(got, want) {
			t.Errorf("account %s: totals out of order", acct)
		}
	}
	if len(perAccount) != len(wantTotals) {
		t.Errorf("totals for %d accounts, want %d", len(perAccount), len(wantTotals))
	}
	gotWindows := kafkatest.ReadAll(t, brokers, shared.WindowsTopic(out), 10*len(wantWindows), 10*time.Second)
	var dupWindows, wrongWindows, lowWindows int
	seenWindows := map[string]bool{}
	for _, r := range gotWindows {
		var w shared.WindowCount
		if err := json.Unmarshal(r.Value, &w); err != nil {
			t.Fatalf("undecodable window %q: %v", r.Value, err)
		}
		k := windowKey(w.Account, w.Start)
		if seenWindows[k] {
			dupWindows++
		}
		seenWindows[k] = true
		if wantWindows[k] != w.Count {
			wrongWindows++
		}
		if w.Count < wantWindows[k] {
			lowWindows++
			if lowWindows <= 5 {
				t.Logf("window %s counted low: %d, want %d (partition %d, offset %d)", k, w.Count, wantWindows[k], r.Partition, r.Offset)
			}
		}
	}
	missingWindows := 0
	for k := range wantWindows {
		if !seenWindows[k] {
			missingWindows++
		}
	}
	t.Logf("totals: %d records, %d duplicates, %d missing, %d wrong; windows: %d records, %d duplicates, %d missing, %d wrong",
		len(gotTotals), dupTotals, missingTotals, wrongTotals, len(gotWindows), dupWindows, missingWindows, wrongWindows)
	if repeats {
		if missingTotals+missingWindows+lowWindows != 0 {
			t.Fatalf("outputs lost: %d windows counted low", lowWindows)
		}
		return
	}
	if dupTotals+missingTotals+wrongTotals+dupWindows+missingWindows+wrongWindows != 0 || len(gotTotals) != len(input) {
		t.Fatal("the outputs are not exactly once")
	}
}

// TestZombieIsFenced freezes a replica (SIGSTOP) in the middle of its
// work, past its session timeout, while the other replica takes over its
// tasks, then lets it run again: whatever it had in flight, and whatever
// it tries to commit on waking, is fenced (its transaction aborted, its
// group generation stale), and the outputs stay exactly once.
func TestZombieIsFenced(t *testing.T) {
	run := newTotalsRun(t, "zombie", 60_000, "WEIR_CHECKPOINT_INTERVAL=200ms", "WEIR_SESSION_TIMEOUT=3s")
	brokers, in, out, group, input, wantWindows, a, b := run.brokers, run.in, run.out, run.group, run.input, run.wantWindows, run.a, run.b
	a.start(t)
	b.start(t)
	adm := kadm.NewClient(kafkatest.Client(t, brokers))
	members := func() int {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		gs, err := adm.DescribeGroups(ctx, group)
		if err != nil {
			return -1
		}
		if g := gs[group]; g.State == "Stable" {
			return len(g.Members)
		}
		return -1
	}
	kafkatest.Eventually(t, time.Minute, "both replicas in the group", func() bool { return members() == 2 })
	produced := produceInSlices(t, brokers, input, 30, 300*time.Millisecond)
	totals := collect(t, brokers, out)
	windows := collect(t, brokers, shared.WindowsTopic(out))
	kafkatest.Eventually(t, time.Minute, "a working", func() bool {
		return strings.Contains(a.p.output.String(), "end transaction response successfully received") && totals.len() > 0
	})

	// Freeze a mid-work, until the group has given its tasks to b and b
	// has committed work of its own since.
	if err := a.p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	frozen := totals.len()
	kafkatest.Eventually(t, time.Minute, "b alone in the group", func() bool { return members() == 1 })
	kafkatest.Eventually(t, time.Minute, "b committing a's work", func() bool { return totals.len() > frozen+1000 })
	before := len(a.p.output.String())
	if err := a.p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	// On waking, a finds its membership gone: the work it held is aborted.
	fenced := kafkatest.Within(time.Minute, func() bool {
		woke := a.p.output.String()[before:]
		return strings.Contains(woke, "partitions lost") || strings.Contains(woke, "transaction aborted")
	})
	if !fenced {
		// Once seen in CI and never here: a printed nothing at all
		// after waking. Its goroutines say where it stands.
		t.Fatalf("timed out after 1m waiting for a fenced; a since waking (commit lines left out):\n%s\nwhere a's goroutines stand:\n%s",
			grepLinesNot(a.p.output.String()[before:], 30, `"logger":"kgo"`), a.p.stacks(t))
	}
	t.Logf("a on waking:\n%s", grepLines(a.p.output.String()[before:], "partitions lost", "transaction aborted", "checkpoint failed"))
	<-produced
	kafkatest.Eventually(t, 3*time.Minute, "every total and window committed", func() bool {
		return totals.len() >= len(input) && windows.len() >= len(wantWindows)
	})
	a.stop(t, nil)
	b.stop(t, nil)
	checkTotalsExactlyOnce(t, brokers, in, out, input)
}

// TestRebalanceWithUncommittedState rebalances a replica whose tasks hold
// state not yet checkpointed (a long interval makes sure there is some):
// a second replica joins, then leaves. Exactly once, the work in the open
// transaction is aborted at each rebalance and the tasks start again from
// their committed state; the outputs stay exact. (Whether a task given
// back reads the aborted work's cached writes depends on when the abort
// falls in the rebalance; TestRestoreDiscardsUncommittedWrites pins that.)
func TestRebalanceWithUncommittedState(t *testing.T) {
	run := newTotalsRun(t, "rebalance", 40_000, "WEIR_CHECKPOINT_INTERVAL=3s", "WEIR_SESSION_TIMEOUT=6s")
	brokers, in, out, input, wantWindows, a, b := run.brokers, run.in, run.out, run.input, run.wantWindows, run.a, run.b
	a.start(t)
	produced := produceInSlices(t, brokers, input, 20, 400*time.Millisecond)
	totals := collect(t, brokers, out)
	windows := collect(t, brokers, shared.WindowsTopic(out))
	kafkatest.Eventually(t, time.Minute, "a committing", func() bool { return totals.len() > 0 })
	b.start(t)
	kafkatest.Eventually(t, time.Minute, "b assigned", func() bool { return strings.Contains(b.p.output.String(), "partitions assigned") })
	kafkatest.Eventually(t, time.Minute, "b committing", func() bool {
		return strings.Contains(b.p.output.String(), "end transaction response successfully received")
	})
	b.stop(t, nil)
	<-produced
	kafkatest.Eventually(t, 3*time.Minute, "every total and window committed", func() bool {
		return totals.len() >= len(input) && windows.len() >= len(wantWindows)
	})
	a.stop(t, nil)
	checkTotalsExactlyOnce(t, brokers, in, out, input)
}
