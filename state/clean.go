package state

import (
	"bytes"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
)

// The clean generation is a read cache of what Pebble holds for a task:
// the values of committed keys, kept in memory so that a key read again
// after the checkpoint that wrote it (a window's accumulator, a session
// list) does not go back to Pebble. CommitPending moves the committed
// entries into it, which costs no copy: they are the pending entries.
//
// While the task's whole committed state fits the replica's state cache,
// the generation is complete: every committed key is in it, so a key that
// no generation has does not exist, and a read of a key that was never
// written (a window that does not exist yet, the accumulator of a session
// just merged) is answered from memory too. Pebble is then only the local
// durable copy, written once per sync interval (sync.go) and read when the
// task starts. When
// the cache is full the task evicts entries at random, and its
// generation stops being complete: a miss then reads Pebble, and what it
// finds joins the cache while there is room. Flink keeps window state on
// the heap and needs RocksDB for state larger than memory; a task here
// gets the heap's speed while its state fits and Pebble's reach beyond.

// cacheBudget is the replica's state cache, shared by its tasks.
type cacheBudget struct {
	limit int64
	used  atomic.Int64
}

// cleanSet is one task's clean generation.
type cleanSet struct {
	// m holds no tombstones but unsynced ones: a deleted key is not in m
	// once Pebble has the deletion.
	m     map[string]*entry
	bytes int64
	// pinned is the bytes of m's unsynced entries, which eviction skips.
	pinned int64
	// complete: m holds every committed key of the task outside the
	// uncached prefixes, so a miss in every generation means absent.
	complete bool
	// loaded: the task tried to load its committed state since it last
	// changed behind the cache (start, restore); see TaskStore.warm.
	loaded bool
}

// cacheable reports whether key may be held by the clean generation: not
// under a prefix the task's owner reads only by Scan (timers).
func (t *TaskStore) cacheable(key []byte) bool {
	for _, p := range t.uncached {
		if bytes.HasPrefix(key, p) {
			return false
		}
	}
	return true
}

// Uncached names a prefix of keys that are written and scanned but never
// read by Get (the engine's timers, whose queue is in memory): the read
// cache does not spend its room on them, and Get of such a key always
// reads Pebble.
func (t *TaskStore) Uncached(prefix []byte) {
	for _, p := range t.uncached {
		if bytes.Equal(p, prefix) {
			return
		}
	}
	t.uncached = append(t.uncached, bytes.Clone(prefix))
}

// admit makes room for n more bytes in the clean generation, evicting the
// task's own entries at random if the replica's cache is full, and reports
// whether they fit. Eviction ends completeness.
func (t *TaskStore) admit(n int64) bool {
	b := t.store.cache
	if b.used.Add(n) <= b.limit {
		return true
	}
	t.evict(n)
	t.clean.complete = false
	if b.used.Load() <= b.limit {
		return true
	}
	b.used.Add(-n)
	return false
}

// evict drops an eighth of the task's evictable (not pinned) entries, at
// least n bytes' worth, or all it has: one eviction pays for many
// admissions. Map iteration order is random enough. It reports whether it
// dropped any.
func (t *TaskStore) evict(n int64) bool {
	evictable := t.clean.bytes - t.clean.pinned
	if evictable <= 0 {
		return false
	}
	target := max(n, evictable/8)
	var freed int64
	for k, e := range t.clean.m {
		if freed >= target {
			break
		}
		if e.unsynced {
			continue
		}
		delete(t.clean.m, k)
		freed += int64(e.size())
	}
	t.clean.bytes -= freed
	t.store.cache.used.Add(-freed)
	return freed > 0
}

// pin makes e, a committed entry Pebble does not have yet, the clean
// generation's entry of key k in place of old (nil if none). It stays
// whatever the cache's room, until the next sync unpins it: the unsynced
// generation is bounded on its own (syncCap), and other entries are
// evicted to make room for it.
func (t *TaskStore) pin(k string, e, old *entry) {
	delta := int64(e.size())
	if old != nil {
		delta -= int64(old.size())
		if old.unsynced {
			t.clean.pinned -= int64(old.size())
		}
	}
	b := t.store.cache
	if b.used.Add(delta) > b.limit && delta > 0 && t.evict(delta) {
		t.clean.complete = false
	}
	if t.clean.m == nil {
		t.clean.m = make(map[string]*entry)
	}
	t.clean.m[k] = e
	t.clean.bytes += delta
	t.clean.pinned += int64(e.size())
}

// cacheRemove drops e, the clean generation's entry of key k, if it still
// is.
func (t *TaskStore) cacheRemove(k string, e *entry) {
	if t.clean.m[k] != e {
		return
	}
	delete(t.clean.m, k)
	if e.unsynced {
		t.clean.pinned -= int64(e.size())
	}
	t.clean.bytes -= int64(e.size())
	t.store.cache.used.Add(-int64(e.size()))
}

// cachePut records a committed value of key (the entry is the pending
// generation's: never modified). Unless the generation is complete, only
// keys it already holds are updated: what was never read need not be.
func (t *TaskStore) cachePut(e *entry) {
	old := t.clean.m[keyString(e.key)]
	if old == nil && !t.clean.complete {
		return
	}
	e.next = nil // the dirty generation's skiplist links are done with
	delta := int64(e.size())
	if old != nil {
		delta -= int64(old.size())
	}
	if delta > 0 && !t.admit(delta) {
		if old != nil {
			t.cacheDrop(e.key)
		}
		return
	}
	if delta <= 0 {
		t.store.cache.used.Add(delta)
	}
	if t.clean.m == nil {
		t.clean.m = make(map[string]*entry)
	}
	t.clean.m[keyString(e.key)] = e
	t.clean.bytes += delta
}

// cacheDrop forgets key's committed value.
func (t *TaskStore) cacheDrop(key []byte) {
	if e := t.clean.m[string(key)]; e != nil {
		t.cacheRemove(string(key), e)
	}
}

// cacheRead adds a value read from Pebble, if there is room without
// evicting: a read-through cache.
func (t *TaskStore) cacheRead(key, value []byte) {
	t.hold(&entry{key: bytes.Clone(key), value: value})
}

// resetClean empties the clean generation; complete says whether the
// task's committed state is known to be empty.
func (t *TaskStore) resetClean(complete bool) {
	t.store.cache.used.Add(-t.clean.bytes)
	t.clean = cleanSet{complete: complete, loaded: complete}
}

// warm loads the task's committed state into the clean generation, once
// after the task (re)starts, and makes it complete if all of it fits.
// An empty task costs one seek.
func (t *TaskStore) warm() error {
	t.clean.loaded = true
	if t.store.closed.Load() {
		return ErrClosed
	}
	it, err := t.store.db.NewIter(&pebble.IterOptions{LowerBound: t.dataPrefix, UpperBound: prefixEnd(t.dataPrefix)})
	if err != nil {
		return err
	}
	// What waits to be written (sync.go) is in the generation already,
	// and newer than Pebble.
	complete := true
	for ok := it.First(); ok && complete; ok = it.Next() {
		key := it.Key()[len(t.dataPrefix):]
		if _, ok := t.clean.m[string(key)]; ok || !t.cacheable(key) {
			continue
		}
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return err
		}
		e := &entry{key: bytes.Clone(key), value: bytes.Clone(v)}
		if e.value == nil {
			e.value = []byte{}
		}
		complete = t.hold(e)
	}
	if err := it.Close(); err != nil {
		return err
	}
	t.clean.complete = complete
	return nil
}

// hold adds e to the clean generation if the cache has room without
// evicting.
func (t *TaskStore) hold(e *entry) bool {
	n := int64(e.size())
	if t.store.cache.used.Add(n) > t.store.cache.limit {
		t.store.cache.used.Add(-n)
		return false
	}
	if t.clean.m == nil {
		t.clean.m = make(map[string]*entry)
	}
	t.clean.m[keyString(e.key)] = e
	t.clean.bytes += n
	return true
}
