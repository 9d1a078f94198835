package engine

// This file owns the poll loop: fetching, rate caps, handing batches to
// the task inboxes, activating restored tasks between checkpoints and
// deciding when a checkpoint is due.

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
)

// pollMax is the most records one poll takes.
const pollMax = 10000

// maxPollWait bounds how long one poll waits for records.
const maxPollWait = time.Second

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
		// A poll returns by the next checkpoint, and at least every
		// maxPollWait: an idle loop still comes round, for liveness and to
		// activate restored tasks, whatever the checkpoint interval.
		deadline := next
		if d := time.Now().Add(maxPollWait); d.Before(deadline) {
			deadline = d
		}
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
			if isAuthorization(err) {
				// Retrying does not grant an ACL: stop, saying which.
				rt.fail(rt.explainAuth(err))
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
			rt.checkQuietBounds(ctx)
			if rt.boundedDone() {
				// Every task finished its input: commit, and stop once a
				// checkpoint finds nothing left to commit.
				if rt.checkpoint(ctx, "end of input") {
					rt.cl.AllowRebalance()
					rt.log.Info("end of input: every task of this replica finished and committed; stopping")
					return
				}
				next = time.Now().Add(rt.cfg.CheckpointInterval)
			} else if blocked && !time.Now().Before(next) {
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

// stateMemory is a task's share of memory for operators' typed state
// (Task.StateMemory); 0 without a budget. Tasks read it again at every
// reservation, so that it follows the tasks the replica runs.
func (rt *runtime) stateMemory() int64 { return rt.stateShare.Load() }

// tasksChangedLocked tells the observer how many tasks the replica runs,
// and splits the budget's typed-state memory among them: a replica
// running half of the job's tasks gives each twice the share. A task past
// its new share, as more tasks come, spills its state at its next
// reservation. rt.mu must be held.
func (rt *runtime) tasksChangedLocked() {
	n := len(rt.mu.tasks)
	rt.obs.TasksAssigned(n)
	if rt.budget != nil {
		rt.stateShare.Store(rt.budget.stateShare(int64(n)))
	}
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
		records, reached := p.Records, false
		if rt.bounds != nil {
			records, reached = rt.boundBatch(tr, p)
		}
		if len(records) > 0 {
			tr.in.push(batch{topic: p.Topic, records: records, highWatermark: p.HighWatermark})
		}
		if reached {
			rt.endPartitionLocked(tr, p.Topic, p.Partition)
		}
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
