package state

import (
	"fmt"
	"time"
)

// The unsynced generation holds what Kafka has committed and Pebble does
// not have yet. Pebble is the task's local copy, for a fast restart: it may
// fall behind Kafka (a restart replays the changelog from the offsets its
// checkpoint record names), never get ahead. So CommitPending need not
// write Pebble at every checkpoint: it moves the committed entries here,
// and writes them, with the newest checkpoint record, every sync interval
// or when they grow large. A key updated at every checkpoint (a window's
// accumulator) then reaches Pebble once per interval instead of once per
// checkpoint, and a key created and deleted in between (a session merged
// away, a fired window) as one tombstone; Pebble's compactions shrink
// with its writes. A process that dies loses the generation, and restarts
// from the older checkpoint record, replaying the changelog from there;
// Store.Close writes it.
type unsyncedSet struct {
	m     map[string]*entry // tombstones included
	bytes int
	// meta is the newest committed checkpoint record, nil when none is
	// waiting; since is when the oldest waiting commit was made.
	meta  []byte
	since time.Time
}

// syncCap is how large the unsynced generation may grow before it is
// written whatever the interval: a quarter of the state cache, at least
// 4 MiB. Its entries are mostly the clean generation's too.
func (t *TaskStore) syncCap() int {
	if t.store.syncBytes > 0 {
		return t.store.syncBytes
	}
	return int(max(4<<20, t.store.cache.limit/4))
}

// deferCommit takes a commit's entries and checkpoint record into the unsynced
// generation, and writes it if it is due.
func (t *TaskStore) deferCommit(meta []byte) error {
	if t.unsynced.bytes+t.pending.bytes >= t.syncCap() {
		// Due anyway: one batch, without taking the commit in first.
		return t.syncWith(meta)
	}
	if t.unsynced.m == nil {
		t.unsynced.m = make(map[string]*entry, len(t.pending.list))
	}
	for _, e := range t.pending.list {
		e.next = nil // the dirty generation's skiplist links are done with
		k := keyString(e.key)
		if old, ok := t.unsynced.m[k]; ok {
			t.unsynced.bytes -= old.size()
			e.fresh = old.fresh // Pebble has not changed since
		} else {
			// The clean generation still holds the state before this
			// commit: complete, it says whether Pebble has the key.
			e.fresh = t.clean.complete && t.clean.m[k] == nil && t.cacheable(e.key)
		}
		if e.tombstone && e.fresh {
			// Made and deleted since the last sync (a merged session, a
			// fired window): Pebble never needs to hear of it.
			delete(t.unsynced.m, k)
			continue
		}
		t.unsynced.m[k] = e
		t.unsynced.bytes += e.size()
	}
	now := t.store.now()
	if t.unsynced.meta == nil {
		t.unsynced.since = now
	}
	t.unsynced.meta = meta
	if now.Sub(t.unsynced.since) >= t.store.syncInterval || t.unsynced.bytes >= t.syncCap() {
		return t.Sync()
	}
	return nil
}

// Sync writes what Kafka has committed and Pebble does not have yet, with
// the newest checkpoint record, in one batch. Scan, Restore and
// FinishRestore, which read or write Pebble directly, call it first, and
// Store.Close calls it for every task; the engine need not.
func (t *TaskStore) Sync() error {
	if t.unsynced.meta == nil {
		return nil
	}
	if t.store.closed.Load() {
		return ErrClosed
	}
	return t.syncWith(nil)
}

// syncWith writes the unsynced generation in one batch with the newest
// checkpoint record. Given a commit's record (commit), it writes the
// pending generation too, which is newer, with that record instead.
func (t *TaskStore) syncWith(commit []byte) error {
	b := t.store.db.NewBatch()
	defer b.Close()
	put := func(e *entry) error {
		if e.tombstone {
			return b.Delete(t.physical(e.key), nil)
		}
		return b.Set(t.physical(e.key), e.value, nil)
	}
	meta := t.unsynced.meta
	for _, e := range t.unsynced.m {
		if commit != nil && t.pending.get(e.key) != nil {
			continue
		}
		if err := put(e); err != nil {
			return fmt.Errorf("state: task %v: writing committed state: %w", t.id, err)
		}
	}
	if commit != nil {
		meta = commit
		// In key order: Pebble applies a sorted batch to its memtable much
		// faster than one in random order, more than the sort costs.
		for _, e := range t.pending.sorted() {
			if err := put(e); err != nil {
				return fmt.Errorf("state: task %v: writing committed state: %w", t.id, err)
			}
		}
	}
	if err := b.Set(t.metaKey, meta, nil); err != nil {
		return fmt.Errorf("state: task %v: writing committed state: %w", t.id, err)
	}
	if err := b.Commit(t.store.writeOpts); err != nil {
		return fmt.Errorf("state: task %v: writing committed state: %w", t.id, err)
	}
	t.unsynced = unsyncedSet{}
	return nil
}
