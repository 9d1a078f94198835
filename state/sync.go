package state

import (
	"fmt"
	"slices"
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
// away, a fired window) not at all; Pebble's compactions shrink with its
// writes. A process that dies loses the generation, and restarts from the
// older checkpoint record, replaying the changelog from there; Store.Close
// writes it.
//
// The generation is not a map of its own: a committed entry of a key the
// clean generation may hold (clean.go) goes there, pinned (never evicted)
// until it is written, tombstones included, so one lookup per key both
// updates the read cache and replaces the key's older unsynced write; the
// list below keeps the commit order for the write. Entries of keys the
// clean generation never holds (timers) are only on the list.
type unsyncedSet struct {
	// list is every committed entry Pebble does not have, in commit
	// order; an entry superseded by a later commit of its key is marked
	// skip and not written. A key outside the clean generation may be on
	// it more than once: the batch applies them in order.
	list  []*entry
	bytes int // of the entries not skipped
	// skipped counts the list's skipped entries; the list is compacted
	// when they are half of it, so that a key committed at every
	// checkpoint does not keep every version alive until the sync.
	skipped int
	// meta is the newest committed checkpoint record, nil when none is
	// waiting; since is when the oldest waiting commit was made.
	meta  []byte
	since time.Time
}

// syncCap is how large the unsynced generation may grow before it is
// written whatever the interval: a quarter of the state cache, at least
// 4 MiB.
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
	for _, e := range t.pending.list {
		e.next = nil // the dirty generation's skiplist links are done with
		if t.cacheable(e.key) {
			t.deferCached(e)
		} else {
			t.deferUncached(e)
		}
	}
	if u := &t.unsynced; u.skipped > 1024 && u.skipped > len(u.list)/2 {
		u.list = slices.DeleteFunc(u.list, func(e *entry) bool { return e.skip })
		u.skipped = 0
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

// deferCached takes one committed entry of a cacheable key into the
// unsynced generation: pinned in the clean generation, replacing the key's
// committed entry there.
func (t *TaskStore) deferCached(e *entry) {
	k := keyString(e.key)
	old := t.clean.m[k]
	switch {
	case old != nil && old.unsynced:
		// Written since the last sync: Pebble has not changed since.
		t.unsynced.supersede(old)
		e.fresh = old.fresh
	case old != nil:
		e.fresh = false // read from Pebble or written to it
	default:
		// A complete clean generation holds every committed key, and
		// unsynced deletions too: Pebble does not have the key.
		e.fresh = t.clean.complete || e.created
	}
	if e.tombstone && e.fresh {
		// Made and deleted since the last sync (a merged session, a
		// fired window): Pebble never needs to hear of it.
		if old != nil {
			t.cacheRemove(k, old)
		}
		return
	}
	e.unsynced = true
	t.unsynced.add(e)
	t.pin(k, e, old)
}

// add puts a committed entry on the list.
func (u *unsyncedSet) add(e *entry) {
	u.list = append(u.list, e)
	u.bytes += e.size()
}

// supersede marks an entry on the list replaced by a later commit of its
// key.
func (u *unsyncedSet) supersede(old *entry) {
	old.skip = true
	u.bytes -= old.size()
	u.skipped++
}

// deferUncached takes one committed entry of a key the clean generation
// does not hold (a timer) into the unsynced generation. Whether Pebble has
// such a key is known only when it was set with SetNew: such an entry is
// pinned in the clean generation until the sync, so that its deletion
// before then finds it and neither reaches Pebble. Any other goes on the
// list alone.
func (t *TaskStore) deferUncached(e *entry) {
	k := keyString(e.key)
	old := t.clean.m[k] // only ever a pinned, fresh entry
	if old != nil {
		t.unsynced.supersede(old)
	}
	e.fresh = old != nil || e.created
	switch {
	case e.tombstone && e.fresh:
		if old != nil {
			t.cacheRemove(k, old)
		}
		return
	case e.fresh:
		e.unsynced = true
		t.pin(k, e, old)
	}
	t.unsynced.add(e)
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
// pending generation too, which is newer, with that record instead, and
// moves it into the clean generation.
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
	for _, e := range t.unsynced.list {
		if e.skip {
			continue
		}
		if err := put(e); err != nil {
			return fmt.Errorf("state: task %v: writing committed state: %w", t.id, err)
		}
	}
	if commit != nil {
		meta = commit
		// In key order: Pebble applies a sorted batch to its memtable much
		// faster than one in random order, more than the sort costs. A key
		// also on the list is written twice; the later write wins.
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
	t.synced()
	if commit != nil {
		for _, e := range t.pending.list {
			switch {
			case e.tombstone:
				t.cacheDrop(e.key)
			case t.cacheable(e.key):
				t.cachePut(e)
			}
		}
	}
	return nil
}

// synced empties the unsynced generation once Pebble has it: its entries
// in the clean generation are unpinned, its tombstones leave it.
func (t *TaskStore) synced() {
	for _, e := range t.unsynced.list {
		if e.skip || !e.unsynced {
			continue
		}
		e.unsynced, e.fresh = false, false
		t.clean.pinned -= int64(e.size())
		if e.tombstone || !t.cacheable(e.key) {
			t.cacheRemove(keyString(e.key), e)
		}
	}
	// What was pinned beyond the cache's room goes now.
	if over := t.store.cache.used.Load() - t.store.cache.limit; over > 0 && t.evict(over) {
		t.clean.complete = false
	}
	list := t.unsynced.list
	clear(list)
	if cap(list) > maxSpareEntries {
		list = nil
	}
	t.unsynced = unsyncedSet{list: list[:0]}
}
