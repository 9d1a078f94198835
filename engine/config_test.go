package engine

import (
	"errors"
	"flag"
	goruntime "runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/observe"
)

func TestConfigPrecedenceCodeEnvFlags(t *testing.T) {
	t.Setenv("WEIR_BROKERS", "env-a:9092, env-b:9092")
	t.Setenv("WEIR_CHECKPOINT_INTERVAL", "250ms")
	t.Setenv("WEIR_GROUP", "from-env")
	j := NewJob("precedence", WithGroup("from-code"), WithCheckpointInterval(time.Second), WithStateDir("/code"))
	FromEnv().apply(&j.cfg)
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	j.cfg.registerFlags(fs)
	if err := fs.Parse([]string{"--group=from-flag"}); err != nil {
		t.Fatal(err)
	}
	c := j.cfg
	if got := strings.Join(c.Brokers, ","); got != "env-a:9092,env-b:9092" {
		t.Errorf("brokers %q: env should override the default", got)
	}
	if c.CheckpointInterval != 250*time.Millisecond {
		t.Errorf("checkpoint interval %v: env should override code", c.CheckpointInterval)
	}
	if c.Group != "from-flag" {
		t.Errorf("group %q: flag should override env and code", c.Group)
	}
	if c.StateDir != "/code" {
		t.Errorf("state dir %q: code value should stand when nothing overrides it", c.StateDir)
	}
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigErrorsAreReportedTogether(t *testing.T) {
	t.Setenv("WEIR_CHECKPOINT_INTERVAL", "soon")
	j := NewJob("bad", FromEnv(), WithStartOffset("middle"), WithTaskQueueRecords(0))
	err := j.cfg.validate()
	if !errors.Is(err, ErrConfig) {
		t.Fatalf("want ErrConfig, got %v", err)
	}
	for _, want := range []string{`WEIR_CHECKPOINT_INTERVAL="soon"`, `start offset "middle"`, "task queue records 0"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestInboxPausesAboveHighAndResumesAtHalf(t *testing.T) {
	var pauses, resumes int
	q := newInbox(100, 0, func() { pauses++ }, func() { resumes++ })
	batchOf := func(n int) batch { return batch{topic: "t", records: make([]*kgo.Record, n)} }
	q.push(batchOf(60))
	if pauses != 0 {
		t.Fatal("paused below the threshold")
	}
	q.push(batchOf(60)) // 120 queued
	q.push(batchOf(10)) // still paused: no second pause
	if pauses != 1 {
		t.Fatalf("%d pauses, want 1", pauses)
	}
	q.pop() // 70 left: above half
	if resumes != 0 {
		t.Fatal("resumed above half the threshold")
	}
	q.pop() // 10 left
	if resumes != 1 {
		t.Fatalf("%d resumes, want 1", resumes)
	}
	if b, ok := q.pop(); !ok || len(b.records) != 10 {
		t.Fatal("lost a batch")
	}
	if _, ok := q.pop(); ok {
		t.Fatal("popped from an empty inbox")
	}
}

// TestInboxPausesOnBytes: with a byte bound (the memory budget's share),
// a queue of few large records pauses as a queue of many small ones does.
func TestInboxPausesOnBytes(t *testing.T) {
	var pauses, resumes int
	q := newInbox(1_000_000, 1<<20, func() { pauses++ }, func() { resumes++ })
	big := func() batch {
		recs := make([]*kgo.Record, 4)
		for i := range recs {
			recs[i] = &kgo.Record{Value: make([]byte, 100<<10)}
		}
		return batch{topic: "t", records: recs}
	}
	q.push(big()) // ~400 KiB
	q.push(big()) // ~800 KiB
	if pauses != 0 {
		t.Fatal("paused below the byte bound")
	}
	q.push(big()) // ~1.2 MiB
	if pauses != 1 {
		t.Fatalf("%d pauses at 1.2 MiB queued, want 1", pauses)
	}
	q.pop()
	if resumes != 0 {
		t.Fatal("resumed above half the byte bound")
	}
	q.pop()
	if resumes != 1 {
		t.Fatalf("%d resumes at 400 KiB queued, want 1", resumes)
	}
}

func TestMemoryLimitSetting(t *testing.T) {
	for in, want := range map[string]int64{"256MiB": 256 << 20, "1GiB": 1 << 30, "512Mi": 512 << 20, "100MB": 100e6, "0": 0, "off": 0, "67108864": 64 << 20} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"lots", "-5MiB", "12XB"} {
		if _, err := parseBytes(bad); err == nil {
			t.Errorf("parseBytes(%q) accepted", bad)
		}
	}
	if err := NewJob("m", WithMemoryLimit(1<<20)).cfg.validate(); err == nil || !strings.Contains(err.Error(), "at least 32MiB") {
		t.Errorf("a 1 MiB budget: %v, want an error naming the minimum", err)
	}
	b, ok := newMemoryBudget(256 << 20)
	if !ok || b.blockCache+2*b.memTable+int64(b.fetchBytes)+int64(b.producerBytes)+b.queueBytes+b.dirtyBytes+b.stateCache+b.opState > 256<<20 {
		t.Errorf("the shares of a 256 MiB budget add up past it: %+v", b)
	}
}

// A job's own flags sit beside Weir's in one flag set, parsed once, with
// Weir's settings taking flags over variables over code.
func TestRegisterFlagsBesideTheJobsOwn(t *testing.T) {
	t.Setenv("WEIR_GROUP", "from-env")
	t.Setenv("WEIR_CHECKPOINT_INTERVAL", "2s")
	job := NewJob("flags", WithCheckpointInterval(time.Second), WithBrokers("code:9092"))
	fs := flag.NewFlagSet("flags", flag.ContinueOnError)
	topic := fs.String("topic", "clicks", "the job's own flag")
	job.RegisterFlags(fs)
	job.RegisterFlags(fs) // twice is once
	if err := fs.Parse([]string{"--topic", "views", "--group", "from-flag"}); err != nil {
		t.Fatal(err)
	}
	cfg := job.Config()
	if *topic != "views" || cfg.Group != "from-flag" || cfg.CheckpointInterval != 2*time.Second || cfg.Brokers[0] != "code:9092" {
		t.Errorf("topic %q group %q interval %v brokers %v: want views, from-flag (flag over env), 2s (env over code), code:9092 (code)",
			*topic, cfg.Group, cfg.CheckpointInterval, cfg.Brokers)
	}
}

// TestGoLimitLeavesTheHeapWhatTheBudgetDoes: the Go runtime's memory limit
// is the budget less what is measured outside Go and less headroom, never
// below half the budget; a process with nothing outside Go gets more than
// the fixed share that assumed Pebble's caches full and outside.
func TestGoLimitLeavesTheHeapWhatTheBudgetDoes(t *testing.T) {
	b, _ := newMemoryBudget(256 << 20)
	for _, c := range []struct{ outside, want int64 }{
		{0, 240 << 20},
		{20 << 20, 220 << 20},
		{200 << 20, 128 << 20},
	} {
		if got := b.goLimitFor(c.outside); got != c.want {
			t.Errorf("outside %s: Go limit %s, want %s", formatBytes(c.outside), formatBytes(got), formatBytes(c.want))
		}
	}
	if b.goLimitFor(0) <= b.goMem {
		t.Errorf("nothing outside Go: limit %s, not above the fixed share %s", formatBytes(b.goLimitFor(0)), formatBytes(b.goMem))
	}
	if outside, ok := outsideGo(); ok && (outside < 0 || outside > 1<<30) {
		t.Errorf("measured %d bytes outside Go in a test process", outside)
	}
}

// A task that drains its inbox while the poll loop is still pausing its
// partitions must not leave them paused: the pause and the resume reach
// the client in the order of the inbox's decisions, the last one last.
// (Seen in a Nexmark q11 run: a repartition partition paused for good
// with 7.9M records behind it, the task idle.)
func TestInboxPauseRacingADrainEndsResumed(t *testing.T) {
	var mu sync.Mutex
	paused := false // what the client was last told
	inPause, release := make(chan struct{}), make(chan struct{})
	q := newInbox(100, 0, func() {
		close(inPause)
		<-release // the client call takes its time
		mu.Lock()
		paused = true
		mu.Unlock()
	}, func() {
		mu.Lock()
		paused = false
		mu.Unlock()
	})
	pushed := make(chan struct{})
	go func() {
		q.push(batch{topic: "t", records: make([]*kgo.Record, 150)}) // over the mark: pauses
		close(pushed)
	}()
	<-inPause
	popped := make(chan struct{})
	go func() {
		q.pop() // drained: resumes
		close(popped)
	}()
	// Once the pop has decided to resume (before the fix, it then told
	// the client at once), let the pause reach the client.
	for decided := false; !decided; goruntime.Gosched() {
		q.mu.Lock()
		decided = !q.mu.paused
		q.mu.Unlock()
	}
	close(release)
	<-pushed
	<-popped
	mu.Lock()
	defer mu.Unlock()
	if paused {
		t.Fatal("the inbox is empty and its partitions are left paused")
	}
}

// A job binary under a memory budget sets the heap's soft limit and the
// collector's target, unless the user set either with the Go runtime's
// own variables.
func TestBudgetSetsGoMemLimitAndGOGC(t *testing.T) {
	prevLimit, prevGC := debug.SetMemoryLimit(-1), debug.SetGCPercent(100)
	defer func() { debug.SetMemoryLimit(prevLimit); debug.SetGCPercent(prevGC) }()
	b, _ := newMemoryBudget(256 << 20)
	t.Setenv("GOMEMLIMIT", "")
	t.Setenv("GOGC", "")
	if !b.setGoMemLimit() || debug.SetMemoryLimit(-1) != b.goMem || debug.SetGCPercent(100) != budgetGCPercent {
		t.Fatalf("under a budget: limit %d (want %d), GOGC %d (want %d)", debug.SetMemoryLimit(-1), b.goMem, debug.SetGCPercent(100), budgetGCPercent)
	}
	t.Setenv("GOGC", "150")
	debug.SetGCPercent(150)
	if b.setGoMemLimit(); debug.SetGCPercent(150) != 150 {
		t.Fatal("a GOGC the user set was overridden")
	}
	t.Setenv("GOMEMLIMIT", "1GiB")
	if b.setGoMemLimit() {
		t.Fatal("a GOMEMLIMIT the user set was overridden")
	}
}

// Each task's share of the memory for operators' typed state is the
// budget's split among the tasks the replica runs, not among all of the
// job's: a replica running 2 of a job's 8 tasks gives each half of it,
// and a task reads its share again at each use, so that one started
// before more tasks came gets the smaller share after.
func TestStateShareFollowsTheReplicasTasks(t *testing.T) {
	b, _ := newMemoryBudget(1 << 30)
	job := NewJob("share")
	job.partitions, job.stages = 4, 2
	rt := &runtime{job: job, budget: &b, obs: observe.Nop{}}
	rt.mu.tasks = map[TaskID]*taskRunner{}
	rt.stateShare.Store(b.stateMemory(job.partitions, job.stages))
	share := rt.stateMemory // what a task of the replica reads (taskEnv.stateMem)
	if got, want := share(), b.opState/8; got != want {
		t.Fatalf("before any task: share %d, want the job's split, %d", got, want)
	}
	run := func(n int) {
		clear(rt.mu.tasks)
		for i := range n {
			rt.mu.tasks[TaskID{Stage: i % 2, Partition: int32(i / 2)}] = nil
		}
		rt.tasksChangedLocked()
	}
	for _, c := range []struct {
		tasks int
		want  int64
	}{{2, b.opState / 2}, {8, b.opState / 8}, {1, b.opState}, {4, b.opState / 4}} {
		run(c.tasks)
		if got := share(); got != c.want {
			t.Errorf("running %d tasks: share %d, want %d", c.tasks, got, c.want)
		}
	}
	small, _ := newMemoryBudget(64 << 20)
	rt.budget = &small
	run(8)
	if got := share(); got != 1<<20 {
		t.Errorf("a share below 1 MiB: %d, want 1 MiB", got)
	}
}
