package engine

// This file owns the commit protocol: a checkpoint's barriers, the
// transaction (or offset commit) that makes them durable, and the abort
// that restarts every task from its last checkpoint.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/weirstream/weir/state"
)

// begin opens the next transaction.
func (rt *runtime) begin() error {
	if err := rt.sess.Begin(); err != nil {
		return fmt.Errorf("beginning a transaction: %w", err)
	}
	rt.beganTxn()
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
	if rt.stopping.Load() {
		return // the shutdown stops the tasks and aborts the transaction
	}
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
	// Until they start again (the abort may wait for the broker), a
	// rebalance may run: see restarting.
	rt.mu.Lock()
	for _, id := range ids {
		rt.mu.restarting[id] = true
	}
	rt.mu.Unlock()
	if rt.sess != nil {
		// A coordinator that cannot be reached (a broker restarting) is
		// waited for, as everywhere else; franz-go aborts an abort whose
		// outcome it did not hear again by bumping the producer epoch.
		// What Kafka refuses for good (fenced) stops the replica.
		err := rt.retry(ctx, "aborting the transaction", 0, notFinal, func(ctx context.Context) error {
			_, err := rt.sess.End(ctx, kgo.TryAbort)
			return err
		})
		if err == nil {
			err = rt.checkAbortSent(ctx)
		}
		if err == nil && rt.txn.produced.Load() {
			err = rt.closeHanging(ctx, "abort")
		}
		if err != nil {
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
		var committed kadm.OffsetResponses
		err := rt.retry(ctx, "fetching committed offsets to restart tasks", 0, notFinal, func(ctx context.Context) error {
			var err error
			committed, err = rt.fetchCommitted(ctx, rt.cl, slices.Sorted(maps.Keys(topics)))
			return err
		})
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
		if !rt.mu.restarting[id] {
			continue // revoked meanwhile
		}
		delete(rt.mu.restarting, id)
		if _, running := rt.mu.tasks[id]; !running {
			rt.mu.tasks[id] = rt.startTaskLocked(rt.cl, id)
		}
	}
	rt.tasksChangedLocked()
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
// commit, and it reports settled.
func (rt *runtime) checkpoint(ctx context.Context, why string) (settled bool) {
	rt.cpMu.Lock()
	defer rt.cpMu.Unlock()
	rt.mu.Lock()
	trs := slices.Collect(maps.Values(rt.mu.tasks))
	rt.mu.Unlock()
	slices.SortFunc(trs, func(a, b *taskRunner) int { return compareTaskIDs(a.id, b.id) })
	if len(trs) == 0 {
		return false
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
			return false
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
		return true
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
				return false
			}
			if err != nil {
				rt.fail(err)
				return false
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
			return false
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
	return false
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
