package weirtest

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/internal/local"
	"github.com/weirstream/weir/state"
)

// Crash and recovery: Checkpoint commits, Crash goes back to the last
// commit and replays what came after it, as a job with exactly-once
// checkpoints does when a replica dies.
//
// What a checkpoint commits, and so what survives a crash:
//
//   - every output record written before it (sinks, late-data topics and
//     the changelog records the checkpoint itself writes): a running job
//     commits them in the checkpoint's Kafka transaction;
//   - per task, the offsets of its inputs, its changelog positions and
//     its event time (local.Checkpoint), which a running job commits
//     with the transaction;
//   - the repartition records written before it and not yet delivered
//     (the watermarks a barrier writes): they are in Kafka, and the stage
//     reading them has not committed past them.
//
// What a crash loses: the records written since (the transaction
// aborts), the state store (the replica's disk: the store is in memory),
// and the tasks. The restart then does what a running job does when a
// task starts on a replica with no local state: it restores the task's
// state from the committed changelog records of its partition alone
// (timers included: they are state), resumes the checkpoint's event
// time, and reads its inputs from the committed offsets again, which
// here means replaying, in the order they first came, the records sent
// (SendBytes, SendBytesTo, SendValue, SendBatch) and the watermarks moved
// (AdvanceWatermark, AdvanceInputWatermark, MarkInputIdle)
// since the checkpoint.
//
// What it does not simulate: Kafka itself. No producer is fenced (there
// is no zombie), no group rebalances (every task of the job restarts in
// place, together), a checkpoint never fails between the Kafka commit and
// the store's (Checkpoint commits both), a restart never finds local
// state to resume from (it always restores the whole changelog), and
// changelogs are not compacted. Processing time does not go back: the
// restarted tasks read the clock as it is, so processing-time timers due
// by then fire at their first tick, before the replay, and a replayed
// record sees the later time (a TTL, a timer it registers). Captured
// streams (Capture) are not Kafka outputs: they keep what the crash
// aborted and see the replay again.

// event is an input sent since the last checkpoint: a record, or else a
// watermark move.
type event struct {
	// records, when not nil, are sent together (one by SendBytes, a
	// batch by SendBatch), as sent, with their partitions.
	records   []*kgo.Record
	watermark time.Time
	// input, with watermark or idle, is a single input's move.
	input string
	idle  bool
	// end is EndInput.
	end bool
}

// recovery is the harness's last checkpoint and what came after it.
type recovery struct {
	// events are the inputs since the last checkpoint, in order.
	events []event
	// tasks is what each task's last checkpoint committed; queue the
	// repartition records undelivered at the checkpoint, and offsets the
	// harness's next input offsets then.
	tasks   map[engine.TaskID]local.Checkpoint
	queue   []*kgo.Record
	offsets map[string]map[int32]int64
	// aborted holds, by topic, the outputs crashes aborted, until Aborted
	// hands them out.
	aborted map[string][]*kgo.Record
}

func (rc *recovery) log(e event) { rc.events = append(rc.events, e) }

// committed records what the checkpoint every task just took committed.
// The tasks' committed input offsets must be those of every record
// delivered so far, or a replay of the inputs sent since would not start
// where they do: it is an error, with the checkpoint not recorded.
func (h *Harness) committed() error {
	tasks := make(map[engine.TaskID]local.Checkpoint, len(h.tasks))
	for _, id := range h.ids {
		cp := h.tasks[id].Committed()
		for _, topic := range slices.Sorted(maps.Keys(cp.Offsets)) {
			if next, delivered := cp.Offsets[topic], h.offsets[topic][id.Partition]; next != delivered {
				return fmt.Errorf("weirtest: checkpoint %d: task %s committed offset %d of %s partition %d, but %d records of it were delivered (did the task fail?)",
					cp.ID, id, next, topic, id.Partition, delivered)
			}
		}
		tasks[id] = cp
	}
	rc := &h.recovery
	rc.events = nil
	rc.tasks = tasks
	rc.queue = cloneRecords(h.queue)
	rc.offsets = cloneOffsets(h.offsets)
	for _, l := range h.outputs {
		l.committed = len(l.recs)
	}
	return nil
}

// Crash kills the job's replica and restarts it from the last
// Checkpoint (from nothing before any): the records written since are
// aborted, the state store is replaced by an empty one and every task's
// state restored into it from the committed changelog alone, the tasks
// are built again with the checkpoint's event time, and the inputs sent
// since the checkpoint are replayed in order. See the comment at the top
// of recovery.go for what is simulated and what is not.
//
// Output had handed out aborted records as it hands out every record
// (read_uncommitted); it hands out the replay's records again, and
// Aborted tells what the crash aborted. CommittedOutput reads only
// what checkpoints committed: what a read_committed consumer sees, which
// exactly-once means is what the job would have committed without the
// crash.
//
// It returns the error that stopped a task during the replay, or one that
// stopped the restart itself, which leaves the harness fit for nothing
// but another Crash.
func (h *Harness) Crash() error {
	rc := &h.recovery
	for _, topic := range slices.Sorted(maps.Keys(h.outputs)) {
		l := h.outputs[topic]
		if len(l.recs) == l.committed {
			continue
		}
		if rc.aborted == nil {
			rc.aborted = map[string][]*kgo.Record{}
		}
		rc.aborted[topic] = append(rc.aborted[topic], l.recs[l.committed:]...)
		// Clipped: records appended from now on must not overwrite the
		// aborted ones, which a caller may hold.
		l.recs = slices.Clip(l.recs[:l.committed])
		l.read = min(l.read, l.committed)
	}
	h.queue = cloneRecords(rc.queue)
	h.offsets = cloneOffsets(rc.offsets)

	store, err := state.Open("", state.InMemory(state.NewMemFS()))
	if err != nil {
		return fmt.Errorf("weirtest: crash: opening a new state store: %w", err)
	}
	_ = h.store.Close() // the old tasks die with it
	h.store = store
	for _, id := range h.ids {
		if err := h.restoreTask(id, rc.tasks[id]); err != nil {
			return err
		}
	}
	if err := h.startTasks(rc.tasks); err != nil {
		return err
	}
	// The restarted tasks' first tick: event time moves to the
	// checkpoint's, and the stages downstream hear of it.
	if err := h.settle(); err != nil {
		return err
	}
	for _, e := range rc.events {
		if e.records != nil {
			err = h.deliverBatch(cloneRecords(e.records))
		} else if e.end {
			err = h.endInput()
		} else if e.input != "" {
			err = h.inputEvent(e.input, e.watermark, e.idle)
		} else {
			err = h.advanceWatermark(e.watermark)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// restoreTask restores task id's state in h.store from the committed
// changelog records of its partition, in offset order, up to the
// positions its checkpoint cp names, as a running job restores a task
// with no local state.
func (h *Harness) restoreTask(id engine.TaskID, cp local.Checkpoint) error {
	topics := h.top.Changelogs[id.Stage]
	if len(topics) == 0 {
		return nil
	}
	ts := h.store.Task(state.TaskID{Stage: uint16(id.Stage), Partition: id.Partition})
	for _, topic := range topics {
		end := int64(0)
		if l := h.outputs[topic]; l != nil {
			for _, r := range l.recs[:l.committed] {
				if r.Partition != id.Partition {
					continue
				}
				if err := ts.Restore(r.Key, r.Value, r.Value == nil); err != nil {
					return fmt.Errorf("weirtest: crash: restoring task %s from %s: %w", id, topic, err)
				}
				end = r.Offset + 1
			}
		}
		// A running job reads the changelog up to the position its
		// checkpoint names, which must be where the committed records end.
		if want := cp.Changelog[topic]; end != want {
			return fmt.Errorf("weirtest: crash: task %s: the committed records of changelog %s partition %d end at offset %d, but checkpoint %d names position %d",
				id, topic, id.Partition, end, cp.ID, want)
		}
	}
	if err := ts.FinishRestore(cp.ID, cp.Changelog); err != nil {
		return fmt.Errorf("weirtest: crash: restoring task %s: %w", id, err)
	}
	return nil
}

// CommittedOutput returns every record written to topic that a
// Checkpoint committed, from the first, in the order written: what a
// read_committed consumer of the topic sees, which no Crash changes.
func (h *Harness) CommittedOutput(topic string) []*kgo.Record {
	l := h.outputs[topic]
	if l == nil || l.committed == 0 {
		return nil
	}
	return slices.Clip(l.recs[:l.committed])
}

// CommittedOutputs decodes what CommittedOutput returns.
func CommittedOutputs[T any](h *Harness, topic string, c codec.Codec[T]) []Record[T] {
	h.tb.Helper()
	return decode(h, topic, c, h.CommittedOutput(topic))
}

// Aborted returns the records written to topic that crashes aborted since
// the last call, in the order written, whether or not Output had handed
// them out.
func (h *Harness) Aborted(topic string) []*kgo.Record {
	out := h.recovery.aborted[topic]
	delete(h.recovery.aborted, topic)
	return out
}

func cloneRecords(rs []*kgo.Record) []*kgo.Record {
	if len(rs) == 0 {
		return nil
	}
	c := make([]*kgo.Record, len(rs))
	for i, r := range rs {
		r := *r
		c[i] = &r
	}
	return c
}

func cloneOffsets(o map[string]map[int32]int64) map[string]map[int32]int64 {
	c := make(map[string]map[int32]int64, len(o))
	for topic, ps := range o {
		c[topic] = maps.Clone(ps)
	}
	return c
}
