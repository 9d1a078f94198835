package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/weirstream/weir/state"
)

// fetchCommitted returns the group's committed offsets of topics, waiting
// while a transaction that commits some of them is still open
// (UNSTABLE_OFFSET_COMMIT): those offsets are about to change, and the
// state matching them with them.
func (rt *runtime) fetchCommitted(ctx context.Context, cl *kgo.Client, topics []string) (kadm.OffsetResponses, error) {
	adm := kadm.NewClient(cl)
	return backoff.Retry(ctx, func() (kadm.OffsetResponses, error) {
		resps, err := adm.FetchOffsetsForTopics(kadm.RequireStable(ctx), rt.cfg.Group, topics...)
		if err != nil {
			return nil, err
		}
		if err := resps.Error(); err != nil {
			if errors.Is(err, kerr.UnstableOffsetCommit) {
				return nil, err // a transaction is committing them: wait
			}
			return nil, backoff.Permanent(err)
		}
		return resps, nil
	}, backoff.WithBackOff(&backoff.ExponentialBackOff{
		InitialInterval: 50 * time.Millisecond, RandomizationFactor: 0.5, Multiplier: 2, MaxInterval: time.Second,
	}), backoff.WithMaxElapsedTime(0))
}

// committedCheckpoint returns what the group committed for task id: its
// checkpoint metadata, and the committed offset of each of its input
// partitions that has one (none at all: the task has never committed).
func (rt *runtime) committedCheckpoint(ctx context.Context, cl *kgo.Client, id TaskID) (commitMeta, map[string]kgo.EpochOffset, error) {
	topics := rt.job.stageTopics(id.Stage)
	resps, err := rt.fetchCommitted(ctx, cl, topics)
	if err != nil {
		return commitMeta{}, nil, fmt.Errorf("task %s: fetching committed offsets: %w", id, err)
	}
	var meta commitMeta
	var weir bool
	offsets := map[string]kgo.EpochOffset{}
	for _, topic := range topics {
		r, ok := resps.Lookup(topic, id.Partition)
		if !ok || r.At < 0 {
			continue
		}
		offsets[topic] = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.At}
		m, ok, err := parseCommitMeta(r.Metadata, rt.cfg.Group)
		if err != nil {
			return commitMeta{}, nil, fmt.Errorf("task %s: %s/%d: %w", id, topic, id.Partition, err)
		}
		if ok && (!weir || m.cp > meta.cp) {
			meta, weir = m, true
		}
	}
	if len(offsets) > 0 && !weir {
		rt.log.Warn("committed offsets carry no Weir checkpoint (committed by another tool?); the state restores to the end of its changelog",
			zap.Stringer("task", id))
		meta.changelog = nil
	}
	return meta, offsets, nil
}

// taskChangelogs returns the changelog topics of stage's operators.
func (j *Job) taskChangelogs(stage int) []string {
	var ts []string
	for _, it := range j.changelogs {
		if it.from == stage {
			ts = append(ts, it.name)
		}
	}
	slices.Sort(ts)
	return ts
}

// restoreTask brings task id's local state to the checkpoint the group
// committed for it, before the task processes anything, and returns that
// checkpoint: its id, the changelog positions the local state now has and
// the event time to resume.
//
// Kafka decides: the committed offsets' metadata (commitMeta) names the
// changelog position of every state topic. Where the local store recorded
// the same position, it is current and nothing is read. Where it is behind
// (a crash between the Kafka commit and the Pebble commit, or the task ran
// on another replica since), the changelog from the local position up to
// the committed one is applied. Where there is no local state, the whole
// changelog up to it. Local state ahead of Kafka (offsets reset by hand)
// is dropped first. A task with nothing committed starts empty.
//
// It also returns the committed input offsets: they are the task's
// position until it processes a record, so that a checkpoint of work done
// before then (a processing-time timer that fires first) commits its
// metadata with them.
func (rt *runtime) restoreTask(ctx context.Context, cl *kgo.Client, id TaskID) (commitMeta, map[string]kgo.EpochOffset, error) {
	meta, offsets, err := rt.committedCheckpoint(ctx, cl, id)
	if err != nil {
		return commitMeta{}, nil, err
	}
	positions, err := rt.restoreState(ctx, cl, id, meta, len(offsets) > 0)
	if err != nil {
		return commitMeta{}, nil, err
	}
	if !rt.exactlyOnce() {
		if err := rt.repairChangelogTail(ctx, cl, id, positions); err != nil {
			return commitMeta{}, nil, err
		}
	}
	meta.changelog = positions
	return meta, offsets, nil
}

// restoreState restores the task's state to meta and returns the changelog
// positions it has then.
func (rt *runtime) restoreState(ctx context.Context, cl *kgo.Client, id TaskID, meta commitMeta, committed bool) (map[string]int64, error) {
	topics := rt.job.taskChangelogs(id.Stage)
	if rt.store == nil || len(topics) == 0 {
		return nil, nil
	}
	ts := rt.store.Task(state.TaskID{Stage: uint16(id.Stage), Partition: id.Partition})
	// A task starts from committed state only: writes an earlier run of
	// the task left in the store's cache (its work went with an aborted
	// transaction, or a revocation at least once failed to commit it) are
	// not Kafka's and must not be read.
	ts.AbortPending()
	lc, hasLocal, err := ts.LocalCheckpoint()
	localCp, local := lc.ID, lc.Changelog
	if err != nil {
		return nil, fmt.Errorf("task %s: reading the local checkpoint: %w", id, err)
	}
	drop := func(why string) error {
		rt.log.Warn("dropping the task's local state", zap.Stringer("task", id), zap.String("why", why), zap.Int64("local_checkpoint", localCp))
		hasLocal, local = false, nil
		return ts.Drop()
	}
	if !committed {
		if hasLocal {
			if err := drop("the group has committed nothing for it"); err != nil {
				return nil, err
			}
		}
		return map[string]int64{}, nil
	}
	targets := maps.Clone(meta.changelog)
	if targets == nil {
		targets = map[string]int64{}
	}
	var unknown []string
	for _, topic := range topics {
		if _, ok := targets[topic]; !ok && meta.changelog == nil {
			unknown = append(unknown, topic)
		}
	}
	if len(unknown) > 0 { // not Weir's commit: restore to the end
		ends, err := kadm.NewClient(cl).ListCommittedOffsets(ctx, unknown...)
		if err != nil {
			return nil, fmt.Errorf("task %s: listing changelog end offsets: %w", id, err)
		}
		for _, topic := range unknown {
			if o, ok := ends.Lookup(topic, id.Partition); ok && o.Err == nil {
				targets[topic] = o.Offset
			}
		}
	}
	for topic, target := range targets {
		if local[topic] > target {
			if err := drop(fmt.Sprintf("its changelog %s position %d is past the committed %d (offsets reset?)", topic, local[topic], target)); err != nil {
				return nil, err
			}
			break
		}
	}
	from := map[string]int64{}
	for topic, target := range targets {
		if f := local[topic]; f < target {
			from[topic] = f
		}
	}
	// A store that must catch up, or whose checkpoint is not the committed
	// one (a reset commits the next id), may stand on deleted records.
	if hasLocal && (len(from) > 0 || localCp != meta.cp) {
		behind, why, err := localStateBehindStart(ctx, cl, id, local, targets)
		if err != nil {
			return nil, fmt.Errorf("task %s: %w", id, err)
		}
		if behind {
			if err := drop(why); err != nil {
				return nil, err
			}
			for topic, target := range targets {
				if target > 0 {
					from[topic] = 0
				}
			}
		}
	}
	if hasLocal && len(from) > 0 {
		// Catching up from the local position replays deletions only if
		// the changelog still has their tombstones.
		stale, why, err := rt.localStateTooOld(ctx, cl, lc, slices.Collect(maps.Keys(from)))
		if err != nil {
			return nil, fmt.Errorf("task %s: %w", id, err)
		}

		if stale {
			if err := drop(why); err != nil {
				return nil, err
			}
			for topic, target := range targets {
				if target > 0 {
					from[topic] = 0
				}
			}
		}
	}
	if len(from) == 0 {
		if hasLocal {
			rt.log.Info("task resumes from its local state", zap.Stringer("task", id), zap.Int64("checkpoint", meta.cp))
		}
		if !hasLocal || localCp != meta.cp {
			// Record the committed checkpoint, so the next start compares
			// against it.
			if err := ts.FinishRestore(meta.cp, targets); err != nil {
				return nil, err
			}
		}
		return targets, nil
	}
	if err := rt.readChangelog(ctx, cl, id, ts, from, targets); err != nil {
		ts.AbortPending() // drops an unfinished restore batch with the rest
		return nil, err
	}
	if err := ts.FinishRestore(meta.cp, targets); err != nil {
		return nil, err
	}
	return targets, nil
}

// restoreProgressEvery is how many changelog records a restore applies
// between two progress reports.
const restoreProgressEvery = 10000

// readChangelog applies the changelog records of task id in [from, to) of
// each topic to ts, reading committed records only.
func (rt *runtime) readChangelog(ctx context.Context, cl *kgo.Client, id TaskID, ts *state.TaskStore, from, to map[string]int64) error {
	start := time.Now()
	var total int64
	for topic, f := range from {
		total += to[topic] - f
	}
	rt.log.Info("restoring task state from the changelog", zap.Stringer("task", id),
		zap.Any("from", from), zap.Any("to", to), zap.Int64("records_at_most", total))
	// The committed positions must exist: a changelog ending below them
	// was deleted or truncated, and waiting would wait forever.
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, slices.Collect(maps.Keys(from))...)
	if err != nil {
		return fmt.Errorf("task %s: listing changelog end offsets: %w", id, err)
	}
	for topic := range from {
		o, ok := ends.Lookup(topic, id.Partition)
		if !ok || o.Err != nil {
			return fmt.Errorf("task %s: changelog %s partition %d: %w", id, topic, id.Partition, errors.Join(o.Err, errors.New("no end offset")))
		}
		if o.Offset < to[topic] {
			return fmt.Errorf("task %s: changelog %s partition %d ends at offset %d, below the committed state's %d: it was deleted or truncated; reset the job's offsets and state",
				id, topic, id.Partition, o.Offset, to[topic])
		}
	}
	// Records below a log start were deleted (a state reset): read from
	// there, or the fetch would ask for offsets that no longer exist.
	starts, err := kadm.NewClient(cl).ListStartOffsets(ctx, slices.Collect(maps.Keys(from))...)
	if err != nil {
		return fmt.Errorf("task %s: listing changelog start offsets: %w", id, err)
	}
	from = maps.Clone(from)
	for topic, f := range from {
		if o, ok := starts.Lookup(topic, id.Partition); ok && o.Err == nil && f < o.Offset {
			from[topic] = o.Offset
		}
		if from[topic] >= to[topic] {
			delete(from, topic)
		}
	}
	var lastReport int64
	restored, err := rt.scanChangelog(ctx, cl, id, from, to, func(r *kgo.Record) error {
		return ts.Restore(r.Key, r.Value, r.Value == nil)
	}, func(restored int64, done bool) {
		if restored-lastReport >= restoreProgressEvery || done {
			lastReport = restored
			rt.obs.RestoreProgress(id.String(), restored, max(0, total-restored))
		}
	})
	if err != nil {
		return err
	}
	rt.log.Info("task state restored", zap.Stringer("task", id), zap.Int64("records", restored), zap.Duration("took", time.Since(start)))
	rt.obs.RestoreDone(id.String(), restored, time.Since(start))
	return nil
}

// scanChangelog reads the changelog records of task id in [from, to) of
// each topic, committed records only, and passes each to each; progress,
// if set, hears the count after every fetch. It returns how many it read.
func (rt *runtime) scanChangelog(ctx context.Context, cl *kgo.Client, id TaskID, from, to map[string]int64,
	each func(*kgo.Record) error, progress func(n int64, done bool)) (int64, error) {
	parts := map[string]map[int32]kgo.Offset{}
	for topic, f := range from {
		parts[topic] = map[int32]kgo.Offset{id.Partition: kgo.NewOffset().At(f)}
	}
	rc, err := kgo.NewClient(append(slices.Clone(rt.cfg.kgoOpts),
		kgo.SeedBrokers(rt.cfg.Brokers...),
		kgo.WithLogger(kgoLogger{rt.log}),
		kgo.ConsumePartitions(parts),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(200*time.Millisecond),
	)...)
	if err != nil {
		return 0, fmt.Errorf("task %s: restore client: %w", id, err)
	}
	defer rc.Close()
	pending := map[string]int64{} // topic -> target, until reached
	next := map[string]int64{}    // topic -> offset after the last record read
	for topic, f := range from {
		pending[topic] = to[topic]
		next[topic] = f
	}
	var restored int64
	var lastStuckLog time.Time
	for len(pending) > 0 {
		pollCtx, cancel := context.WithTimeout(ctx, restoreQuietPoll)
		fs := rc.PollFetches(pollCtx)
		cancel()
		if err := ctx.Err(); err != nil {
			return restored, err
		}
		if fs.Empty() {
			// Nothing came for a while: compaction may have removed
			// every record left below the target (the last one a
			// tombstone past its retention), and nothing will come.
			// Ask Kafka whether a committed record remains there.
			for topic, target := range pending {
				remain, why, err := committedRecordsRemain(ctx, cl, topic, id.Partition, next[topic], target)
				if remain && time.Since(lastStuckLog) > 10*time.Second {
					// Said every few seconds: a restore that waits is
					// what keeps the replica unready.
					lastStuckLog = time.Now()
					rt.log.Warn("restore waits for changelog records below the committed position", zap.Stringer("task", id),
						zap.String("topic", topic), zap.Int64("next", next[topic]), zap.Int64("to", target), zap.String("why", why))
				}
				if err != nil {
					// Not known: the broker may be restarting. Keep reading.
					rt.log.Warn("asking whether changelog records remain", zap.Stringer("task", id), zap.String("topic", topic), zap.Error(err))
					continue
				}
				if !remain {
					rt.log.Info("the changelog has nothing more below the committed position (compacted away)", zap.Stringer("task", id),
						zap.String("topic", topic), zap.Int64("from", next[topic]), zap.Int64("to", target))
					delete(pending, topic)
					rc.PauseFetchPartitions(map[string][]int32{topic: {id.Partition}})
				}
			}
			continue
		}
		var ferr error
		fs.EachError(func(topic string, p int32, err error) {
			rt.log.Warn("changelog fetch error during restore", zap.Stringer("task", id), zap.String("topic", topic), zap.Error(err))
			if errors.Is(err, kerr.UnknownTopicOrPartition) {
				ferr = fmt.Errorf("task %s: changelog %s: %w", id, topic, err)
			}
		})
		if ferr != nil {
			return restored, ferr
		}
		var rerr error
		fs.EachRecord(func(r *kgo.Record) {
			target, ok := pending[r.Topic]
			if !ok || rerr != nil {
				return
			}
			if r.Offset < target {
				if rerr = each(r); rerr != nil {
					return
				}
				restored++
				next[r.Topic] = r.Offset + 1
			}
			// The record before the target was committed, so it is read,
			// unless compaction removed it for a later one of its key,
			// which is then read instead: either ends this topic.
			if r.Offset >= target-1 {
				delete(pending, r.Topic)
				rc.PauseFetchPartitions(map[string][]int32{r.Topic: {id.Partition}})
			}
		})
		if rerr != nil {
			return restored, fmt.Errorf("task %s: restoring: %w", id, rerr)
		}
		if progress != nil {
			progress(restored, len(pending) == 0)
		}
	}
	return restored, nil
}

// localStateBehindStart reports whether a local store at positions local
// stands at or below the log start offset of a changelog that has records
// (targets): everything below the log start was deleted (the job's state
// reset by weir offsets reset), so what the store holds, built from those
// records, is no longer the job's state, and it cannot catch up by reading
// on either. Weir never deletes changelog records otherwise (compaction
// does not move the log start).
func localStateBehindStart(ctx context.Context, cl *kgo.Client, id TaskID, local, targets map[string]int64) (bool, string, error) {
	var topics []string
	for topic, target := range targets {
		if target > 0 {
			topics = append(topics, topic)
		}
	}
	if len(topics) == 0 {
		return false, "", nil
	}
	starts, err := kadm.NewClient(cl).ListStartOffsets(ctx, topics...)
	if err != nil {
		return false, "", fmt.Errorf("listing changelog start offsets: %w", err)
	}
	for _, topic := range topics {
		if o, ok := starts.Lookup(topic, id.Partition); ok && o.Err == nil && o.Offset > 0 && local[topic] <= o.Offset {
			return true, fmt.Sprintf("its changelog %s position %d is at or below the log start %d: the records it was built from were deleted (a state reset)",
				topic, local[topic], o.Offset), nil
		}
	}
	return false, "", nil
}

// localStateTooOld reports whether local state at checkpoint lc is too old
// to catch up from by reading the changelog topics after its position. A
// compacted changelog keeps a tombstone for delete.retention.ms after its
// segment was cleaned, and no longer: a store that fell behind longer ago
// than that (the task ran elsewhere meanwhile) may have missed deletions
// whose tombstones are gone, and replaying the rest would bring deleted
// keys and timers back. Such a store restores in full. The margin covers
// records written before their transaction committed, and clocks.
func (rt *runtime) localStateTooOld(ctx context.Context, cl *kgo.Client, lc state.LocalCheckpoint, topics []string) (bool, string, error) {
	if lc.CommittedAt.IsZero() {
		return true, "its local checkpoint does not say when it was taken", nil
	}
	age := time.Since(lc.CommittedAt)
	for _, topic := range topics {
		retention, err := rt.deleteRetention(ctx, cl, topic)
		if err != nil {
			return false, "", err
		}
		if age > retention-rt.cfg.TransactionTimeout-time.Minute {
			return true, fmt.Sprintf("it is %s behind, and changelog %s keeps tombstones for %s: deletions may be gone from it",
				age.Round(time.Second), topic, retention), nil
		}
	}
	return false, "", nil
}

// defaultDeleteRetention is Kafka's default delete.retention.ms.
const defaultDeleteRetention = 24 * time.Hour

// deleteRetention returns how long topic keeps tombstones (its
// delete.retention.ms), asking the broker once per topic and run.
func (rt *runtime) deleteRetention(ctx context.Context, cl *kgo.Client, topic string) (time.Duration, error) {
	rt.retention.Lock()
	d, ok := rt.retention.m[topic]
	rt.retention.Unlock()
	if ok {
		return d, nil
	}
	d = defaultDeleteRetention
	err := rt.retryTransient(ctx, "describing changelog "+topic, func(ctx context.Context) error {
		rcs, err := kadm.NewClient(cl).DescribeTopicConfigs(ctx, topic)
		if err != nil {
			return err
		}
		rc, err := rcs.On(topic, nil)
		if err != nil {
			return err
		}
		if rc.Err != nil {
			return rc.Err
		}
		for _, c := range rc.Configs {
			if c.Key == "delete.retention.ms" && c.Value != nil {
				ms, err := strconv.ParseInt(*c.Value, 10, 64)
				if err != nil {
					return backoff.Permanent(fmt.Errorf("delete.retention.ms %q: %w", *c.Value, err))
				}
				d = time.Duration(ms) * time.Millisecond
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("reading delete.retention.ms of changelog %s: %w", topic, err)
	}
	rt.retention.Lock()
	rt.retention.m[topic] = d
	rt.retention.Unlock()
	return d, nil
}

// restoreQuietPoll is how long a restore waits for changelog records
// before it asks Kafka whether any remain below its target.
const restoreQuietPoll = time.Second

// committedRecordsRemain reports whether partition p of topic has a
// committed record in [from, to), asking its leader directly: a fetch from
// an offset past which compaction left nothing below to returns no batch
// at all, and aborted batches and transaction markers, which a
// read_committed fetch returns but are no records, are stepped over. Only
// a partition whose last stable offset is at or past to says so: a leader
// just restarted may not serve its whole log yet.
func committedRecordsRemain(ctx context.Context, cl *kgo.Client, topic string, p int32, from, to int64) (bool, string, error) {
	md, err := kadm.NewClient(cl).Metadata(ctx, topic)
	if err != nil {
		return false, "", err
	}
	td, ok := md.Topics[topic]
	if !ok || td.Err != nil {
		return false, "", errors.Join(errors.New("no metadata"), td.Err)
	}
	pd, ok := td.Partitions[p]
	if !ok || pd.Err != nil {
		return false, "", errors.Join(errors.New("no partition metadata"), pd.Err)
	}
	for from < to {
		req := kmsg.NewPtrFetchRequest()
		req.ReplicaID = -1
		req.MaxBytes = 1 << 20
		req.IsolationLevel = 1 // read_committed
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = topic, td.ID
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p, from, 1<<20
		rp.CurrentLeaderEpoch, rp.LogStartOffset = -1, -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		kresp, err := cl.Broker(int(pd.Leader)).Request(ctx, req)
		if err != nil {
			return false, "", err
		}
		resp := kresp.(*kmsg.FetchResponse)
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			return false, "", err
		}
		var part *kmsg.FetchResponseTopicPartition
		for i := range resp.Topics {
			for j := range resp.Topics[i].Partitions {
				if resp.Topics[i].Partitions[j].Partition == p {
					part = &resp.Topics[i].Partitions[j]
				}
			}
		}
		if part == nil {
			return false, "", errors.New("the fetch response has no such partition")
		}
		if err := kerr.ErrorForCode(part.ErrorCode); err != nil {
			return false, "", err
		}
		if len(part.RecordBatches) == 0 {
			// Nothing at or after from, if the log is stable that far.
			why := fmt.Sprintf("nothing at %d yet: last stable offset %d, high watermark %d", from, part.LastStableOffset, part.HighWatermark)
			return part.LastStableOffset < to || part.HighWatermark < to, why, nil
		}
		fp, after := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
			Offset: from, IsolationLevel: kgo.ReadCommitted(), Topic: topic, Partition: p,
		}, part, kgo.DefaultDecompressor(), nil)
		if fp.Err != nil {
			return false, "", fp.Err
		}
		for _, r := range fp.Records {
			if r.Offset < to {
				return true, fmt.Sprintf("a committed record at %d (last stable offset %d): the restore's fetch has not returned it", r.Offset, part.LastStableOffset), nil
			}
		}
		if len(fp.Records) > 0 {
			return false, "", nil // everything read is at or past to
		}
		if after <= from {
			// No progress: not known to be empty, keep reading.
			return true, fmt.Sprintf("no record decoded at %d (last stable offset %d)", from, part.LastStableOffset), nil
		}
		from = after
	}
	return false, "", nil
}
