package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/weirstream/weir/checkpoint"
	"github.com/weirstream/weir/observe"
	"github.com/weirstream/weir/state"
)

// runtime runs a job against Kafka in one replica: it joins the consumer
// group, runs a task per assigned partition number, feeds them fetched
// batches and checkpoints their progress.
//
// Lock order: cpMu, then mu. cpMu serializes checkpoints with rebalance
// callbacks and shutdown, so offsets are only committed for partitions the
// replica still owns and never by two checkpoints at once.
type runtime struct {
	job *Job
	cfg Config
	log *zap.Logger
	obs observe.Observer
	cl  *kgo.Client
	// store is the replica's state store, nil for a job without state.
	store *state.Store

	// runCtx outlives the caller's context until shutdown has committed:
	// produces in flight at shutdown must still be delivered.
	runCtx    context.Context
	cancelRun context.CancelFunc

	cpMu sync.Mutex
	mu   struct {
		sync.Mutex
		tasks     map[TaskID]*taskRunner
		committed map[string]map[int32]int64 // last committed offsets
		// revoked holds the tasks revoked at the current rebalance, whose
		// state waits for the new assignment.
		revoked map[TaskID]bool
	}

	fatalOnce sync.Once
	fatalErr  error
	fatal     chan struct{}
	stopPoll  context.CancelFunc // set before the poll loop starts

	ready      atomic.Bool
	notReadyMu sync.Mutex
	notReady   string // why not ready, for /readyz
	cpID       atomic.Int64
}

func newRuntime(j *Job, log *zap.Logger, obs observe.Observer) *runtime {
	rt := &runtime{job: j, cfg: j.cfg, log: log, obs: obs, fatal: make(chan struct{})}
	rt.mu.tasks = map[TaskID]*taskRunner{}
	rt.mu.committed = map[string]map[int32]int64{}
	rt.mu.revoked = map[TaskID]bool{}
	rt.setNotReady("starting")
	return rt
}

func (rt *runtime) setNotReady(why string) {
	rt.notReadyMu.Lock()
	rt.notReady = why
	rt.notReadyMu.Unlock()
	rt.ready.Store(false)
	rt.obs.Ready(false)
}

func (rt *runtime) setReady() {
	rt.notReadyMu.Lock()
	rt.notReady = ""
	rt.notReadyMu.Unlock()
	rt.ready.Store(true)
	rt.obs.Ready(true)
}

// readiness reports whether the replica is ready, and why not.
func (rt *runtime) readiness() (bool, string) {
	rt.notReadyMu.Lock()
	defer rt.notReadyMu.Unlock()
	return rt.ready.Load(), rt.notReady
}

// fail records the first fatal error and stops the poll loop.
func (rt *runtime) fail(err error) {
	rt.fatalOnce.Do(func() {
		rt.fatalErr = err
		close(rt.fatal)
		if rt.stopPoll != nil {
			rt.stopPoll()
		}
	})
}

func (rt *runtime) run(ctx context.Context) error {
	rt.runCtx, rt.cancelRun = context.WithCancel(context.WithoutCancel(ctx))
	defer rt.cancelRun()

	rt.job.resolveInternalTopics(rt.cfg.Group)
	partitions, err := rt.checkTopics(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while waiting for the broker
		}
		return err
	}
	rt.job.partitions = int32(partitions)
	if rt.job.stateful {
		if rt.store, err = state.Open(rt.cfg.StateDir); err != nil {
			return fmt.Errorf("opening the state store in %s: %w", rt.cfg.StateDir, err)
		}
		defer func() {
			if err := rt.store.Close(); err != nil {
				rt.log.Warn("closing the state store", zap.Error(err))
			}
		}()
	}
	rt.log.Info("job starting",
		zap.Strings("sources", rt.job.sourceTopics()), zap.Int("partitions", partitions),
		zap.String("group", rt.cfg.Group), zap.Strings("brokers", rt.cfg.Brokers),
		zap.Duration("checkpoint_interval", rt.cfg.CheckpointInterval))

	// A failing task stops the poll at once, not when records next arrive.
	pollCtx, stopPoll := context.WithCancel(ctx)
	defer stopPoll()
	rt.stopPoll = stopPoll
	rt.cl, err = kgo.NewClient(rt.clientOpts()...)
	if err != nil {
		return fmt.Errorf("%w: kafka client: %w", ErrConfig, err)
	}
	rt.setNotReady("joining consumer group")

	cpCtx, stopCheckpoints := context.WithCancel(ctx)
	var cpDone sync.WaitGroup
	cpDone.Go(func() { rt.checkpointLoop(cpCtx) })

	rt.pollLoop(pollCtx)

	stopCheckpoints()
	cpDone.Wait()
	rt.setNotReady("shutting down")
	rt.shutdown()
	select {
	case <-rt.fatal:
		return rt.fatalErr
	default:
		return nil
	}
}

// checkTopics waits for the broker, retrying with backoff while it is
// unreachable, then checks that every topic exists and that the source
// topics are co-partitioned. It returns the number of partitions.
func (rt *runtime) checkTopics(ctx context.Context) (int, error) {
	admin, err := kgo.NewClient(append(slices.Clone(rt.cfg.kgoOpts), kgo.SeedBrokers(rt.cfg.Brokers...), kgo.WithLogger(kgoLogger{rt.log}))...)
	if err != nil {
		return 0, fmt.Errorf("%w: kafka client: %w", ErrConfig, err)
	}
	defer admin.Close()
	adm := kadm.NewClient(admin)
	topics := append(rt.job.userSourceTopics(), slices.Sorted(maps.Keys(rt.job.sinks))...)
	rt.setNotReady("waiting for the Kafka cluster")
	details, err := backoff.Retry(ctx, func() (kadm.TopicDetails, error) {
		reqCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		d, err := adm.ListTopics(reqCtx, topics...)
		if err != nil {
			rt.log.Warn("kafka not reachable yet, retrying", zap.Error(err))
		}
		return d, err
	}, backoff.WithBackOff(backoff.NewExponentialBackOff()), backoff.WithMaxElapsedTime(0))
	if err != nil {
		return 0, err
	}
	var missing []string
	counts := map[string]int{}
	for _, t := range topics {
		d, ok := details[t]
		if !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
			missing = append(missing, t)
			continue
		}
		if d.Err != nil {
			return 0, fmt.Errorf("describing topic %q: %w", t, d.Err)
		}
		counts[t] = len(d.Partitions)
	}
	if len(missing) > 0 {
		return 0, fmt.Errorf("%w: topics do not exist: %v (create them first; Weir does not rely on auto-creation)", ErrTopology, missing)
	}
	n := -1
	for _, t := range rt.job.stageTopics(0) {
		if n == -1 {
			n = counts[t]
		} else if counts[t] != n {
			return 0, fmt.Errorf("%w: topics read together are not co-partitioned: %v partitions per topic", ErrTopology, counts)
		}
	}
	// Topics read beside a repartition topic (a join's table) must be
	// partitioned like it: every stage has the first stage's count.
	for stage := 1; stage < rt.job.stages; stage++ {
		for _, t := range rt.job.stageTopics(stage) {
			if c, ok := counts[t]; ok && c != n {
				return 0, fmt.Errorf("%w: topic %s has %d partitions but is joined in a stage with %d: it is not co-partitioned", ErrTopology, t, c, n)
			}
		}
	}
	if err := rt.ensureInternalTopics(ctx, adm, n); err != nil {
		return 0, err
	}
	return n, nil
}

// internalTopicConfig is how Weir creates its internal topics. Records
// keep their event time as their Kafka timestamp, so replaying last
// year's data writes last year's timestamps: with time-based retention
// the broker would delete them before the next stage reads them (Kafka
// rolls and deletes even the active segment once its newest timestamp is
// past retention). Kafka Streams creates its repartition topics with
// infinite retention for the same reason.
var internalTopicConfig = map[string]*string{
	"retention.ms":   kadm.StringPtr("-1"),
	"cleanup.policy": kadm.StringPtr("delete"),
}

// ensureInternalTopics creates the job's repartition topics, each with the
// partition count of the stage writing it, or checks the count of those
// that exist: a mismatch would send a key's records to two tasks.
func (rt *runtime) ensureInternalTopics(ctx context.Context, adm *kadm.Client, firstStage int) error {
	if len(rt.job.internal) == 0 {
		return nil
	}
	stagePartitions := map[int]int{0: firstStage}
	for _, it := range rt.job.internal { // internal topics are declared upstream first
		want, ok := stagePartitions[it.from]
		if !ok {
			return fmt.Errorf("%w: internal topic %s is written by stage %d, which reads nothing", ErrTopology, it.name, it.from)
		}
		resp, err := adm.CreateTopic(ctx, int32(want), -1, internalTopicConfig, it.name)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("creating internal topic %s: %w", it.name, err)
		}
		if err != nil { // it exists: check it
			// Another replica may have just created it; until the metadata
			// has caught up it shows no partitions, which is not a mismatch.
			got, err := backoff.Retry(ctx, func() (int, error) {
				d, err := adm.ListTopics(ctx, it.name)
				if err != nil {
					return 0, err
				}
				n := len(d[it.name].Partitions)
				if n == 0 {
					return 0, fmt.Errorf("internal topic %s shows no partitions yet", it.name)
				}
				return n, nil
			}, backoff.WithBackOff(backoff.NewExponentialBackOff()), backoff.WithMaxElapsedTime(time.Minute))
			if err != nil {
				return fmt.Errorf("describing internal topic %s: %w", it.name, err)
			}
			if got != want {
				return fmt.Errorf("%w: internal topic %s has %d partitions, stage %d has %d", ErrTopology, it.name, got, it.from, want)
			}
		} else {
			rt.log.Info("created internal topic", zap.String("topic", it.name), zap.Int("partitions", want))
		}
		for _, s := range rt.job.sources {
			if s.internal == it {
				stagePartitions[s.stage] = want
			}
		}
	}
	return nil
}

func (rt *runtime) clientOpts() []kgo.Opt {
	start := kgo.NewOffset().AtStart()
	if rt.cfg.StartOffset == "latest" {
		start = kgo.NewOffset().AtEnd()
	}
	return append(slices.Clone(rt.cfg.kgoOpts),
		kgo.SeedBrokers(rt.cfg.Brokers...),
		kgo.WithLogger(kgoLogger{rt.log}),
		kgo.ConsumerGroup(rt.cfg.Group),
		kgo.SessionTimeout(rt.cfg.SessionTimeout),
		kgo.HeartbeatInterval(min(3*time.Second, rt.cfg.SessionTimeout/3)),
		kgo.ConsumeTopics(rt.job.sourceTopics()...),
		kgo.ConsumeResetOffset(start),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// A partition resumed after backpressure joins the next fetch, which
		// waits for the one in flight; with franz-go's 5s default a
		// caught-up replica stalled seconds on every resume (measured in
		// BenchmarkStatelessE2E). Java's default is 500ms.
		kgo.FetchMaxWait(200*time.Millisecond),
		// The range balancer gives a member the same partition numbers of
		// every co-partitioned topic, which is what makes a task.
		kgo.Balancers(kgo.RangeBalancer()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(rt.onAssigned),
		kgo.OnPartitionsRevoked(rt.onRevoked),
		kgo.OnPartitionsLost(rt.onLost),
		// Java's default partitioner for keyed records (murmur2), so Weir's
		// outputs co-partition with any Java producer's.
		kgo.RecordPartitioner(Partitioner()),
	)
}

// pollLoop fetches until ctx is done or a task fails, handing each
// partition's records to its task's inbox.
func (rt *runtime) pollLoop(ctx context.Context) {
	for {
		fetches := rt.cl.PollRecords(ctx, 10000)
		if fetches.IsClientClosed() {
			return
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return
			}
			rt.log.Warn("fetch error", zap.String("topic", topic), zap.Int32("partition", p), zap.Error(err))
		})
		rt.mu.Lock()
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 {
				return
			}
			stage, _ := rt.job.stageOf(p.Topic)
			tr, ok := rt.mu.tasks[TaskID{Stage: stage, Partition: p.Partition}]
			if !ok {
				return // revoked between fetch and now: the new owner reads it
			}
			tr.in.push(batch{topic: p.Topic, records: p.Records, highWatermark: p.HighWatermark})
		})
		rt.mu.Unlock()
		rt.cl.AllowRebalance()
		select {
		case <-ctx.Done():
			return
		case <-rt.fatal:
			return
		default:
		}
	}
}

func (rt *runtime) onAssigned(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	ids := rt.taskIDs(assigned)
	// Tasks revoked at this rebalance and not given back moved to another
	// replica: their key ranges go.
	for id := range rt.mu.revoked {
		if !slices.Contains(ids, id) {
			rt.dropTaskState(id)
		}
	}
	clear(rt.mu.revoked)
	var committed kadm.OffsetResponses
	if rt.store != nil {
		var err error
		if committed, err = kadm.NewClient(cl).FetchOffsets(ctx, rt.cfg.Group); err != nil {
			rt.fail(fmt.Errorf("fetching committed offsets to check local state: %w", err))
			return
		}
	}
	for _, id := range ids {
		if _, ok := rt.mu.tasks[id]; ok {
			continue
		}
		if rt.store != nil {
			if err := rt.checkLocalState(id, committed); err != nil {
				rt.fail(err)
				return
			}
		}
		tr, err := rt.startTaskLocked(cl, id)
		if err != nil {
			rt.fail(err)
			return
		}
		rt.mu.tasks[id] = tr
	}
	rt.obs.TasksAssigned(len(rt.mu.tasks))
	rt.log.Info("partitions assigned", zap.Stringers("tasks", ids), zap.Int("running", len(rt.mu.tasks)))
	rt.setReady()
}

// checkLocalState keeps a task's local state only if it is the state of
// exactly the offsets the group committed: anything else (another replica
// ran the task since, or this one crashed between the offset commit and
// the state commit) is dropped, and the task starts from empty state.
// Restoring from a changelog topic instead arrives with exactly-once
// checkpoints.
func (rt *runtime) checkLocalState(id TaskID, committed kadm.OffsetResponses) error {
	ts := rt.store.Task(state.TaskID{Stage: uint16(id.Stage), Partition: id.Partition})
	cp, offs, ok, err := ts.Checkpoint()
	if err != nil {
		return fmt.Errorf("reading the local checkpoint of task %s: %w", id, err)
	}
	if !ok {
		return nil
	}
	for _, topic := range rt.job.stageTopics(id.Stage) {
		local, hasLocal := offs[inputOffsetKey(topic)]
		c, hasCommitted := committed.Lookup(topic, id.Partition)
		if hasCommitted && c.Err == nil && hasLocal && c.At == local {
			continue
		}
		rt.log.Warn("local state does not match the committed offsets; starting the task from empty state",
			zap.Stringer("task", id), zap.Int64("local_checkpoint", cp), zap.String("topic", topic),
			zap.Int64("local_offset", local), zap.Int64("committed_offset", c.At))
		return ts.Drop()
	}
	rt.log.Info("task resumes from its local state", zap.Stringer("task", id), zap.Int64("checkpoint", cp))
	return nil
}

func (rt *runtime) startTaskLocked(cl *kgo.Client, id TaskID) (*taskRunner, error) {
	t, err := newTask(taskEnv{ctx: rt.runCtx, log: rt.log, obs: rt.obs, producer: cl, clock: systemClock{}, store: rt.store}, id, rt.job)
	if err != nil {
		return nil, err
	}
	tps := map[string][]int32{}
	for _, topic := range rt.job.stageTopics(id.Stage) {
		tps[topic] = []int32{id.Partition}
	}
	tr := &taskRunner{
		t: t,
		in: newInbox(rt.cfg.TaskQueueRecords,
			func() { cl.PauseFetchPartitions(tps) },
			func() { cl.ResumeFetchPartitions(tps) }),
		ctrl:  make(chan taskCmd),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
		fatal: rt.fail,
	}
	go tr.run()
	return tr, nil
}

// onRevoked checkpoints the revoked tasks, so the next owner starts exactly
// where they stopped, then drops them.
func (rt *runtime) onRevoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	rt.cpMu.Lock()
	defer rt.cpMu.Unlock()
	trs := rt.stopTasks(rt.taskIDs(revoked))
	if len(trs) == 0 {
		return
	}
	snaps := make([]snapshot, 0, len(trs))
	for _, tr := range trs {
		snaps = append(snaps, tr.t.barrier())
	}
	if id, err := rt.commit(ctx, snaps, "revoke"); err != nil {
		rt.log.Warn("checkpoint at revocation failed; the next owner reprocesses from the previous one", zap.Error(err))
	} else {
		rt.commitStopped(id, trs, snaps)
	}
	// Their state stays until the new assignment is known: the range
	// balancer revokes every task at each rebalance, and most come back.
	rt.mu.Lock()
	for _, tr := range trs {
		rt.mu.revoked[tr.t.id] = true
	}
	rt.mu.Unlock()
	cl.ResumeFetchPartitions(revoked)
	rt.forgetPartitions(revoked)
	rt.log.Info("partitions revoked", zap.Stringers("tasks", rt.taskIDs(revoked)))
}

// onLost drops tasks whose partitions were taken away without a chance to
// commit (session expired): committing now could overwrite the new owner's
// progress.
func (rt *runtime) onLost(_ context.Context, cl *kgo.Client, lost map[string][]int32) {
	rt.cpMu.Lock()
	defer rt.cpMu.Unlock()
	rt.dropState(rt.stopTasks(rt.taskIDs(lost)))
	cl.ResumeFetchPartitions(lost)
	rt.forgetPartitions(lost)
	rt.log.Warn("partitions lost; their uncommitted work will be redone by the new owner", zap.Stringers("tasks", rt.taskIDs(lost)))
}

func (rt *runtime) forgetPartitions(tps map[string][]int32) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for topic, ps := range tps {
		for _, p := range ps {
			delete(rt.mu.committed[topic], p)
			rt.obs.PartitionRevoked(topic, p)
		}
	}
}

// stopTasks stops and removes the given tasks and waits for their
// goroutines, after which their state may be read directly.
func (rt *runtime) stopTasks(ps []TaskID) []*taskRunner {
	rt.mu.Lock()
	var trs []*taskRunner
	for _, p := range ps {
		if tr, ok := rt.mu.tasks[p]; ok {
			trs = append(trs, tr)
			delete(rt.mu.tasks, p)
			close(tr.stop)
		}
	}
	rt.obs.TasksAssigned(len(rt.mu.tasks))
	rt.mu.Unlock()
	for _, tr := range trs {
		<-tr.done
		rt.obs.TaskStopped(tr.t.id.String())
	}
	return trs
}

func (rt *runtime) checkpointLoop(ctx context.Context) {
	tick := time.NewTicker(rt.cfg.CheckpointInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			rt.checkpoint(ctx)
		}
	}
}

// checkpoint takes a barrier in every running task, waits until the
// outputs before each barrier are acknowledged, and commits the offsets.
func (rt *runtime) checkpoint(ctx context.Context) {
	rt.cpMu.Lock()
	defer rt.cpMu.Unlock()
	rt.mu.Lock()
	trs := slices.Collect(maps.Values(rt.mu.tasks))
	rt.mu.Unlock()
	if len(trs) == 0 {
		return
	}
	snaps := make([]snapshot, 0, len(trs))
	for _, tr := range trs {
		var snap snapshot
		if !tr.do(func(t *Task) { snap = t.barrier() }, ctx.Done()) {
			return
		}
		snaps = append(snaps, snap)
	}
	id, err := rt.commit(ctx, snaps, "interval")
	if err != nil {
		if ctx.Err() == nil {
			rt.log.Warn("checkpoint failed; retrying at the next interval", zap.Error(err))
		}
		return
	}
	// Kafka has the offsets: now, and only now, the state may reach Pebble.
	for i, tr := range trs {
		if !snaps[i].stateful {
			continue
		}
		var err error
		offs := snaps[i].offsets
		if !tr.do(func(t *Task) { err = t.commitState(id, offs) }, ctx.Done()) {
			return
		}
		if err != nil {
			rt.fail(err)
			return
		}
	}
}

// dropState deletes the local state of tasks the replica no longer owns:
// whoever owns them now changes their state, so this copy can only go
// stale. (On shutdown tasks keep theirs, for a restart on this replica.)
func (rt *runtime) dropState(trs []*taskRunner) {
	for _, tr := range trs {
		rt.dropTaskState(tr.t.id)
	}
}

func (rt *runtime) dropTaskState(id TaskID) {
	if rt.store == nil {
		return
	}
	if err := rt.store.Task(state.TaskID{Stage: uint16(id.Stage), Partition: id.Partition}).Drop(); err != nil {
		rt.log.Warn("dropping the local state of a task moved elsewhere", zap.Stringer("task", id), zap.Error(err))
	}
}

// commitStopped commits the state of stopped tasks after checkpoint id.
func (rt *runtime) commitStopped(id int64, trs []*taskRunner, snaps []snapshot) {
	for i, tr := range trs {
		if snaps[i].stateful {
			if err := tr.t.commitState(id, snaps[i].offsets); err != nil {
				rt.fail(err)
			}
		}
	}
}

// commit waits for the snapshots' outputs and commits their offsets.
func (rt *runtime) commit(ctx context.Context, snaps []snapshot, why string) (id int64, err error) {
	id = rt.cpID.Add(1)
	start := time.Now()
	defer func() {
		rt.obs.Checkpoint(time.Since(start), err)
		if err == nil {
			rt.log.Debug("checkpoint committed", zap.Int64("checkpoint", id), zap.String("trigger", why), zap.Duration("took", time.Since(start)))
		}
	}()
	for _, s := range snaps {
		if err := s.epoch.Wait(ctx.Done()); err != nil {
			if errors.Is(err, checkpoint.ErrAborted) {
				return id, err
			}
			// A produce failed after the client's own retries: the records
			// before this barrier are not all durable, so their offsets
			// must never be committed.
			rt.fail(fmt.Errorf("producing outputs of task %s: %w", s.task, err))
			return id, err
		}
	}
	offsets := map[string]map[int32]kgo.EpochOffset{}
	rt.mu.Lock()
	for _, s := range snaps {
		for topic, eo := range s.offsets {
			if c, ok := rt.mu.committed[topic][s.task.Partition]; ok && c == eo.Offset {
				continue
			}
			if offsets[topic] == nil {
				offsets[topic] = map[int32]kgo.EpochOffset{}
			}
			offsets[topic][s.task.Partition] = eo
		}
	}
	rt.mu.Unlock()
	if len(offsets) == 0 {
		return id, nil
	}
	var commitErr error
	rt.cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			commitErr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					commitErr = errors.Join(commitErr, fmt.Errorf("%s/%d: %w", t.Topic, p.Partition, err))
				}
			}
		}
	})
	if commitErr != nil {
		return id, fmt.Errorf("committing offsets: %w", commitErr)
	}
	rt.mu.Lock()
	for topic, ps := range offsets {
		if rt.mu.committed[topic] == nil {
			rt.mu.committed[topic] = map[int32]int64{}
		}
		for p, eo := range ps {
			rt.mu.committed[topic][p] = eo.Offset
		}
	}
	rt.mu.Unlock()
	return id, nil
}

// shutdown stops every task, commits what they processed once it is
// acknowledged, and leaves the group.
func (rt *runtime) shutdown() {
	rt.cpMu.Lock()
	rt.mu.Lock()
	ps := slices.Collect(maps.Keys(rt.mu.tasks))
	rt.mu.Unlock()
	trs := rt.stopTasks(ps)
	snaps := make([]snapshot, 0, len(trs))
	for _, tr := range trs {
		snaps = append(snaps, tr.t.barrier())
	}
	ctx, cancel := context.WithTimeout(context.Background(), rt.cfg.ShutdownTimeout)
	if id, err := rt.commit(ctx, snaps, "shutdown"); err != nil {
		rt.log.Warn("final checkpoint failed; a restart reprocesses from the previous one", zap.Error(err))
	} else {
		rt.commitStopped(id, trs, snaps)
	}
	cancel()
	rt.cpMu.Unlock()
	rt.cancelRun()
	rt.cl.Close()
	rt.log.Info("job stopped", zap.NamedError("cause", rt.fatalErrOrNil()))
}

func (rt *runtime) fatalErrOrNil() error {
	select {
	case <-rt.fatal:
		return rt.fatalErr
	default:
		return nil
	}
}

// taskIDs returns the distinct tasks owning the partitions in tps, sorted.
func (rt *runtime) taskIDs(tps map[string][]int32) []TaskID {
	var ids []TaskID
	for topic, ps := range tps {
		stage, ok := rt.job.stageOf(topic)
		if !ok {
			continue
		}
		for _, p := range ps {
			ids = append(ids, TaskID{Stage: stage, Partition: p})
		}
	}
	slices.SortFunc(ids, func(a, b TaskID) int {
		if a.Stage != b.Stage {
			return a.Stage - b.Stage
		}
		return int(a.Partition - b.Partition)
	})
	return slices.Compact(ids)
}

// kgoLogger routes franz-go's logs into zap.
type kgoLogger struct{ l *zap.Logger }

func (k kgoLogger) Level() kgo.LogLevel {
	switch {
	case k.l.Core().Enabled(zap.DebugLevel):
		return kgo.LogLevelDebug
	case k.l.Core().Enabled(zap.InfoLevel):
		return kgo.LogLevelInfo
	case k.l.Core().Enabled(zap.WarnLevel):
		return kgo.LogLevelWarn
	}
	return kgo.LogLevelError
}

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	fields := make([]zap.Field, 0, len(keyvals)/2+1)
	for i := 0; i+1 < len(keyvals); i += 2 {
		fields = append(fields, zap.Any(fmt.Sprint(keyvals[i]), keyvals[i+1]))
	}
	l := k.l.WithOptions(zap.AddCallerSkip(1)).Named("kgo")
	switch level {
	case kgo.LogLevelError:
		l.Error(msg, fields...)
	case kgo.LogLevelWarn:
		l.Warn(msg, fields...)
	case kgo.LogLevelInfo:
		l.Info(msg, fields...)
	default:
		l.Debug(msg, fields...)
	}
}
