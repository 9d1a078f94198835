package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/weirstream/weir/observe"
	"github.com/weirstream/weir/state"
)

// runtime runs a job against Kafka in one replica: it joins the consumer
// group, runs a task per assigned partition number, feeds them fetched
// batches and checkpoints their progress.
//
// One goroutine, the poll loop, fetches and checkpoints: a checkpoint runs
// between a poll and AllowRebalance, when no rebalance callback can run,
// so it commits exactly for the tasks it holds. Rebalance callbacks run on
// franz-go's goroutine while the poll loop waits in PollRecords.
//
// Lock order: cpMu, then mu. Exactly once, the rebalance callbacks take
// neither for long and never cpMu (see onRevoked).
type runtime struct {
	job *Job
	cfg Config
	log *zap.Logger
	obs observe.Observer
	cl  *kgo.Client
	// sess is the transactional session of an exactly-once job (cl is its
	// client); nil at least once.
	sess *kgo.GroupTransactSession
	// store is the replica's state store, nil for a job without state.
	store *state.Store

	// runCtx outlives the caller's context until shutdown has committed:
	// produces in flight at shutdown must still be delivered.
	runCtx    context.Context
	cancelRun context.CancelFunc

	// replica is this replica's id: its transactional id's suffix and its
	// static group instance id.
	replica string
	// budget is the memory budget; nil when off.
	budget *memoryBudget

	cpMu sync.Mutex
	mu   struct {
		sync.Mutex
		tasks map[TaskID]*taskRunner
		// seen is, per assigned partition, the first offset fetched since
		// it was assigned: where an abort rewinds a partition that has no
		// committed offset yet.
		seen map[string]map[int32]kgo.EpochOffset
		// revoked holds the tasks revoked at the current rebalance, whose
		// state waits for the new assignment.
		revoked map[TaskID]bool
		// restoring counts tasks restoring their state: the replica is not
		// ready until none is.
		restoring int
		// assignedOnce is set at the process's first assignment.
		assignedOnce bool
	}
	// abort is set when the open transaction can no longer commit (a
	// rebalance took tasks whose work is in it): the poll loop aborts it
	// and restarts every task from its last checkpoint.
	abort atomic.Bool
	// failedCheckpoints counts the checkpoints that failed in a row, and
	// finalFailures those of them that failed with an error Kafka calls
	// final (see isFinal); a commit resets both. Only the goroutine
	// holding cpMu touches them.
	failedCheckpoints, finalFailures int
	// restartPause spaces the task restarts of checkpoints failing in a
	// row; reset by a commit. Guarded like failedCheckpoints.
	restartPause *backoff.ExponentialBackOff

	fatalOnce sync.Once
	fatalErr  error
	fatal     chan struct{}
	stopPoll  context.CancelFunc // set before the poll loop starts

	// retention caches the changelogs' delete.retention.ms (see
	// deleteRetention); restores read it from several goroutines.
	retention struct {
		sync.Mutex
		m map[string]time.Duration
	}

	ready      atomic.Bool
	notReadyMu sync.Mutex
	notReady   string // why not ready, for /readyz

	// failures is the replica's circuit breaker.
	failures *failureControl
	// polling is set while the poll loop runs, and looped is when it last
	// came round (Unix nanoseconds): /healthz fails when it stops.
	polling atomic.Bool
	looped  atomic.Int64
}

// liveness reports whether the poll loop comes round, and if not, since
// when it has not.
func (rt *runtime) liveness() (bool, time.Duration) {
	if rt.cfg.LivenessTimeout <= 0 || !rt.polling.Load() {
		return true, 0
	}
	since := time.Since(time.Unix(0, rt.looped.Load()))
	return since <= rt.cfg.LivenessTimeout, since
}

func newRuntime(j *Job, log *zap.Logger, obs observe.Observer) *runtime {
	rt := &runtime{job: j, cfg: j.cfg, log: log, obs: obs, fatal: make(chan struct{})}
	rt.mu.tasks = map[TaskID]*taskRunner{}
	rt.mu.seen = map[string]map[int32]kgo.EpochOffset{}
	rt.mu.revoked = map[TaskID]bool{}
	rt.retention.m = map[string]time.Duration{}
	rt.restartPause = &backoff.ExponentialBackOff{
		InitialInterval: 100 * time.Millisecond, RandomizationFactor: 0.5, Multiplier: 2, MaxInterval: 5 * time.Second,
	}
	rt.restartPause.Reset()
	rt.failures = newFailureControl(j.cfg.BreakerThreshold, j.cfg.BreakerWindow)
	rt.failures.onChange = rt.breakerChanged
	rt.setNotReady("starting")
	return rt
}

// breakerChanged follows the circuit breaker: a halted replica is not
// ready, says why, and counts; a resumed one wakes its tasks, which go on
// with the record after the one that tripped the breaker.
func (rt *runtime) breakerChanged(halted bool, why string) {
	rt.obs.CircuitBreaker(halted, why)
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if halted {
		rt.log.Error("replica halted", zap.String("why", why))
	} else {
		rt.log.Warn("replica resumed; the circuit breaker counts afresh",
			zap.Float64("threshold", rt.failures.settings.Load().threshold))
		for _, tr := range rt.mu.tasks {
			select {
			case tr.in.notify <- struct{}{}:
			default:
			}
		}
	}
	rt.updateReadyLocked()
}

func (rt *runtime) exactlyOnce() bool { return rt.cfg.Guarantee == ExactlyOnce }

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

	var dlq *InternalTopic
	if rt.job.usesDeadLetters() && rt.cfg.DeadLetterTopic == "" {
		dlq = rt.job.AddInternalTopic("dlq", 0)
	} else if rt.job.usesDeadLetters() {
		rt.job.AddSinkTopic(rt.cfg.DeadLetterTopic)
	}
	rt.job.resolveInternalTopics(rt.cfg.Group)
	if dlq != nil {
		rt.job.dlq.name = dlq.name
	} else {
		rt.job.dlq.name = rt.cfg.DeadLetterTopic
	}
	partitions, err := rt.checkTopics(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while waiting for the broker
		}
		return err
	}
	rt.job.partitions = int32(partitions)
	var stateOpts []state.Opt
	if b, ok := newMemoryBudget(rt.cfg.MemoryLimit); ok {
		rt.budget = &b
		stateOpts = b.stateOpts()
		heap := "none"
		if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
			heap = formatBytes(l)
		}
		rt.log.Info("memory budget", zap.String("limit", formatBytes(b.limit)), zap.String("go_heap_limit", heap))
	}
	if rt.job.stateful {
		if rt.store, err = state.Open(rt.cfg.StateDir, stateOpts...); err != nil {
			return fmt.Errorf("opening the state store in %s: %w", rt.cfg.StateDir, err)
		}
		defer func() {
			if err := rt.store.Close(); err != nil {
				rt.log.Warn("closing the state store", zap.Error(err))
			}
		}()
	}
	replica, err := rt.replicaID()
	if err != nil {
		return err
	}
	rt.replica = replica
	rt.log.Info("job starting",
		zap.Strings("sources", rt.job.sourceTopics()), zap.Int("partitions", partitions),
		zap.String("group", rt.cfg.Group), zap.Strings("brokers", rt.cfg.Brokers),
		zap.String("guarantee", rt.cfg.Guarantee), zap.String("replica", replica),
		zap.Duration("checkpoint_interval", rt.cfg.CheckpointInterval))

	// A failing task stops the poll at once, not when records next arrive.
	pollCtx, stopPoll := context.WithCancel(ctx)
	defer stopPoll()
	rt.stopPoll = stopPoll
	if rt.exactlyOnce() {
		rt.sess, err = kgo.NewGroupTransactSession(append(rt.clientOpts(),
			kgo.TransactionalID(rt.cfg.Group+"-"+replica),
			kgo.TransactionTimeout(rt.cfg.TransactionTimeout))...)
		if err == nil {
			rt.cl = rt.sess.Client()
			err = rt.begin()
		}
	} else {
		rt.cl, err = kgo.NewClient(rt.clientOpts()...)
	}
	if err != nil {
		return fmt.Errorf("%w: kafka client: %w", ErrConfig, err)
	}
	rt.setNotReady("joining consumer group")

	rt.pollLoop(pollCtx)

	rt.setNotReady("shutting down")
	rt.shutdown()
	select {
	case <-rt.fatal:
		return rt.fatalErr
	default:
		return nil
	}
}

// replicaID returns the configured replica id, or the one kept in the
// state directory, generating it on the first start: a replica restarted
// on its state directory keeps its transactional id, so its first
// transaction fences (and aborts) whatever its previous incarnation left
// open, instead of leaving read_committed readers waiting for the
// transaction timeout.
func (rt *runtime) replicaID() (string, error) {
	if rt.cfg.ReplicaID != "" {
		return rt.cfg.ReplicaID, nil
	}
	if err := os.MkdirAll(rt.cfg.StateDir, 0o755); err != nil {
		return "", fmt.Errorf("%w: state directory: %w", ErrConfig, err)
	}
	path := filepath.Join(rt.cfg.StateDir, "replica-id")
	if b, err := os.ReadFile(path); err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("reading the replica id: %w", err)
	}
	host, _ := os.Hostname()
	id := fmt.Sprintf("%s-%d-%d", topicSafe(host), os.Getpid(), time.Now().UnixNano()%1e9)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("writing the replica id: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("writing the replica id: %w", err)
	}
	return id, nil
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
	var details kadm.TopicDetails
	err = rt.retryTransient(ctx, "reaching the Kafka cluster", func(ctx context.Context) error {
		d, err := adm.ListTopics(ctx, topics...)
		details = d
		return err
	})
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
	// Before anything is created: a job whose commits the broker would
	// refuse must not leave topics behind.
	rt.job.partitions = int32(n)
	if err := rt.job.checkCommitMetaFits(rt.cfg.Group); err != nil {
		return 0, err
	}
	if err := rt.ensureInternalTopics(ctx, adm, n); err != nil {
		return 0, err
	}
	if rt.job.dlq.name != "" {
		rt.job.dlq.partitions = int32(n) // Weir's own: the first stage's count
		if c, ok := counts[rt.job.dlq.name]; ok {
			rt.job.dlq.partitions = int32(c)
		}
	}
	if err := rt.describeSinks(ctx, adm); err != nil {
		return 0, err
	}
	return n, nil
}

// sinkTopic is what a sink checks its outputs against: the topic's
// retention.ms (0 for none), and the largest record it takes.
type sinkTopic struct {
	retention time.Duration
	maxBytes  int
}

// producerMaxBatchBytes is franz-go's default ProducerBatchMaxBytes: no
// record larger than it can be produced, whatever the topic takes.
const producerMaxBatchBytes = 1000012

// describeSinks reads the sink topics' retention.ms and max.message.bytes,
// and warns about a sink whose retention deletes by time: outputs carry
// their event time, so a replay of old data writes records the broker may
// delete minutes later.
func (rt *runtime) describeSinks(ctx context.Context, adm *kadm.Client) error {
	topics := slices.Sorted(maps.Keys(rt.job.sinks))
	if len(topics) == 0 {
		return nil
	}
	var rcs kadm.ResourceConfigs
	err := rt.retryTransient(ctx, "describing the sink topics", func(ctx context.Context) error {
		var err error
		rcs, err = adm.DescribeTopicConfigs(ctx, topics...)
		return err
	})
	if err != nil {
		return fmt.Errorf("describing the sink topics: %w", err)
	}
	rt.job.sinkTopics = map[string]sinkTopic{}
	for _, rc := range rcs {
		st := sinkTopic{maxBytes: producerMaxBatchBytes}
		if rc.Err != nil {
			rt.log.Warn("describing a sink topic's configuration", zap.String("topic", rc.Name), zap.Error(rc.Err))
			rt.job.sinkTopics[rc.Name] = st
			continue
		}
		for _, c := range rc.Configs {
			if c.Value == nil {
				continue
			}
			switch c.Key {
			case "retention.ms":
				if ms, err := strconv.ParseInt(*c.Value, 10, 64); err == nil && ms > 0 {
					st.retention = time.Duration(ms) * time.Millisecond
				}
			case "max.message.bytes":
				if n, err := strconv.Atoi(*c.Value); err == nil && n > 0 {
					st.maxBytes = min(n, producerMaxBatchBytes)
				}
			}
		}
		rt.job.sinkTopics[rc.Name] = st
		if st.retention > 0 && rc.Name != rt.job.dlq.name {
			rt.log.Info("sink topic deletes records by time: outputs carry their event time, so outputs older than its retention may be deleted soon after they are written (weir_sink_records_past_retention_total counts them; connectors.WithProcessingTime stamps them now)",
				zap.String("topic", rc.Name), zap.Duration("retention", st.retention))
		}
	}
	return nil
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

// changelogTopicConfig is how Weir creates changelog topics: compacted,
// so the latest value (or tombstone) of every state key stays, whatever
// its age.
var changelogTopicConfig = map[string]*string{
	"cleanup.policy": kadm.StringPtr("compact"),
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
		conf := internalTopicConfig
		if it.compact {
			conf = changelogTopicConfig
		}
		err := rt.retryTransient(ctx, "creating internal topic "+it.name, func(ctx context.Context) error {
			resp, err := adm.CreateTopic(ctx, int32(want), -1, conf, it.name)
			if err == nil {
				err = resp.Err
			}
			return err
		})
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

// retryTransient calls fn until it succeeds, fails with an error Kafka
// calls final (a topic that exists, a policy violation, a missing ACL), or
// ctx ends. A broker that cannot be reached, a request that times out and
// a retriable Kafka error are waited out with backoff: a replica starting
// while the broker restarts waits for it, as it does in checkTopics,
// instead of exiting.
func (rt *runtime) retryTransient(ctx context.Context, what string, fn func(context.Context) error) error {
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		reqCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		err := fn(reqCtx)
		var ke *kerr.Error
		switch {
		case err == nil:
			return struct{}{}, nil
		case ctx.Err() != nil:
			return struct{}{}, backoff.Permanent(err)
		case errors.As(err, &ke) && !ke.Retriable:
			return struct{}{}, backoff.Permanent(err)
		}
		rt.log.Warn(what+" failed, retrying", zap.Error(err))
		return struct{}{}, err
	}, backoff.WithBackOff(&backoff.ExponentialBackOff{
		InitialInterval: 100 * time.Millisecond, RandomizationFactor: 0.5, Multiplier: 2, MaxInterval: 5 * time.Second,
	}), backoff.WithMaxElapsedTime(0))
	return err
}

func (rt *runtime) clientOpts() []kgo.Opt {
	start := kgo.NewOffset().AtStart()
	if rt.cfg.StartOffset == "latest" {
		start = kgo.NewOffset().AtEnd()
	}
	isolation := kgo.ReadCommitted()
	if rt.cfg.Isolation == "read_uncommitted" {
		isolation = kgo.ReadUncommitted()
	}
	var opts []kgo.Opt
	if rt.budget != nil {
		opts = rt.budget.kgoOpts() // first: the user's options win
	}
	if rt.static() {
		// Static membership (KIP-345): a replica restarted on its state
		// directory rejoins as the member it was, and gets its tasks back
		// at once instead of after the session timeout.
		opts = append(opts, kgo.InstanceID(rt.replica))
	}
	return append(append(opts, rt.cfg.kgoOpts...),
		kgo.SeedBrokers(rt.cfg.Brokers...),
		kgo.WithLogger(kgoLogger{rt.log}),
		kgo.ConsumerGroup(rt.cfg.Group),
		kgo.SessionTimeout(rt.cfg.SessionTimeout),
		kgo.HeartbeatInterval(min(3*time.Second, rt.cfg.SessionTimeout/3)),
		kgo.ConsumeTopics(rt.job.sourceTopics()...),
		kgo.ConsumeResetOffset(start),
		// The start offset is for the job's own inputs: a partition of an
		// internal topic (or a joined table) without a committed offset is
		// read from its start, or a downstream task that crashed before
		// its first checkpoint would skip what its upstream committed.
		kgo.AdjustFetchOffsetsFn(rt.startInternalTopicsAtStart),
		kgo.FetchIsolationLevel(isolation),
		// A partition resumed after backpressure joins the next fetch, which
		// waits for the one in flight; with franz-go's 5s default a
		// caught-up replica stalled seconds on every resume (measured in
		// BenchmarkStatelessE2E). Java's default is 500ms.
		kgo.FetchMaxWait(200*time.Millisecond),
		// A produce answered CONCURRENT_TRANSACTIONS (the previous
		// transaction's markers still being written) is retried after a
		// metadata refresh, which franz-go spaces 5s apart by default: a
		// checkpoint right after a new changelog topic's first write stalled
		// that long (seen in BenchmarkGuarantees).
		kgo.MetadataMinAge(100*time.Millisecond),
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

// startInternalTopicsAtStart moves partitions of internal topics that have
// no committed offset (franz-go gives them the configured start offset,
// which is negative) to their start.
func (rt *runtime) startInternalTopicsAtStart(_ context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	for topic, ps := range offsets {
		if !rt.job.readFromStart(topic) {
			continue
		}
		for p, o := range ps {
			if o.EpochOffset().Offset < 0 {
				ps[p] = kgo.NewOffset().AtStart()
			}
		}
	}
	return offsets, nil
}

// pollMax is the most records one poll takes.
const pollMax = 10000

// pollLoop fetches until ctx is done or a task fails, handing each
// partition's records to its task's inbox, and checkpoints every interval.
func (rt *runtime) pollLoop(ctx context.Context) {
	next := time.Now().Add(rt.cfg.CheckpointInterval)
	caps := newRateCaps(rt.obs, rt.cfg.MaxRecordsPerSecond, rt.job.sourceRates(), rt.job.userSourceTopics(),
		func(ts ...string) { rt.cl.PauseFetchTopics(ts...) }, func(ts ...string) { rt.cl.ResumeFetchTopics(ts...) })
	rt.looped.Store(time.Now().UnixNano())
	rt.polling.Store(true)
	defer rt.polling.Store(false)
	for {
		rt.looped.Store(time.Now().UnixNano())
		deadline := next
		if caps != nil {
			caps.resumeDue(time.Now())
			if u := caps.next(); !u.IsZero() && u.Before(deadline) {
				deadline = u
			}
		}
		pollCtx, cancel := context.WithDeadline(ctx, deadline)
		fetches := rt.cl.PollRecords(pollCtx, caps.maxPoll(pollMax))
		cancel()
		if caps != nil {
			counts := map[string]int{}
			fetches.EachPartition(func(p kgo.FetchTopicPartition) {
				if rt.job.isUserSource(p.Topic) {
					counts[p.Topic] += len(p.Records)
				}
			})
			caps.take(counts, time.Now())
		}
		if fetches.IsClientClosed() {
			return
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return
			}
			rt.log.Warn("fetch error", zap.String("topic", topic), zap.Int32("partition", p), zap.Error(err))
		})
		if ctx.Err() != nil {
			rt.cl.AllowRebalance() // or leaving the group waits on this poll
			return                 // shutdown commits (or aborts) what is in hand
		}
		rt.noteFetched(fetches)
		// A poll that returned anything blocks rebalances until
		// AllowRebalance: from here, no callback changes the tasks.
		blocked := len(fetches) > 0
		switch {
		case blocked && rt.abort.Load():
			// These records were fetched past the offsets the abort rewinds
			// to; they are fetched again.
			rt.abortAndRestart(ctx)
		default:
			rt.push(fetches)
			if !rt.abort.Load() {
				rt.activateRestored()
			}
			if blocked && !time.Now().Before(next) {
				rt.checkpoint(ctx, "interval")
				next = time.Now().Add(rt.cfg.CheckpointInterval)
			} else if blocked && rt.stateCacheFull() {
				// The write-back cache holds what the last checkpoint has
				// not written: write it now rather than grow.
				rt.checkpoint(ctx, "state cache full")
				next = time.Now().Add(rt.cfg.CheckpointInterval)
			}
		}
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

// taskQueueBytes is the bytes of fetched records one task may queue
// before its partitions pause: its share of the budget's queue bytes,
// counting every task the replica could run; 0 (no bound) without a
// budget.
func (rt *runtime) taskQueueBytes() int64 {
	if rt.budget == nil {
		return 0
	}
	tasks := max(1, int64(rt.job.partitions)*int64(rt.job.stages))
	return max(1<<20, rt.budget.queueBytes/tasks)
}

// stateCacheFull reports whether the tasks' write-back state caches hold
// more than the budget gives them.
func (rt *runtime) stateCacheFull() bool {
	if rt.budget == nil || rt.store == nil {
		return false
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	var total int64
	for _, tr := range rt.mu.tasks {
		total += tr.dirty.Load()
	}
	return total > rt.budget.dirtyBytes
}

// noteFetched remembers the first offset fetched of each partition since
// its assignment.
func (rt *runtime) noteFetched(fetches kgo.Fetches) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) == 0 {
			return
		}
		seen := rt.mu.seen[p.Topic]
		if seen == nil {
			seen = map[int32]kgo.EpochOffset{}
			rt.mu.seen[p.Topic] = seen
		}
		if _, ok := seen[p.Partition]; !ok {
			r := p.Records[0]
			seen[p.Partition] = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset}
		}
	})
}

func (rt *runtime) push(fetches kgo.Fetches) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
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
}

// activateRestored lets tasks that finished restoring process. It runs in
// the poll loop, outside checkpoints, so every task a checkpoint sees
// processing is one it holds.
func (rt *runtime) activateRestored() {
	rt.mu.Lock()
	var trs []*taskRunner
	for _, tr := range rt.mu.tasks {
		if !tr.active && tr.ready.Load() {
			trs = append(trs, tr)
		}
	}
	rt.mu.Unlock()
	for _, tr := range trs {
		tr.activate()
	}
}

func (rt *runtime) onAssigned(_ context.Context, cl *kgo.Client, assigned map[string][]int32) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	ids := rt.taskIDs(assigned)
	// Tasks revoked at this rebalance and not given back moved to another
	// replica: their key ranges go. (Were they to come back, the changelog
	// restores them.)
	for id := range rt.mu.revoked {
		if !slices.Contains(ids, id) {
			rt.dropTaskState(id)
		}
	}
	clear(rt.mu.revoked)
	if !rt.mu.assignedOnce {
		// What the state directory holds of tasks this process was not
		// given ran elsewhere while it was down (a static member gets back
		// what it had): those copies can only be stale.
		rt.mu.assignedOnce = true
		for stage := range rt.job.stages {
			for p := range rt.job.partitions {
				if id := (TaskID{Stage: stage, Partition: p}); !slices.Contains(ids, id) {
					rt.dropTaskState(id)
				}
			}
		}
	}
	for _, id := range ids {
		if _, ok := rt.mu.tasks[id]; !ok {
			rt.mu.tasks[id] = rt.startTaskLocked(cl, id)
		}
	}
	rt.obs.TasksAssigned(len(rt.mu.tasks))
	rt.log.Info("partitions assigned", zap.Stringers("tasks", ids), zap.Int("running", len(rt.mu.tasks)))
	rt.updateReadyLocked()
}

func (rt *runtime) updateReadyLocked() {
	if halted, why := rt.failures.halted(); halted {
		rt.setNotReady(why)
		return
	}
	if rt.mu.restoring > 0 {
		rt.setNotReady(fmt.Sprintf("restoring the state of %d tasks", rt.mu.restoring))
		return
	}
	rt.setReady()
}

// startTaskLocked starts the goroutine of task id: it restores the task's
// state to the checkpoint Kafka has for it, builds its operators, and
// processes once activated.
func (rt *runtime) startTaskLocked(cl *kgo.Client, id TaskID) *taskRunner {
	tps := map[string][]int32{}
	for _, topic := range rt.job.stageTopics(id.Stage) {
		tps[topic] = []int32{id.Partition}
	}
	tr := &taskRunner{
		id: id,
		in: newInbox(rt.cfg.TaskQueueRecords, rt.taskQueueBytes(),
			func() { cl.PauseFetchPartitions(tps) },
			func() { cl.ResumeFetchPartitions(tps) }),
		ctrl:  make(chan taskCmd),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
		fatal: rt.fail,
	}
	tr.start = func(ctx context.Context) (*Task, error) {
		cp, offsets, err := rt.restoreTask(ctx, cl, id)
		if err != nil {
			return nil, err
		}
		// Read by the checkpointing goroutine only once the task has been
		// activated, which this precedes.
		tr.committed = offsets
		return newTask(taskEnv{
			ctx: rt.runCtx, log: rt.log, obs: rt.obs, producer: cl, clock: systemClock{}, store: rt.store,
			checkpoint: cp.cp, changelogNext: cp.changelog, eventTime: cp.eventTime, provenance: rt.cfg.Provenance,
			offsets: offsets, failures: rt.failures,
		}, id, rt.job)
	}
	rt.mu.restoring++
	var once sync.Once
	tr.restored = func() {
		once.Do(func() {
			rt.mu.Lock()
			defer rt.mu.Unlock()
			rt.mu.restoring--
			rt.updateReadyLocked()
		})
	}
	go func() {
		tr.run()
		tr.restored() // a task stopped while restoring restores no more
	}()
	return tr
}

// onRevoked gives up the revoked tasks. At least once, it first commits
// what they processed, so the next owner starts exactly there. Exactly
// once, their work is in the open transaction, which can no longer commit
// (franz-go's session aborts it at its next end): every task restarts
// from its last checkpoint once the rebalance is over.
//
// Exactly once it must not wait for cpMu: franz-go's session calls it
// holding the lock that ending a transaction takes, so waiting for a
// checkpoint in the middle of one would deadlock. It need not: a revoke
// runs only while the poll loop allows rebalances, never inside a
// checkpoint, and a commit it raced would be fenced anyway.
func (rt *runtime) onRevoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	if !rt.exactlyOnce() {
		rt.cpMu.Lock()
		defer rt.cpMu.Unlock()
	}
	trs := rt.stopTasks(rt.taskIDs(revoked))
	if len(trs) == 0 {
		return
	}
	if rt.exactlyOnce() {
		rt.abort.Store(true)
	} else {
		rt.commitStopped(ctx, trs, "revoke")
	}
	// Their state stays until the new assignment is known: the range
	// balancer revokes every task at each rebalance, and most come back.
	rt.mu.Lock()
	for _, tr := range trs {
		rt.mu.revoked[tr.id] = true
	}
	rt.mu.Unlock()
	cl.ResumeFetchPartitions(revoked)
	rt.forgetPartitions(revoked)
	rt.log.Info("partitions revoked", zap.Stringers("tasks", rt.taskIDs(revoked)))
}

// onLost drops tasks whose partitions were taken away without a chance to
// commit (session expired): committing now could overwrite the new owner's
// progress. It can run in the middle of a checkpoint (a heartbeat finds
// the membership gone), so it takes no checkpoint lock (see onRevoked):
// stopping the tasks releases any the checkpoint holds, and the
// checkpoint's commit, fenced, aborts.
func (rt *runtime) onLost(_ context.Context, cl *kgo.Client, lost map[string][]int32) {
	trs := rt.stopTasks(rt.taskIDs(lost))
	for _, tr := range trs {
		rt.dropTaskState(tr.id)
	}
	if rt.exactlyOnce() && len(trs) > 0 {
		rt.abort.Store(true)
	}
	cl.ResumeFetchPartitions(lost)
	rt.forgetPartitions(lost)
	rt.log.Warn("partitions lost; their uncommitted work will be redone by the new owner", zap.Stringers("tasks", rt.taskIDs(lost)))
}

func (rt *runtime) forgetPartitions(tps map[string][]int32) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for topic, ps := range tps {
		for _, p := range ps {
			delete(rt.mu.seen[topic], p)
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
		// Its partitions may be paused for backpressure; whoever reads
		// them next (this replica's restarted task, after an abort, or
		// the next owner) starts with an empty queue.
		tr.in.release()
		rt.obs.TaskStopped(tr.id.String())
	}
	return trs
}

// begin opens the next transaction.
func (rt *runtime) begin() error {
	if err := rt.sess.Begin(); err != nil {
		return fmt.Errorf("beginning a transaction: %w", err)
	}
	rt.obs.TransactionOpen(time.Now())
	return nil
}

// abortAndRestart aborts the open transaction and restarts every task
// from its last checkpoint: its state as Kafka committed it, its inputs
// rewound to the committed offsets. Kafka decides, not this replica's
// memory: after a commit whose outcome was unknown, Kafka knows whether
// it landed. It runs in the poll loop with rebalances blocked.
func (rt *runtime) abortAndRestart(ctx context.Context) {
	rt.cpMu.Lock()
	defer rt.cpMu.Unlock()
	rt.abortAndRestartLocked(ctx)
}

func (rt *runtime) abortAndRestartLocked(ctx context.Context) {
	rt.abort.Store(false)
	// Checkpoints failing in a row (a broker away) restart their tasks
	// with growing pauses, not in a tight loop.
	if rt.failedCheckpoints > 1 {
		select {
		case <-time.After(rt.restartPause.NextBackOff()):
		case <-ctx.Done():
		}
	}
	rt.mu.Lock()
	ids := slices.Collect(maps.Keys(rt.mu.tasks))
	rt.mu.Unlock()
	rt.stopTasks(ids)
	if rt.sess != nil {
		if _, err := rt.sess.End(ctx, kgo.TryAbort); err != nil {
			if ctx.Err() == nil { // stopping: shutdown aborts it
				rt.fail(fmt.Errorf("aborting the transaction: %w", err))
			}
			return
		}
		rt.obs.Transaction(false)
		rt.obs.TransactionOpen(time.Time{})
	}
	for _, id := range ids {
		if rt.store != nil {
			rt.store.Task(state.TaskID{Stage: uint16(id.Stage), Partition: id.Partition}).AbortPending()
		}
	}
	if len(ids) > 0 {
		topics := map[string]bool{}
		for _, id := range ids {
			for _, t := range rt.job.stageTopics(id.Stage) {
				topics[t] = true
			}
		}
		committed, err := rt.fetchCommitted(ctx, rt.cl, slices.Sorted(maps.Keys(topics)))
		if err != nil {
			if ctx.Err() == nil {
				rt.fail(fmt.Errorf("fetching committed offsets to restart tasks: %w", err))
			}
			return
		}
		rewind := map[string]map[int32]kgo.EpochOffset{}
		rt.mu.Lock()
		for _, id := range ids {
			for _, topic := range rt.job.stageTopics(id.Stage) {
				to, ok := rt.mu.seen[topic][id.Partition]
				if c, has := committed.Lookup(topic, id.Partition); has && c.At >= 0 {
					to, ok = kgo.EpochOffset{Epoch: c.LeaderEpoch, Offset: c.At}, true
				}
				if ok {
					if rewind[topic] == nil {
						rewind[topic] = map[int32]kgo.EpochOffset{}
					}
					rewind[topic][id.Partition] = to
				}
			}
		}
		rt.mu.Unlock()
		rt.cl.SetOffsets(rewind)
	}
	if rt.sess != nil {
		if err := rt.begin(); err != nil {
			rt.fail(err)
			return
		}
	}
	rt.mu.Lock()
	for _, id := range ids {
		rt.mu.tasks[id] = rt.startTaskLocked(rt.cl, id)
	}
	rt.obs.TasksAssigned(len(rt.mu.tasks))
	rt.updateReadyLocked()
	rt.mu.Unlock()
	rt.log.Warn("transaction aborted; tasks restart from their last checkpoint", zap.Stringers("tasks", ids))
}

// maxFinalAttempts is how many times in a row a checkpoint may fail with
// an error Kafka calls final before the job stops: a few, since some final
// errors are one-offs of a moment (a topic being recreated), and a record
// that is too large is too large every time.
const maxFinalAttempts = 3

// checkpoint takes a barrier in every running task and commits what
// precedes the barriers: outputs, changelog and input offsets, in one
// transaction exactly once; then, and only then, each task's state goes to
// Pebble. Nothing processed and nothing produced since the last one: no
// commit.
func (rt *runtime) checkpoint(ctx context.Context, why string) {
	rt.cpMu.Lock()
	defer rt.cpMu.Unlock()
	rt.mu.Lock()
	trs := slices.Collect(maps.Values(rt.mu.tasks))
	rt.mu.Unlock()
	slices.SortFunc(trs, func(a, b *taskRunner) int { return compareTaskIDs(a.id, b.id) })
	if len(trs) == 0 {
		return
	}
	eos := rt.exactlyOnce()
	hs := make([]*held, 0, len(trs))
	// release lets held tasks go on; with commit, each first commits its
	// state of this checkpoint.
	release := func(commit bool) {
		for _, h := range hs {
			if h.release != nil {
				h.release <- heldOutcome{commit: commit, cp: h.snap.cp, clNext: h.snap.changelogNext(), clAcks: h.snap.clAcks()}
			}
		}
	}
	for _, tr := range trs {
		h, ok := tr.barrier(ctx, eos)
		if !ok {
			release(false) // nothing ended: what they produce next joins the same transaction
			return
		}
		if h != nil {
			hs = append(hs, h)
		}
	}
	committed, err := rt.commit(ctx, hs, why)
	if committed {
		rt.failedCheckpoints, rt.finalFailures = 0, 0
		rt.restartPause.Reset()
	}
	switch {
	case !committed && err == nil:
		release(false) // nothing happened since the last checkpoint
	case committed && eos:
		faultPoint("after-commit")
		release(true)
	case committed:
		// At least once the tasks went on after their barriers; their
		// state of this checkpoint is committed in their goroutines.
		faultPoint("after-commit")
		for _, h := range hs {
			if !h.snap.stateful {
				continue
			}
			var err error
			cp, next, acks := h.snap.cp, h.snap.changelogNext(), h.snap.clAcks()
			if !h.tr.do(func(t *Task) { err = t.commitState(cp, next, acks) }, ctx.Done()) {
				return
			}
			if err != nil {
				rt.fail(err)
				return
			}
		}
	case eos:
		rt.failedCheckpoints++
		if isFinal(err) {
			rt.finalFailures++
		}
		if rt.finalFailures >= maxFinalAttempts {
			// Redoing the checkpoint fails the same way each time: stop,
			// committing nothing more (shutdown aborts the transaction).
			rt.abort.Store(true)
			rt.fail(fmt.Errorf("checkpoint failed %d times in a row with an error retrying will not cure: %w", rt.finalFailures, err))
			return
		}
		if ctx.Err() == nil {
			rt.log.Warn("checkpoint failed; aborting its transaction", zap.Error(err), zap.Int("failed_in_a_row", rt.failedCheckpoints))
		}
		rt.abortAndRestartLocked(ctx)
	default:
		if ctx.Err() == nil {
			rt.log.Warn("checkpoint failed; retrying at the next interval", zap.Error(err))
		}
		// The changelog records are in Kafka regardless: they stay
		// pending in their tasks, so the next checkpoint's positions
		// include them, as its state does.
	}
}

// commitStopped commits the work of stopped tasks (at least once, at
// revocation): a barrier in each, the commit, their state.
func (rt *runtime) commitStopped(ctx context.Context, trs []*taskRunner, why string) {
	hs := make([]*held, 0, len(trs))
	for _, tr := range trs {
		if tr.t != nil {
			hs = append(hs, &held{tr: tr, snap: tr.t.barrier()})
		}
	}
	if committed, err := rt.commit(ctx, hs, why); !committed {
		if err == nil {
			return // nothing to commit
		}
		rt.log.Warn("checkpoint of stopped tasks failed; their next owner reprocesses from the previous one", zap.Error(err))
		return
	}
	for _, h := range hs {
		if err := h.tr.t.commitState(h.snap.cp, h.snap.changelogNext(), h.snap.clAcks()); err != nil {
			rt.fail(err)
		}
	}
}

// commit waits until every record produced before the barriers is
// acknowledged, then commits the barriers' input offsets with each task's
// checkpoint metadata: exactly once by ending the transaction, at least
// once with a plain offset commit. It reports whether Kafka committed;
// false with no error means there was nothing to commit.
func (rt *runtime) commit(ctx context.Context, hs []*held, why string) (committed bool, err error) {
	start := time.Now()
	defer func() {
		if committed || err != nil {
			rt.obs.Checkpoint(time.Since(start), err)
		}
	}()
	var produceErr error
	for _, h := range hs {
		if err := h.snap.epoch.Wait(ctx.Done()); err != nil {
			if ctx.Err() != nil {
				return false, err
			}
			produceErr = errors.Join(produceErr, fmt.Errorf("producing outputs of task %s: %w", h.snap.task, err))
		}
		if h.snap.fail != nil {
			produceErr = errors.Join(produceErr, h.snap.fail)
		}
	}
	offsets := map[string]map[int32]kgo.EpochOffset{}
	metas := map[string]map[int32]string{}
	changed := false
	var clRecords, clBytes int
	for _, h := range hs {
		s := h.snap
		meta := commitMeta{cp: s.cp, changelog: s.changelogNext(), eventTime: s.eventTime}.encode(rt.cfg.Group)
		if s.produced > 0 || !maps.Equal(s.offsets, h.tr.committed) {
			changed = true
		}
		if s.changelog != nil {
			clRecords += s.changelog.records
			clBytes += s.changelog.size
		}
		for topic, eo := range s.offsets {
			if offsets[topic] == nil {
				offsets[topic] = map[int32]kgo.EpochOffset{}
				metas[topic] = map[int32]string{}
			}
			offsets[topic][s.task.Partition] = eo
			metas[topic][s.task.Partition] = meta
		}
	}
	if produceErr != nil {
		if !rt.exactlyOnce() {
			// A produce failed after the client's own retries: the records
			// before this barrier are not all durable, so their offsets
			// must never be committed, and at least once nothing can undo
			// what did reach Kafka.
			rt.fail(produceErr)
		}
		return false, produceErr
	}
	if !changed {
		return false, nil
	}
	if rt.exactlyOnce() {
		err = rt.commitTransaction(ctx, offsets, metas)
	} else {
		err = rt.commitOffsets(ctx, offsets, metas)
	}
	if err != nil {
		return false, err
	}
	for _, h := range hs {
		h.tr.committed = h.snap.offsets
	}
	rt.obs.CheckpointSize(clRecords, clBytes)
	rt.log.Debug("checkpoint committed", zap.String("trigger", why), zap.Duration("took", time.Since(start)),
		zap.Int("tasks", len(hs)), zap.Int("changelog_records", clRecords))
	return true, nil
}

// commitTransaction ends the open transaction with the given offsets and
// metadata (KIP-447: the group's generation fences a replica that lost its
// tasks), and opens the next.
func (rt *runtime) commitTransaction(ctx context.Context, offsets map[string]map[int32]kgo.EpochOffset, metas map[string]map[int32]string) error {
	commitCtx := kgo.PreTxnCommitFnContext(ctx, func(req *kmsg.TxnOffsetCommitRequest) error {
		ids := map[string][16]byte{}
		for _, t := range req.Topics {
			ids[t.Topic] = t.TopicID
		}
		req.Topics = req.Topics[:0]
		for _, topic := range slices.Sorted(maps.Keys(offsets)) {
			rt := kmsg.NewTxnOffsetCommitRequestTopic()
			rt.Topic, rt.TopicID = topic, ids[topic]
			for p, eo := range offsets[topic] {
				rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
				rp.Partition, rp.Offset, rp.LeaderEpoch = p, eo.Offset, eo.Epoch
				meta := metas[topic][p]
				rp.Metadata = &meta
				rt.Partitions = append(rt.Partitions, rp)
			}
			req.Topics = append(req.Topics, rt)
		}
		return nil
	})
	// Before committing, the session makes sure of the group membership
	// with a heartbeat. A member the group dropped (a frozen replica
	// waking up) gets no answer while this poll blocks the callback that
	// would say so: the bound turns that into an abort.
	commitCtx, cancel := context.WithTimeout(commitCtx, rt.cfg.SessionTimeout)
	defer cancel()
	committed, err := rt.sess.End(commitCtx, kgo.TryCommit)
	rt.obs.Transaction(committed)
	rt.obs.TransactionOpen(time.Time{})
	if err == nil && !committed {
		err = errors.New("the transaction was aborted (a rebalance took tasks of this replica, or the commit was fenced)")
	}
	if err != nil {
		return fmt.Errorf("committing the transaction: %w", err)
	}
	return rt.begin()
}

// commitOffsets commits offsets with metadata, at least once.
func (rt *runtime) commitOffsets(ctx context.Context, offsets map[string]map[int32]kgo.EpochOffset, metas map[string]map[int32]string) error {
	commitCtx := kgo.PreCommitFnContext(ctx, func(req *kmsg.OffsetCommitRequest) error {
		for i := range req.Topics {
			t := &req.Topics[i]
			for j := range t.Partitions {
				meta := metas[t.Topic][t.Partitions[j].Partition]
				t.Partitions[j].Metadata = &meta
			}
		}
		return nil
	})
	var commitErr error
	rt.cl.CommitOffsetsSync(commitCtx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
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
		return fmt.Errorf("committing offsets: %w", commitErr)
	}
	return nil
}

// dropTaskState deletes the local state of a task the replica no longer
// owns: whoever owns it now changes its state, so this copy can only go
// stale. (On shutdown tasks keep theirs, for a restart on this replica.)
func (rt *runtime) dropTaskState(id TaskID) {
	if rt.store == nil {
		return
	}
	if err := rt.store.Task(state.TaskID{Stage: uint16(id.Stage), Partition: id.Partition}).Drop(); err != nil {
		rt.log.Warn("dropping the local state of a task moved elsewhere", zap.Stringer("task", id), zap.Error(err))
	}
}

// shutdown commits a last checkpoint, stops every task and leaves the
// group.
func (rt *runtime) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), rt.cfg.ShutdownTimeout)
	if !rt.abort.Load() {
		rt.checkpoint(ctx, "shutdown")
	}
	cancel()
	rt.cpMu.Lock()
	rt.mu.Lock()
	ps := slices.Collect(maps.Keys(rt.mu.tasks))
	rt.mu.Unlock()
	rt.stopTasks(ps)
	rt.cpMu.Unlock()
	if rt.sess != nil {
		// Whatever is left open (a failed last checkpoint) is aborted, not
		// left for the transaction timeout.
		actx, cancel := context.WithTimeout(context.Background(), rt.cfg.ShutdownTimeout)
		if _, err := rt.sess.End(actx, kgo.TryAbort); err != nil {
			rt.log.Warn("aborting the last transaction", zap.Error(err))
		}
		cancel()
	}
	rt.cancelRun()
	memberID, _ := rt.cl.GroupMetadata()
	rt.cl.Close() // a static member does not leave the group on close
	if rt.static() && rt.cfg.LeaveGroupOnShutdown && rt.fatalErrOrNil() == nil {
		rt.leaveGroup(memberID)
	}
	if err := rt.fatalErrOrNil(); err != nil {
		rt.log.Error("job stopped by an error", zap.Error(err))
	} else {
		rt.log.Info("job stopped")
	}
}

// static reports whether the replica joins its group as a static member.
// Exactly once only, for now: at least once with static membership, the
// crash test (TestCrashesAtLeastOnce) counted windows low in 4 of 6 runs,
// against none of 4 without it, and the cause is not found yet (issue 11).
func (rt *runtime) static() bool { return rt.exactlyOnce() }

// leaveGroup removes this replica's static member from the group, so the
// group moves its tasks to the other replicas now rather than after the
// session timeout. A replica stopped by a fatal error does not: it is
// restarted (by Kubernetes) and takes its tasks back.
func (rt *runtime) leaveGroup(memberID string) {
	cl, err := kgo.NewClient(append(slices.Clone(rt.cfg.kgoOpts), kgo.SeedBrokers(rt.cfg.Brokers...), kgo.WithLogger(kgoLogger{rt.log}))...)
	if err != nil {
		rt.log.Warn("leaving the group", zap.Error(err))
		return
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), rt.cfg.ShutdownTimeout)
	defer cancel()
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Group = rt.cfg.Group
	m := kmsg.NewLeaveGroupRequestMember()
	m.MemberID, m.InstanceID = memberID, &rt.replica
	req.Members = append(req.Members, m)
	resp, err := req.RequestWith(ctx, cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
		for _, m := range resp.Members {
			if err == nil {
				err = kerr.ErrorForCode(m.ErrorCode)
			}
		}
	}
	if err != nil && !errors.Is(err, kerr.UnknownMemberID) {
		rt.log.Warn("leaving the group; the group moves this replica's tasks after the session timeout", zap.Error(err))
		return
	}
	rt.log.Info("left the consumer group", zap.String("instance_id", rt.replica))
}

func (rt *runtime) fatalErrOrNil() error {
	select {
	case <-rt.fatal:
		return rt.fatalErr
	default:
		return nil
	}
}

func compareTaskIDs(a, b TaskID) int {
	if a.Stage != b.Stage {
		return a.Stage - b.Stage
	}
	return int(a.Partition - b.Partition)
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
	slices.SortFunc(ids, compareTaskIDs)
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

// stoppedByFatal reports whether the job ran and a fatal error stopped it
// (shutdown logged it), rather than failing before it ran.
func (rt *runtime) stoppedByFatal() bool { return rt.fatalErrOrNil() != nil }
