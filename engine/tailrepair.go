package engine

// This file owns the repair of a changelog's tail at least once: the
// changelog records a replica wrote past its committed checkpoint before
// it died, written again with the restored values so that no later
// restore reads them.

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/weirstream/weir/state"
)

// repairChangelogTail makes a changelog whose end is past the restored
// position safe to restore through again (at least once). Without a
// transaction, the changelog records a task wrote at a barrier are in
// Kafka at once; if the replica died before the offsets of that barrier
// committed, they form a tail past the committed position: state of work
// that will be redone. This restore stopped before the tail, but the
// task's own records go after it, and a later restore up to a later
// checkpoint would read the tail as well, for keys this run never writes
// again: a count the tail deleted (a fired window) would be lost, one it
// raised counted twice. Exactly once the tail is an aborted transaction,
// which committed readers skip.
//
// The repair is what the abort is exactly once: every key in the tail is
// written again with its restored value (or deleted), in the task's first
// checkpoint, ahead of anything the task writes; a later write of the key
// in the same checkpoint replaces it, as it should. A replica that dies
// before that checkpoint commits leaves a longer tail, repaired the same
// way by the next one.
func (rt *runtime) repairChangelogTail(ctx context.Context, cl *kgo.Client, id TaskID, positions map[string]int64) error {
	topics := rt.job.taskChangelogs(id.Stage)
	if rt.store == nil || len(topics) == 0 {
		return nil
	}
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topics...)
	if err != nil {
		return fmt.Errorf("task %s: listing changelog end offsets: %w", id, err)
	}
	from, to := map[string]int64{}, map[string]int64{}
	for _, topic := range topics {
		o, ok := ends.Lookup(topic, id.Partition)
		if !ok || o.Err != nil {
			return fmt.Errorf("task %s: changelog %s partition %d: %w", id, topic, id.Partition, errors.Join(o.Err, errors.New("no end offset")))
		}
		if o.Offset > positions[topic] {
			from[topic], to[topic] = positions[topic], o.Offset
		}
	}
	if len(from) == 0 {
		return nil
	}
	keys := map[string]struct{}{}
	n, err := rt.scanChangelog(ctx, cl, id, from, to, func(r *kgo.Record) error {
		keys[string(r.Key)] = struct{}{}
		return nil
	}, nil)
	if err != nil {
		return err
	}
	ts := rt.store.Task(state.TaskID{Stage: uint16(id.Stage), Partition: id.Partition})
	for k := range keys {
		key := []byte(k)
		v, ok, err := ts.Get(key)
		switch {
		case err != nil:
			ts.AbortPending()
			return fmt.Errorf("task %s: repairing the changelog tail: %w", id, err)
		case ok:
			ts.Set(key, v)
		default:
			ts.Delete(key)
		}
	}
	rt.log.Info("the changelog has uncommitted records past the restored checkpoint (a replica died before committing); their keys are written again with the checkpoint's values",
		zap.Stringer("task", id), zap.Any("from", from), zap.Any("to", to), zap.Int64("records", n), zap.Int("keys", len(keys)))
	return nil
}
