package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/internal/kafkatest"
	"github.com/weirstream/weir/operators"
)

// failProduces makes the cluster answer the produce requests (only the
// transactional ones, with txnOnly) for which fail (called with the count
// of such requests so far, from 1) returns true with code, and every other
// request normally. (Requests name topics by id, so the tests' jobs
// produce to one topic.)
func failProduces(c *kfake.Cluster, code int16, txnOnly bool, fail func(n int64) bool) {
	var n atomic.Int64
	c.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := kreq.(*kmsg.ProduceRequest)
		if (txnOnly && req.TransactionID == nil) || !fail(n.Add(1)) {
			return nil, nil, false
		}
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
}

// slowJob is the stateless job with a map slow enough that, fetching
// small batches, its task queue stays full, so its partitions stay paused
// for backpressure.
func slowJob(name, in, out string, opts ...engine.Opt) *engine.Job {
	job := engine.NewJob(name, opts...)
	views := connectors.KafkaSource(job, in, codec.JSON[event]())
	tagged := operators.Map(views, func(e event) (enriched, error) {
		time.Sleep(time.Millisecond)
		return enriched{User: e.User, Seq: e.Seq, Tag: "seen"}, nil
	})
	connectors.KafkaSink(tagged, out, codec.JSON[enriched]())
	return job
}

// TestAbortResumesPausedPartitions: a checkpoint fails (a produce error)
// while the task's partitions are paused for backpressure; the transaction
// aborts and the task restarts with an empty queue. Its partitions must
// fetch again, or the task gets no input until the next rebalance.
func TestAbortResumesPausedPartitions(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "views", "tagged"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	brokers := c.ListenAddrs()
	const n = 3000
	var recs []*kgo.Record
	for i := range n {
		b, _ := json.Marshal(event{User: "u" + strconv.Itoa(i%7), Seq: i})
		recs = append(recs, &kgo.Record{Topic: "views", Value: b})
	}
	// In batches of 20, which fetches of 1000 bytes return one at a time:
	// the task's queue fills with several, and its partition stays paused
	// while it works through them.
	cl := kafkatest.Client(t, brokers)
	for i := 0; i < n; i += 20 {
		kafkatest.ProduceSync(t, cl, recs[i:i+20]...)
	}
	failProduces(c, kerr.InvalidRecord.Code, true, func(n int64) bool { return n == 10 })

	job := slowJob("paused", "views", "tagged", engine.WithBrokers(brokers...), engine.WithMetricsAddr(""),
		engine.WithStateDir(t.TempDir()), engine.WithTaskQueueRecords(50), engine.WithCheckpointInterval(500*time.Millisecond),
		engine.WithLogLevel("error"), engine.WithKafkaOpts(kgo.FetchMaxPartitionBytes(1000), kgo.FetchMaxBytes(1000)))
	stop := runJob(t, job)
	out := kafkatest.ReadAll(t, brokers, "tagged", n, time.Minute)
	if err := stop(); err != nil {
		t.Fatalf("clean stop returned %v", err)
	}
	seen := map[int]bool{}
	for _, r := range out {
		var e enriched
		if err := json.Unmarshal(r.Value, &e); err != nil {
			t.Fatal(err)
		}
		if seen[e.Seq] {
			t.Fatalf("seq %d twice", e.Seq)
		}
		seen[e.Seq] = true
	}
	if len(seen) != n {
		t.Fatalf("%d of %d records came out after the abort", len(seen), n)
	}
}

// TestDeterministicProduceErrorFailsTheJob: a record the broker will never
// take (too large, say) fails every retry of its checkpoint the same way.
// Exactly once used to abort and redo the checkpoint for ever; after a few
// attempts the job must stop with an error that names the record, as at
// least once does at once, committing nothing past the last checkpoint.
func TestDeterministicProduceErrorFailsTheJob(t *testing.T) {
	for _, guarantee := range []string{engine.ExactlyOnce, engine.AtLeastOnce} {
		t.Run(guarantee, func(t *testing.T) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "views", "tagged"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			brokers := c.ListenAddrs()
			b, _ := json.Marshal(event{User: "u", Seq: 1})
			kafkatest.ProduceSync(t, kafkatest.Client(t, brokers), &kgo.Record{Topic: "views", Key: []byte("u"), Value: b})
			var n atomic.Int64
			failProduces(c, kerr.MessageTooLarge.Code, guarantee == engine.ExactlyOnce, func(i int64) bool { n.Store(i); return true })
			job := buildJob("toolarge", "views", "tagged", engine.WithBrokers(brokers...), engine.WithMetricsAddr(""),
				engine.WithStateDir(t.TempDir()), engine.WithCheckpointInterval(50*time.Millisecond), engine.WithGuarantee(guarantee),
				engine.WithLogLevel("error"))
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err = job.Run(ctx)
			if ctx.Err() != nil {
				t.Fatalf("the job still ran after a minute and %d refused produce requests", n.Load())
			}
			if !errors.Is(err, kerr.MessageTooLarge) || !strings.Contains(err.Error(), "tagged") || !strings.Contains(err.Error(), `key "u"`) {
				t.Fatalf("Run returned %v, want MESSAGE_TOO_LARGE naming the output topic and the record's key", err)
			}
			if got := kafkatest.CommittedOffsets(t, brokers, "toolarge", "views")[0]; got > 0 {
				t.Fatalf("committed offset %d past the record whose output failed", got)
			}
		})
	}
}

// TestAbortThatCannotReachTheBrokerIsRetried: a checkpoint fails (a
// produce error) and the abort that follows cannot reach the transaction
// coordinator for a while (a broker restarting: its connections close).
// The replica must retry the abort until Kafka answers, as it waits for
// the broker everywhere else, not stop: a replica stopped by a broker
// restart is a crash for Kubernetes to clean up.
func TestAbortThatCannotReachTheBrokerIsRetried(t *testing.T) {
	const n = 2000
	c, brokers := clusterFailingThirdProduce(t, 1, n, 7)
	// Every abort's EndTxn finds its connection closed, for 3 s.
	var aborts atomic.Int64
	var until atomic.Int64
	c.ControlKey(int16(kmsg.EndTxn), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if kreq.(*kmsg.EndTxnRequest).Commit {
			return nil, nil, false
		}
		if aborts.Add(1) == 1 {
			until.Store(time.Now().Add(3 * time.Second).UnixNano())
		}
		if time.Now().UnixNano() < until.Load() {
			return nil, errors.New("coordinator away"), true
		}
		return nil, nil, false
	})

	job := slowJob("unreachable-abort", "views", "tagged", engine.WithBrokers(brokers...), engine.WithMetricsAddr(""),
		engine.WithStateDir(t.TempDir()), engine.WithCheckpointInterval(100*time.Millisecond), engine.WithLogLevel("error"))
	ctx, cancel := context.WithCancel(context.Background())
	var runErr error
	finished := make(chan struct{})
	go func() { runErr = job.Run(ctx); close(finished) }()
	t.Cleanup(func() { cancel(); <-finished })
	cl := kafkatest.Client(t, brokers, kgo.ConsumeTopics("tagged"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	seen := map[int]int{}
	deadline := time.Now().Add(time.Minute)
	for len(seen) < n {
		select {
		case <-finished:
			t.Fatalf("the job stopped (%v) after %d aborts, with %d of %d records out", runErr, aborts.Load(), len(seen), n)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d records out after a minute", len(seen), n)
		}
		pctx, pcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) {
			var e enriched
			if err := json.Unmarshal(r.Value, &e); err != nil {
				t.Fatal(err)
			}
			seen[e.Seq]++
		})
		pcancel()
	}
	for seq, k := range seen {
		if k != 1 {
			t.Fatalf("seq %d output %d times", seq, k)
		}
	}
	if aborts.Load() < 2 {
		t.Fatalf("%d aborts reached the cluster: the test did not make one fail", aborts.Load())
	}
}

// TestRebalanceDuringAnAbortLeavesOneRunnerPerTask: an abort stops every
// task, waits for the broker to take the abort, and starts them again. A
// rebalance that lands while it waits (here a second replica joining) must
// not leave a task with two runners, one started by the assignment and one
// by the abort: they would process and write the task's state at once
// (the torture test found it, seed 525061013). The abort (EndTxn, and the
// epoch bump franz-go falls back to) is held until the group has gone on
// without the waiting replica; then every record must come out once, and
// no task may ever have had two runners on one replica.
//
// It does not fail with the fix of c6212bb taken out: franz-go runs the
// rebalance callbacks of a client blocked in its poll loop only once the
// loop allows it, after the abort. The torture run's assignment got in
// through the shutdown's last checkpoint, after the poll loop had ended
// (TestRebalanceDuringAFailedShutdownCheckpointStartsNoRunner, which does
// fail without that fix); this test keeps the other path, an abort in the
// poll loop that outlasts a rebalance, under the exactly-once and runner
// checks.
func TestRebalanceDuringAnAbortLeavesOneRunnerPerTask(t *testing.T) {
	runners := countRunners(t)

	const n = 4000
	c, brokers := clusterFailingThirdProduce(t, 4, n, 11)
	// The first abort's EndTxn finds the coordinator away until released.
	aborting, releaseAborts := holdAborts(c, func() bool { return true })

	ctx, cancel := context.WithCancel(context.Background())
	start := func(replica string) {
		job := slowJob("rebalance-abort", "views", "tagged", engine.WithBrokers(brokers...), engine.WithMetricsAddr(""),
			engine.WithStateDir(t.TempDir()), engine.WithCheckpointInterval(100*time.Millisecond), engine.WithLogLevel("error"),
			engine.WithReplicaID(replica), engine.WithKafkaOpts(kgo.RebalanceTimeout(3*time.Second)))
		finished := make(chan struct{})
		go func() {
			if err := job.Run(ctx); err != nil {
				t.Errorf("replica %s: %v", replica, err)
			}
			close(finished)
		}()
		t.Cleanup(func() { cancel(); <-finished })
	}
	start("a")
	select {
	case <-aborting:
	case <-time.After(30 * time.Second):
		t.Fatal("no abort within 30 s")
	}
	start("b")
	// Replica a cannot take part in the rebalance while its abort waits
	// (its callbacks wait for its poll loop): the group goes on without
	// it, and b gets partitions. Once the abort ends, a rejoins.
	waitForMemberWithPartitions(t, brokers, "rebalance-abort", "b")
	releaseAborts()

	checkEachSeqOnce(t, brokers, "tagged", n)
	runners.check(t)
}

// clusterFailingThirdProduce starts an in-process broker with topics views
// and tagged of the given partitions, writes n events to views (users
// cycling over the given count), and makes the third transactional produce
// fail, so that the job's checkpoint fails and aborts.
func clusterFailingThirdProduce(t *testing.T, partitions int32, n, users int) (*kfake.Cluster, []string) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, "views", "tagged"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	brokers := c.ListenAddrs()
	var recs []*kgo.Record
	for i := range n {
		b, _ := json.Marshal(event{User: "u" + strconv.Itoa(i%users), Seq: i})
		recs = append(recs, &kgo.Record{Topic: "views", Value: b})
	}
	kafkatest.ProduceSync(t, kafkatest.Client(t, brokers), recs...)
	failProduces(c, kerr.InvalidRecord.Code, true, func(n int64) bool { return n == 3 })
	return c, brokers
}

// TestRebalanceDuringAFailedShutdownCheckpointStartsNoRunner: a replica
// is stopped (SIGTERM) and its last checkpoint fails. Its poll loop has
// ended and allowed rebalances, so a rebalance can run its callbacks
// while the failed checkpoint's abort waits for the coordinator, which is
// how the torture test (seed 525061013) got two runners on one task: the
// abort restarted every task it had stopped, over the runners the
// assignment had started meanwhile. A stopping replica starts no runner,
// neither from an abort nor from an assignment, and the output stays
// exact.
func TestRebalanceDuringAFailedShutdownCheckpointStartsNoRunner(t *testing.T) {
	runners := countRunners(t)

	const n = 3000
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, "views", "tagged"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	brokers := c.ListenAddrs()
	var recs []*kgo.Record
	for i := range n {
		b, _ := json.Marshal(event{User: "u" + strconv.Itoa(i%11), Seq: i})
		recs = append(recs, &kgo.Record{Topic: "views", Value: b})
	}
	kafkatest.ProduceSync(t, kafkatest.Client(t, brokers), recs...)
	// Once failing is set, every transactional produce fails, so replica
	// a's last checkpoint does, and its aborts find the coordinator away
	// until released.
	var failing atomic.Bool
	failProduces(c, kerr.InvalidRecord.Code, true, func(int64) bool { return failing.Load() })
	aborting, releaseAborts := holdAborts(c, failing.Load)

	start := func(replica string) (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		job := slowJob("shutdown-abort", "views", "tagged", engine.WithBrokers(brokers...), engine.WithMetricsAddr(""),
			engine.WithStateDir(t.TempDir()), engine.WithCheckpointInterval(100*time.Millisecond), engine.WithLogLevel("error"),
			engine.WithReplicaID(replica), engine.WithKafkaOpts(kgo.RebalanceTimeout(3*time.Second)))
		finished := make(chan struct{})
		go func() {
			if err := job.Run(ctx); err != nil && replica != "a" {
				t.Errorf("replica %s: %v", replica, err)
			}
			close(finished)
		}()
		stop = func() { cancel(); <-finished }
		t.Cleanup(stop)
		return func() { cancel() }
	}
	stopA := start("a")
	kafkatest.Eventually(t, 30*time.Second, "replica a committing output", func() bool {
		return len(kafkatest.ReadAllSettled(t, brokers, "tagged", 1, 5*time.Second, 0)) > 0
	})
	runners.stopping("a")
	failing.Store(true)
	stopA()
	select {
	case <-aborting:
	case <-time.After(30 * time.Second):
		t.Fatal("replica a's last checkpoint did not fail and abort within 30 s")
	}
	// Replica b joins while a's abort waits: the group rebalances, and
	// a's callbacks may run (its poll loop has ended).
	start("b")
	waitForMemberWithPartitions(t, brokers, "shutdown-abort", "b")
	failing.Store(false)
	releaseAborts()

	checkEachSeqOnce(t, brokers, "tagged", n)
	runners.check(t)
}

// TestRebalanceWhileAStoppingRunnerFinishesStartsNoSecond: a replica is
// told to stop while one of its tasks is inside a long record. Its poll
// loop has ended and allowed rebalances; the shutdown has taken the tasks
// off the replica and waits for that runner to finish the record. A
// replica joining meanwhile makes the group rebalance, and the stopping
// replica's assignment must not start runners of its own: not beside the
// one still finishing (two runners on one task's state), nor after it
// (runners a stopped replica would never stop). Replica b then does all
// the work, once.
func TestRebalanceWhileAStoppingRunnerFinishesStartsNoSecond(t *testing.T) {
	runners := countRunners(t)

	const n, stuckSeq = 2000, 500
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, "views", "tagged"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	brokers := c.ListenAddrs()
	// Keyed by user, so that record stuckSeq is on partition 0, which the
	// range balancer gives replica a (sorted first) again at the rebalance.
	part := kgo.StickyKeyPartitioner(nil).ForTopic("views")
	var recs []*kgo.Record
	for i := range n {
		b, _ := json.Marshal(event{User: "u" + strconv.Itoa(i%11), Seq: i})
		r := &kgo.Record{Topic: "views", Key: []byte("u" + strconv.Itoa(i%11)), Value: b}
		if i == stuckSeq {
			for u := 0; ; u++ {
				r.Key = []byte("stuck" + strconv.Itoa(u))
				if part.Partition(r, 4) == 0 {
					break
				}
			}
		}
		recs = append(recs, r)
	}
	kafkatest.ProduceSync(t, kafkatest.Client(t, brokers), recs...)

	// Replica a's task that gets record stuckSeq (task 0_0) stays inside
	// it until gate opens.
	stuck, gate := make(chan struct{}), make(chan struct{})
	var stuckOnce sync.Once
	start := func(replica string, block bool) (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		job := engine.NewJob("stopping-runner", engine.WithBrokers(brokers...), engine.WithMetricsAddr(""),
			engine.WithStateDir(t.TempDir()), engine.WithCheckpointInterval(100*time.Millisecond), engine.WithLogLevel("error"),
			engine.WithReplicaID(replica), engine.WithShutdownTimeout(2*time.Second),
			engine.WithKafkaOpts(kgo.RebalanceTimeout(3*time.Second)))
		views := connectors.KafkaSource(job, "views", codec.JSON[event]())
		tagged := operators.Map(views, func(e event) (enriched, error) {
			if block && e.Seq == stuckSeq {
				stuckOnce.Do(func() { close(stuck) })
				<-gate
			}
			return enriched{User: e.User, Seq: e.Seq, Tag: "seen"}, nil
		})
		connectors.KafkaSink(tagged, "tagged", codec.JSON[enriched]())
		finished := make(chan struct{})
		go func() {
			if err := job.Run(ctx); err != nil && replica != "a" {
				t.Errorf("replica %s: %v", replica, err)
			}
			close(finished)
		}()
		t.Cleanup(func() { cancel(); <-finished })
		return cancel
	}
	stopA := start("a", true)
	select {
	case <-stuck:
	case <-time.After(30 * time.Second):
		t.Fatal("replica a did not reach the stuck record within 30 s")
	}
	runners.stopping("a")
	stopA()
	// Replica b joins while a's shutdown waits for the stuck runner.
	start("b", false)
	waitForMemberWithPartitions(t, brokers, "stopping-runner", "b")
	close(gate)

	checkEachSeqOnce(t, brokers, "tagged", n)
	runners.check(t)
}

// runnerCounter counts each task's runners per replica through the
// engine's test hook.
type runnerCounter struct {
	mu      sync.Mutex
	n       map[string]int
	twice   []string        // tasks that had two runners at once on a replica
	stopped map[string]bool // replicas whose shutdown began (stopping)
	late    []string        // runners such a replica started after
}

func countRunners(t *testing.T) *runnerCounter {
	c := &runnerCounter{n: map[string]int{}, stopped: map[string]bool{}}
	t.Cleanup(engine.SetRunnerHook(func(replica string, id engine.TaskID, delta int) {
		c.mu.Lock()
		defer c.mu.Unlock()
		k := replica + "/" + id.String()
		c.n[k] += delta
		if c.n[k] > 1 {
			c.twice = append(c.twice, k)
		}
		if delta > 0 && c.stopped[replica] {
			c.late = append(c.late, k)
		}
	}))
	return c
}

// stopping records that replica is being stopped: it must start no
// runner from here on.
func (c *runnerCounter) stopping(replica string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped[replica] = true
}

func (c *runnerCounter) check(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.twice) > 0 {
		t.Errorf("tasks with two runners at once: %v", c.twice)
	}
	if len(c.late) > 0 {
		t.Errorf("runners started on a replica after its shutdown began: %v", c.late)
	}
}

// waitForMemberWithPartitions waits until the group is stable with the
// static member instance holding partitions.
func waitForMemberWithPartitions(t *testing.T, brokers []string, group, instance string) {
	t.Helper()
	adm := kadm.NewClient(kafkatest.Client(t, brokers))
	kafkatest.Eventually(t, 60*time.Second, "replica "+instance+" in the group, with partitions", func() bool {
		gs, err := adm.DescribeGroups(context.Background(), group)
		if err != nil {
			return false
		}
		g := gs[group]
		for _, m := range g.Members {
			if a, ok := m.Assigned.AsConsumer(); ok && len(a.Topics) > 0 && m.InstanceID != nil && *m.InstanceID == instance {
				return g.State == "Stable"
			}
		}
		return false
	})
}

// checkEachSeqOnce reads topic's committed records and checks that every
// event of the n in the input came out once.
func checkEachSeqOnce(t *testing.T, brokers []string, topic string, n int) {
	t.Helper()
	seen := map[int]int{}
	for _, r := range kafkatest.ReadAllSettled(t, brokers, topic, n, time.Minute, time.Second) {
		var e enriched
		if err := json.Unmarshal(r.Value, &e); err != nil {
			t.Fatal(err)
		}
		seen[e.Seq]++
	}
	for seq := range n {
		if seen[seq] != 1 {
			t.Errorf("seq %d output %d times", seq, seen[seq])
		}
	}
}

// holdAborts makes the cluster answer the job's aborts (EndTxn without
// commit) while active() holds with "coordinator away" until release is
// called; aborting closes at the first. franz-go ends an abort it could
// not send by bumping the epoch (InitProducerId): from then on that finds
// the coordinator away too, until release.
func holdAborts(c *kfake.Cluster, active func() bool) (aborting <-chan struct{}, release func()) {
	started, released := make(chan struct{}), make(chan struct{})
	var once sync.Once
	away := func() (kmsg.Response, error, bool) {
		select {
		case <-released:
			return nil, nil, false
		default:
			return nil, errors.New("coordinator away"), true
		}
	}
	c.ControlKey(int16(kmsg.EndTxn), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if kreq.(*kmsg.EndTxnRequest).Commit || !active() {
			return nil, nil, false
		}
		once.Do(func() { close(started) })
		return away()
	})
	c.ControlKey(int16(kmsg.InitProducerID), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		select {
		case <-started:
			return away()
		default:
			return nil, nil, false
		}
	})
	var releaseOnce sync.Once
	return started, func() { releaseOnce.Do(func() { close(released) }) }
}
