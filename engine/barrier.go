package engine

// This file owns a task's side of a checkpoint: the barrier that cuts
// it between two records (snapshot, changelog writes), the hold while the
// transaction commits, and the state commit after it.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/checkpoint"
	"github.com/weirstream/weir/state"
)

// snapshot is what a barrier captures: the offsets of exactly the records
// processed before it, the epoch holding their outputs, and the changelog
// records that carry the state they changed.
type snapshot struct {
	task    TaskID
	cp      int64
	offsets map[string]kgo.EpochOffset
	epoch   *checkpoint.Epoch
	err     error
	// fail is an error writing the changelog: the checkpoint cannot commit.
	fail error
	// produced counts the records produced in the epoch, changelog
	// included: with it and unchanged offsets, there is nothing to commit.
	produced int
	// stateful is set when the task has a store whose flushed writes go
	// to Pebble once Kafka has the checkpoint.
	stateful bool
	// clNext is the changelog positions of the last committed state, and
	// clPending the positions the records written at this barrier and at
	// every earlier one not committed since reached once they are
	// acknowledged: together, the positions after this checkpoint.
	// changelog is this barrier's own records.
	clNext    map[string]int64
	clPending []*changelogAcks
	changelog *changelogAcks
	// eventTime is the task's event-time state at the barrier.
	eventTime map[string]string
}

// changelogNext returns the changelog positions the snapshot's state
// includes. Call it only after the snapshot's epoch completed.
func (s snapshot) changelogNext() map[string]int64 {
	next := maps.Clone(s.clNext)
	if next == nil {
		next = map[string]int64{}
	}
	for _, acks := range s.clPending {
		acks.mu.Lock()
		for topic, off := range acks.next {
			if off > next[topic] {
				next[topic] = off
			}
		}
		acks.mu.Unlock()
	}
	return next
}

// clAcks is how many of the task's pending changelog writes the snapshot
// covers: those its commit makes committed (see Task.commitState).
func (s snapshot) clAcks() int { return len(s.clPending) }

// changelogAcks collects, from produce callbacks on any goroutine, the
// offset after the last acknowledged changelog record of each topic.
type changelogAcks struct {
	mu            sync.Mutex
	next          map[string]int64
	records, size int
	// promised counts the records whose promise has run: once it is
	// records, the producer holds none of them.
	promised atomic.Int64
}

// barrier cuts the task between two records: it writes the state changed
// since the last barrier to the changelog, seals the current epoch, opens
// the next and returns the offsets processed so far.
func (t *Task) barrier() snapshot {
	// Results of records in flight belong before the barrier, with the
	// offsets that passed them.
	var fail error
	if err := t.flushInFlight(true); err != nil {
		// A record in flight failed under the fail policy: the task
		// stops, and this checkpoint must not commit.
		if t.err == nil {
			t.err = err
		}
		fail = err
	}
	for _, fn := range t.onBarrier {
		if err := fn(); err != nil {
			if t.err == nil {
				t.err = err
			}
			fail = errors.Join(fail, err)
		}
	}
	// Tell downstream stages where event time is, inside this epoch.
	t.sendWatermark(true)
	var cl *changelogAcks
	if t.store != nil {
		t.saveTimers()
		var clErr error
		cl, clErr = t.writeChangelog(t.store.Flush())
		fail = errors.Join(fail, clErr)
		if cl != nil {
			t.clPending = append(t.clPending, cl)
		}
	}
	sealed := t.epoch
	t.newEpoch(sealed)
	sealed.Seal()
	snap := snapshot{
		task: t.id, cp: t.cp, offsets: maps.Clone(t.next), epoch: sealed, err: t.err, fail: fail,
		produced: t.produced, stateful: t.store != nil, clNext: t.clNext, changelog: cl,
		clPending: slices.Clone(t.clPending),
		eventTime: t.saveEventTime(),
	}
	t.produced = 0
	return snap
}

// writeChangelog produces each mutation to its operator's changelog
// topic, in the partition of the task, as part of the current epoch.
// Tombstones are records without a value; a value is never nil, so the
// two stay apart.
func (t *Task) writeChangelog(muts []state.Mutation) (*changelogAcks, error) {
	if len(muts) == 0 {
		return nil, nil
	}
	acks := &changelogAcks{next: map[string]int64{}}
	ep := t.epoch
	promise := func(r *kgo.Record, err error) {
		if err == nil {
			acks.mu.Lock()
			if r.Offset+1 > acks.next[r.Topic] {
				acks.next[r.Topic] = r.Offset + 1
			}
			acks.mu.Unlock()
		} else {
			err = newProduceError(r, err)
		}
		ep.Ack(err)
		acks.promised.Add(1)
	}
	recs := t.changelogRecords(len(muts))
	t.clRecAcks = acks
	for i, m := range muts {
		op, err := state.OperatorOf(m.Key)
		if err != nil {
			return acks, fmt.Errorf("task %s: changelog: %w", t.id, err)
		}
		topic, ok := t.changelogs[string(op)]
		if !ok {
			return acks, fmt.Errorf("task %s: state of operator %q, which declared none (AddStatefulOperator)", t.id, op)
		}
		v := m.Value
		if !m.Tombstone && v == nil {
			v = []byte{}
		}
		acks.records++
		acks.size += len(m.Key) + len(v)
		t.produced++
		ep.Add()
		r := &recs[i]
		*r = kgo.Record{Topic: topic, Partition: t.id.Partition, Key: m.Key, Value: v, Context: controlRecord}
		t.producer.Produce(t.ctx, r, promise)
	}
	return acks, nil
}

// changelogRecords returns an array of n records for a checkpoint's
// changelog: the last checkpoint's when the producer is done with every
// record of it (each promise has run, after which franz-go no longer
// touches a record), else a new one. At a steady state a task then
// allocates no records for its changelog; an array is not kept past
// maxKeptChangelogRecords, so a burst's does not stay.
func (t *Task) changelogRecords(n int) []kgo.Record {
	prev := t.clRecAcks
	if prev != nil && prev.promised.Load() == int64(prev.records) && cap(t.clRecs) >= n {
		return t.clRecs[:n]
	}
	recs := make([]kgo.Record, n)
	if n <= maxKeptChangelogRecords {
		t.clRecs = recs
	} else {
		t.clRecs = nil
	}
	return recs
}

// maxKeptChangelogRecords bounds the array kept for the next checkpoint's
// changelog records (Task.clRecs).
const maxKeptChangelogRecords = 1 << 16

// held is a task at a checkpoint's barrier. With exactly-once the task
// waits there, producing nothing, until release brings the outcome: what
// it would produce next must not join the transaction that commits the
// offsets of its barrier.
type held struct {
	tr      *taskRunner
	snap    snapshot
	release chan heldOutcome // nil when the task does not wait
}

// heldOutcome ends a hold: commit says the checkpoint committed, and the
// task commits its state (checkpoint cp, changelog positions clNext) to
// Pebble before it goes on; otherwise it goes on with its state pending,
// to be committed by a later checkpoint.
type heldOutcome struct {
	commit bool
	cp     int64
	clNext map[string]int64
	clAcks int
}

// barrier takes a barrier in the task; with hold, the task then waits for
// h.release (or its stop). It returns a nil held for a task still
// restoring (it has nothing to commit), and false if the task or ctx ended
// first.
func (r *taskRunner) barrier(ctx context.Context, hold bool) (*held, bool) {
	h := &held{tr: r}
	if hold {
		h.release = make(chan heldOutcome, 1)
	}
	ready := make(chan bool, 1)
	c := taskCmd{done: make(chan struct{}), fn: func(t *Task) {
		if t == nil {
			ready <- false
			return
		}
		h.snap = t.barrier()
		if h.snap.err != nil {
			r.fatal(h.snap.err)
		}
		ready <- true
		if !hold {
			return
		}
		select {
		case o := <-h.release:
			if o.commit {
				if err := t.commitState(o.cp, o.clNext, o.clAcks); err != nil {
					t.err = err
					r.fatal(err)
				}
			}
		case <-r.stop:
		}
	}}
	select {
	case r.ctrl <- c:
	case <-r.done:
		return nil, false
	case <-ctx.Done():
		return nil, false
	}
	if !<-ready {
		return nil, true
	}
	return h, true
}

// commitState makes checkpoint cp, which Kafka has committed, the task's
// committed checkpoint: it writes the state flushed at its barrier to
// Pebble with the changelog positions that state includes (clNext), so a
// restart restores only the changelog after them. clAcks is how many of
// the pending changelog writes the checkpoint covered (snapshot.clAcks).
func (t *Task) commitState(cp int64, clNext map[string]int64, clAcks int) error {
	t.cp = cp + 1
	t.clNext = clNext
	t.clPending = t.clPending[clAcks:]
	if t.store == nil {
		return nil
	}
	if err := t.store.CommitPending(cp, clNext); err != nil {
		return fmt.Errorf("task %s: committing state of checkpoint %d: %w", t.id, cp, err)
	}
	for _, fn := range t.onCommitted {
		if err := fn(cp); err != nil {
			return fmt.Errorf("task %s: after checkpoint %d: %w", t.id, cp, err)
		}
	}
	return nil
}
