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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/twmb/franz-go/pkg/kgo"
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
	// txnID is the session's transactional id.
	txnID string
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
	// timerMem is the budget's share for timers in memory, shared by the
	// replica's tasks; nil when there is no budget.
	timerMem *timerMemory
	// stateShare is each running task's share of memory for operators'
	// typed state (stateMemory); 0 when there is no budget.
	stateShare atomic.Int64
	// bounds is where a bounded run ends (Config.Until); nil when not.
	bounds *bounds

	cpMu sync.Mutex
	// stopping is set when the shutdown starts: a last checkpoint that
	// fails leaves its transaction for the shutdown to abort, and no task
	// restarts.
	stopping atomic.Bool
	mu       struct {
		sync.Mutex
		tasks map[TaskID]*taskRunner
		// runners holds the last runner started of each task, running or
		// not: the next one waits for it to exit (startTaskLocked).
		runners map[TaskID]*taskRunner
		// seen is, per assigned partition, the first offset fetched since
		// it was assigned: where an abort rewinds a partition that has no
		// committed offset yet.
		seen map[string]map[int32]kgo.EpochOffset
		// revoked holds the tasks revoked at the current rebalance, whose
		// state waits for the new assignment.
		revoked map[TaskID]bool
		// restarting holds the tasks an abort stopped and will start
		// again (abortAndRestartLocked): an assignment meanwhile must not
		// start a second runner of one, and a revocation meanwhile
		// removes it, so that the abort does not start a task that is no
		// longer this replica's.
		restarting map[TaskID]bool
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
	// txn guards against an abort franz-go did not send (txncheck.go).
	txn txnGuard
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

func newRuntime(j *Job, log *zap.Logger, obs observe.Observer) *runtime {
	rt := &runtime{job: j, cfg: j.cfg, log: log, obs: obs, fatal: make(chan struct{})}
	rt.mu.tasks = map[TaskID]*taskRunner{}
	rt.mu.runners = map[TaskID]*taskRunner{}
	rt.mu.seen = map[string]map[int32]kgo.EpochOffset{}
	rt.mu.revoked = map[TaskID]bool{}
	rt.mu.restarting = map[TaskID]bool{}
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

func (rt *runtime) exactlyOnce() bool { return rt.cfg.Guarantee == ExactlyOnce }

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
	for topic := range rt.job.outputs {
		rt.job.AddSinkTopic(rt.job.OutputTopic(topic))
	}
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
		rt.timerMem = newTimerMemory(b.timers)
		rt.stateShare.Store(b.stateMemory(rt.job.partitions, rt.job.stages))
		stateOpts = b.stateOpts()
		heap := "none"
		if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
			heap = formatBytes(l)
		}
		rt.log.Info("memory budget", zap.String("limit", formatBytes(b.limit)), zap.String("go_heap_limit", heap))
		if rt.job.tuneGoMem {
			tuneCtx, stopTuning := context.WithCancel(ctx)
			defer stopTuning()
			go b.tuneGoMemLimit(tuneCtx, time.Second)
		}
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
		zap.Stringer("kafka_security", rt.cfg.security),
		zap.String("guarantee", rt.cfg.Guarantee), zap.String("replica", replica),
		zap.Duration("checkpoint_interval", rt.cfg.CheckpointInterval))

	// A failing task stops the poll at once, not when records next arrive.
	pollCtx, stopPoll := context.WithCancel(ctx)
	defer stopPoll()
	rt.stopPoll = stopPoll
	if err := rt.resolveBounds(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	// Said before the client exists: it joins the group at once, and the
	// assignment (and the tasks' restores) may be done before this goroutine
	// goes on; from then on the tasks say whether the replica is ready.
	rt.setNotReady("joining consumer group")
	if rt.exactlyOnce() {
		rt.txnID = rt.cfg.Group + "-" + replica
		rt.sess, err = kgo.NewGroupTransactSession(append(rt.clientOpts(),
			kgo.TransactionalID(rt.txnID),
			kgo.TransactionTimeout(rt.cfg.TransactionTimeout))...)
		if err == nil {
			rt.cl = rt.sess.Client()
			rt.txn.kip890 = clusterUsesKIP890(ctx, rt.cl)
		}
	} else {
		rt.cl, err = kgo.NewClient(rt.clientOpts()...)
	}
	if err != nil {
		return fmt.Errorf("%w: kafka client: %w", ErrConfig, err)
	}
	if rt.sess != nil {
		// What an earlier run of this replica left open that the
		// producer's initialization did not abort (see txnmarkers.go).
		err := rt.closeHanging(ctx, "start")
		if err == nil {
			err = rt.begin()
		}
		if err != nil {
			rt.cl.Close()
			if ctx.Err() != nil {
				return nil // stopped while waiting for the broker
			}
			return err
		}
	}
	if testHookClientStarted != nil {
		testHookClientStarted()
	}

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

// testHookClientStarted, if set, runs right after the Kafka client was
// created: the group's first assignment may already be under way.
var testHookClientStarted func()

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
	// Static membership (KIP-345): a replica restarted on its state
	// directory rejoins as the member it was, and gets its tasks back at
	// once instead of after the session timeout.
	opts = append(opts, kgo.InstanceID(rt.replica))
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

// shutdown commits a last checkpoint, stops every task and leaves the
// group.
func (rt *runtime) shutdown() {
	rt.stopping.Store(true)
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
	if rt.cfg.LeaveGroupOnShutdown && rt.fatalErrOrNil() == nil {
		rt.leaveGroup(memberID)
	}
	if err := rt.fatalErrOrNil(); err != nil {
		rt.log.Error("job stopped by an error", zap.Error(err))
	} else {
		rt.log.Info("job stopped")
	}
}

func (rt *runtime) fatalErrOrNil() error {
	select {
	case <-rt.fatal:
		return rt.fatalErr
	default:
		return nil
	}
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
