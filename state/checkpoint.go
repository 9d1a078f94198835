package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// The checkpoint protocol, as design.md orders it. At barrier N a task:
//
//  1. calls Flush and writes the returned mutations to its changelog
//     topics inside its open Kafka transaction;
//  2. flushes the producer and 3. commits the transaction with its input
//     offsets;
//  4. only then calls CommitPending(N, changelog offsets).
//
// If the transaction aborts (or anything before 3 fails), the task calls
// AbortPending and restarts from its last checkpoint. Between Flush and
// CommitPending reads see the flushed writes; Pebble does not have them.

// Mutation is one key's net change since the previous Flush: its new value,
// or a tombstone. Key is the logical key (without the task prefix), which
// is also the changelog record's key; the changelog partition is the task.
//
// Key and Value belong to the store and are never modified by it, also not
// after CommitPending; the caller must not modify them either (hand them
// to the producer as they are).
type Mutation struct {
	Key, Value []byte
	Tombstone  bool // Value is nil; the changelog record is a tombstone
}

// Flush moves the dirty cache into the pending generation and returns its
// mutations, in no particular order: step 1 of a checkpoint. Nothing is
// written to Pebble. Reads keep seeing the flushed writes, and Set and
// Delete start a new dirty generation.
//
// Flushing again before CommitPending or AbortPending merges the new
// writes into the same pending generation (newer wins per key) and returns
// only the new mutations; the next CommitPending commits them all.
//
// The returned slice is the store's, valid until the next Flush: the
// mutations' keys and values stay valid as said above, the slice holding
// them is reused.
func (t *TaskStore) Flush() []Mutation {
	if len(t.dirty.m) == 0 {
		return nil
	}
	es, ordered := t.dirty.entries()
	muts := t.mutations(len(es))
	for i, e := range es {
		// Full slice expressions: an append by the caller must not write
		// into the entry's spare capacity.
		muts[i] = Mutation{Key: e.key[:len(e.key):len(e.key)], Tombstone: e.tombstone}
		if !e.tombstone {
			muts[i].Value = e.value[:len(e.value):len(e.value)]
		}
	}
	t.pending.add(t.dirty.m, es, ordered)
	t.pending.bytes += t.dirty.bytes
	t.dirty = dirtySet{seq: t.dirty.seq, m: t.spare}
	t.spare = nil
	return muts
}

// mutations returns a slice of n mutations for Flush: the last Flush's
// (its references to older entries cleared), unless it is too small or
// n is past maxSpareEntries, so that a burst's slice is not kept.
func (t *TaskStore) mutations(n int) []Mutation {
	clear(t.flushed)
	if cap(t.flushed) >= n {
		t.flushed = t.flushed[:n]
		return t.flushed
	}
	muts := make([]Mutation, n)
	t.flushed = nil
	if n <= maxSpareEntries {
		t.flushed = muts
	}
	return muts
}

// CommitPending writes the pending generation to Pebble in one atomic
// batch, together with the task's checkpoint record (checkpointID and the
// changelog offsets the checkpoint covers, by topic), then drops the
// pending generation: step 4 of a checkpoint, called only after the Kafka
// transaction holding the same mutations has committed. With nothing
// pending it still records the checkpoint. The dirty generation is
// untouched.
//
// On error nothing was written and the pending generation is kept; the
// engine fails the task (recovery replays the changelog past the last
// recorded checkpoint, which Kafka has).
func (t *TaskStore) CommitPending(checkpointID int64, changelogOffsets map[string]int64) error {
	if t.store.closed.Load() {
		return ErrClosed
	}
	meta := encodeMeta(checkpointID, changelogOffsets, t.store.now().UnixMilli())
	// Either moves the committed entries into the clean generation.
	write := t.syncWith // with nothing unsynced: the pending generation and meta
	if t.store.syncInterval > 0 {
		write = t.deferCommit
	}
	if err := write(meta); err != nil {
		return fmt.Errorf("state: task %v: commit checkpoint %d: %w", t.id, checkpointID, err)
	}
	if m := t.pending.m; t.spare == nil && len(m) <= maxSpareEntries {
		clear(m)
		t.spare = m
	}
	t.pending = pendingSet{}
	return nil
}

// maxSpareEntries bounds the map kept for reuse (TaskStore.spare): a
// burst's map is not kept for good.
const maxSpareEntries = 1 << 18

// commitWithMeta adds the checkpoint record to b and commits it.
func (t *TaskStore) commitWithMeta(b *pebble.Batch, checkpointID int64, offsets map[string]int64) error {
	if err := b.Set(t.metaKey, encodeMeta(checkpointID, offsets, t.store.now().UnixMilli()), nil); err != nil {
		return err
	}
	return b.Commit(t.store.writeOpts)
}

// AbortPending returns the task to its last committed state: it discards
// the pending generation and the dirty one too, so every key reads as the
// last CommitPending (or FinishRestore) left it. The engine calls it when a
// checkpoint's Kafka transaction aborts: the task restarts from its last
// checkpoint and reprocesses the records after it, so writes made after
// the Flush are discarded with the flushed ones.
func (t *TaskStore) AbortPending() { t.discardCache() }

// Checkpoint returns the task's last committed checkpoint: its id and the
// changelog offsets (by topic) it covers. ok is false if the task has none
// in this store (new task, or dropped): restore from the changelog's start.
// An error is Pebble's, ErrClosed or ErrCorrupt.
func (t *TaskStore) Checkpoint() (id int64, changelogOffsets map[string]int64, ok bool, err error) {
	c, ok, err := t.LocalCheckpoint()
	return c.ID, c.Changelog, ok, err
}

// LocalCheckpoint is what the store records of a task's last committed
// checkpoint.
type LocalCheckpoint struct {
	ID int64
	// Changelog is the changelog offsets, by topic, the state includes.
	Changelog map[string]int64
	// CommittedAt is when the store recorded it (CommitPending or
	// FinishRestore): from then on the local state may fall behind the
	// changelog. Zero when the record predates this field.
	CommittedAt time.Time
}

// LocalCheckpoint returns the task's last committed checkpoint; see
// Checkpoint.
func (t *TaskStore) LocalCheckpoint() (LocalCheckpoint, bool, error) {
	if t.store.closed.Load() {
		return LocalCheckpoint{}, false, ErrClosed
	}
	// The newest checkpoint record may still wait to be written (sync.go):
	// the state Get and Scan see is its.
	v := t.unsynced.meta
	if v == nil {
		pv, closer, err := t.store.db.Get(t.metaKey)
		if errors.Is(err, pebble.ErrNotFound) {
			return LocalCheckpoint{}, false, nil
		}
		if err != nil {
			return LocalCheckpoint{}, false, fmt.Errorf("state: task %v: read checkpoint: %w", t.id, err)
		}
		defer closer.Close()
		v = pv
	}
	id, offsets, at, err := decodeMeta(v)
	if err != nil {
		return LocalCheckpoint{}, false, fmt.Errorf("state: task %v: read checkpoint: %w", t.id, err)
	}
	c := LocalCheckpoint{ID: id, Changelog: offsets}
	if at != 0 {
		c.CommittedAt = time.UnixMilli(at)
	}
	return c, true, nil
}

// metaVersion is the version of the checkpoint record:
//
//	version uvarint | checkpoint id varint | n uvarint |
//	n × (topic length uvarint | topic | offset varint), topics ascending |
//	committed at varint (Unix ms; since version 2)
const metaVersion = 2

func encodeMeta(id int64, offsets map[string]int64, at int64) []byte {
	b := binary.AppendUvarint(nil, metaVersion)
	b = binary.AppendVarint(b, id)
	b = binary.AppendUvarint(b, uint64(len(offsets)))
	for _, topic := range slices.Sorted(maps.Keys(offsets)) {
		b = appendPart(b, []byte(topic))
		b = binary.AppendVarint(b, offsets[topic])
	}
	return binary.AppendVarint(b, at)
}

// decodeMeta reads a checkpoint record of version 1 or 2 (at is 0 for 1).
func decodeMeta(b []byte) (id int64, offsets map[string]int64, at int64, err error) {
	bad := func(what string) error { return fmt.Errorf("%w: checkpoint record %x: %s", ErrCorrupt, b, what) }
	v, n := binary.Uvarint(b)
	if n <= 0 || (v != 1 && v != metaVersion) {
		return 0, nil, 0, bad("version")
	}
	rest := b[n:]
	id, n = binary.Varint(rest)
	if n <= 0 {
		return 0, nil, 0, bad("id")
	}
	rest = rest[n:]
	count, n := binary.Uvarint(rest)
	if n <= 0 || count > uint64(len(rest)) {
		return 0, nil, 0, bad("count")
	}
	rest = rest[n:]
	offsets = make(map[string]int64, count)
	for range count {
		topic, r, ok := readPart(rest)
		if !ok {
			return 0, nil, 0, bad("topic")
		}
		off, n := binary.Varint(r)
		if n <= 0 {
			return 0, nil, 0, bad("offset")
		}
		offsets[string(topic)] = off
		rest = r[n:]
	}
	if v >= 2 {
		if at, n = binary.Varint(rest); n <= 0 {
			return 0, nil, 0, bad("time")
		}
		rest = rest[n:]
	}
	if len(rest) != 0 {
		return 0, nil, 0, bad("trailing bytes")
	}
	return id, offsets, at, nil
}
