package engine

// This file owns group membership and task assignment: the rebalance
// callbacks, starting and stopping task goroutines, static membership and
// leaving the group.

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/weirstream/weir/checkpoint"
	"github.com/weirstream/weir/state"
)

func (rt *runtime) onAssigned(_ context.Context, cl *kgo.Client, assigned map[string][]int32) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	ids := rt.taskIDs(assigned)
	if rt.stopping.Load() {
		// The poll loop has ended and allows rebalances: a task started
		// now would run beside the ones the shutdown stops, and nothing
		// would stop it. The group moves the tasks on once this replica
		// has left (or its session ended).
		rt.log.Info("partitions assigned while stopping; not started", zap.Stringers("tasks", ids))
		return
	}
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
		if _, ok := rt.mu.tasks[id]; !ok && !rt.mu.restarting[id] {
			rt.mu.tasks[id] = rt.startTaskLocked(cl, id)
		}
	}
	rt.tasksChangedLocked()
	rt.log.Info("partitions assigned", zap.Stringers("tasks", ids), zap.Int("running", len(rt.mu.tasks)))
	rt.updateReadyLocked()
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
		// What Kafka refuses for a moment (a broker restarting, a leader
		// moving) is asked again for as long as it lasts: the task stays
		// restoring, the replica not ready. A restore reads for as long as
		// the changelog takes, so no call is bounded.
		var cp commitMeta
		var offsets map[string]kgo.EpochOffset
		err := rt.retry(ctx, "restoring task "+id.String(), 0, transient, func(ctx context.Context) error {
			var err error
			cp, offsets, err = rt.restoreTask(ctx, cl, id)
			return err
		})
		if err != nil {
			return nil, err
		}
		// Read by the checkpointing goroutine only once the task has been
		// activated, which this precedes.
		tr.committed = offsets
		return newTask(taskEnv{
			ctx: rt.runCtx, log: rt.log, obs: rt.obs, producer: rt.taskOutputs(cl), clock: systemClock{}, store: rt.store,
			checkpoint: cp.cp, changelogNext: cp.changelog, eventTime: cp.eventTime, provenance: rt.cfg.Provenance,
			offsets: offsets, failures: rt.failures, timerMem: rt.timerMem, stateMem: rt.stateMemory,
			bounded: rt.bounds != nil, finished: &tr.finished,
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
	// The task's previous runner in this process may not have exited yet
	// (stopTasks removes a runner from tasks before it waits for it to
	// stop, and a rebalance callback can run in between): the new one
	// waits for it rather than use the task's state beside it.
	if prev := rt.mu.runners[id]; prev != nil {
		select {
		case <-prev.done:
		default:
			rt.log.Info("task starts once its previous runner has stopped", zap.Stringer("task", id))
			prev.halt()
			tr.after = prev.done
		}
	}
	rt.mu.runners[id] = tr
	if hook := testHookRunner; hook != nil {
		tr.entered = func() { hook(rt.replica, id, 1) }
		tr.exited = func() { hook(rt.replica, id, -1) }
	}
	go func() {
		tr.run()
		tr.restored() // a task stopped while restoring restores no more
		// An exited runner need not be waited for: do not keep it (and
		// its task's operators) referenced.
		rt.mu.Lock()
		if rt.mu.runners[id] == tr {
			delete(rt.mu.runners, id)
		}
		rt.mu.Unlock()
	}()
	return tr
}

// testHookRunner, if set, is called with +1 when a runner of task id is
// started on a replica, and with -1 when it has stopped (before anyone
// waiting for it hears so): tests count the runners of a task.
var testHookRunner func(replica string, id TaskID, delta int)

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
//
// At least once it returns only once every record the lost tasks produced
// is in Kafka or failed (see settleProduced).
func (rt *runtime) onLost(_ context.Context, cl *kgo.Client, lost map[string][]int32) {
	trs := rt.stopTasks(rt.taskIDs(lost))
	if !rt.exactlyOnce() {
		rt.settleProduced(trs)
	}
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

// settleProduced makes sure no record the stopped tasks trs produced
// (outputs, repartition and changelog records) reaches Kafka after it
// returns. At least once nothing fences them: records still in the
// producer's buffer when a task is lost (the broker away, the session
// expired) would reach the changelog after the task's next incarnation
// read the changelog's end to restore, unseen by the repair of the
// uncommitted tail (repairChangelogTail), and a later restore would apply
// them: state of work that was never committed, such as a window's purge,
// while the input offsets say the work is still to be done. The crash test
// saw it as windows counted low, once with the next incarnation in this
// process, once in the other replica.
//
// When the replica runs no other task (a lost session takes them all),
// the buffered records are dropped (franz-go's AbortBufferedRecords): the
// tasks' next owner, here or elsewhere, redoes their work from the last
// checkpoint. Only records already sent are waited for, a round trip.
// Otherwise it waits for them all to be acknowledged or failed. franz-go
// rejoins the group only after its lost callback returns, so the next
// incarnation in this process restores after either.
func (rt *runtime) settleProduced(trs []*taskRunner) {
	start := time.Now()
	rt.mu.Lock()
	others := len(rt.mu.tasks)
	rt.mu.Unlock()
	if others == 0 && len(trs) > 0 {
		if err := rt.cl.AbortBufferedRecords(rt.runCtx); err != nil {
			return // shutting down
		}
	}
	for _, tr := range trs {
		if tr.t == nil {
			continue // stopped while restoring: it produced nothing
		}
		ep := tr.t.epoch
		ep.Seal() // the task is stopped: nothing joins its epoch any more
		if err := ep.Wait(rt.runCtx.Done()); errors.Is(err, checkpoint.ErrAborted) {
			return // shutting down
		}
	}
	if d := time.Since(start); d > time.Second {
		rt.log.Info("waited for the lost tasks' records in flight", zap.Duration("took", d))
	}
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
		delete(rt.mu.restarting, p) // not this replica's to restart
		if tr, ok := rt.mu.tasks[p]; ok {
			trs = append(trs, tr)
			delete(rt.mu.tasks, p)
			tr.halt()
		}
	}
	rt.tasksChangedLocked()
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

func compareTaskIDs(a, b TaskID) int {
	if a.Stage != b.Stage {
		return a.Stage - b.Stage
	}
	return int(a.Partition - b.Partition)
}
