package state

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// TaskStore is one task's state: a write-back cache (cache.go) in front of
// the task's key range in the replica's Pebble DB. Keys and values are
// bytes; the typed handles (registry.go) build the keys.
//
// A TaskStore is owned by the task's goroutine: every method must be called
// from it, and none takes a lock. Reads and writes are deterministic given
// the calls made, which is what lets a task replay from a checkpoint.
//
// Writes stay in memory until the checkpoint protocol (checkpoint.go) moves
// them: Flush, then, once Kafka has committed, CommitPending.
type TaskStore struct {
	store *Store
	id    TaskID
	// dataPrefix is the physical prefix of the task's data keys;
	// metaKey is its metadata record's key; rangeEnd bounds both.
	dataPrefix, metaKey, rangeEnd []byte

	dirty   dirtySet
	pending pendingSet
	// spare is a committed pending generation's map, emptied, for the
	// next dirty generation: a map that keeps its size does not grow and
	// rehash again at every checkpoint.
	spare map[string]*entry
	// flushed is the last Flush's mutations, for the next to reuse.
	flushed []Mutation
	clean   cleanSet // clean.go
	// unsynced is committed by Kafka, not yet written to Pebble (sync.go).
	unsynced unsyncedSet
	// uncached are prefixes of keys the clean generation never holds.
	uncached [][]byte
	// restore is the batch Restore fills; nil outside a restore.
	restore *pebble.Batch

	// Scratch buffers, reused across calls so the per-record path does not
	// allocate: keyBuf for physical keys (this file, checkpoint.go);
	// stateKey and valueBuf for the typed handles' keys and values.
	keyBuf, stateKey, valueBuf []byte
}

func newTaskStore(s *Store, id TaskID) *TaskStore {
	prefix := appendTaskPrefix(nil, id)
	return &TaskStore{
		store:      s,
		id:         id,
		dataPrefix: append(prefix[:taskPrefixLen:taskPrefixLen], taskData),
		metaKey:    append(prefix[:taskPrefixLen:taskPrefixLen], taskMeta),
		rangeEnd:   prefixEnd(prefix),
	}
}

// ID returns the task this view belongs to.
func (t *TaskStore) ID() TaskID { return t.id }

// physical returns the Pebble key of logical key in t.keyBuf, valid until
// the next call.
func (t *TaskStore) physical(key []byte) []byte {
	t.keyBuf = append(append(t.keyBuf[:0], t.dataPrefix...), key...)
	return t.keyBuf
}

// Get returns key's value as the task sees it: its latest Set or Delete
// since the last checkpoint (dirty, then pending), else what the last
// committed checkpoint left in Pebble.
//
// The caller must not modify the returned slice. It stays valid until the
// next Set or Delete of key on this TaskStore; a decoder that keeps the
// bytes longer must copy them.
//
// An error is Pebble's (I/O, corruption) or ErrClosed: the engine fails the
// task, which restarts from its last checkpoint.
func (t *TaskStore) Get(key []byte) (value []byte, ok bool, err error) {
	if e := t.dirty.get(key); e != nil {
		return e.value, !e.tombstone, nil
	}
	if e := t.pending.get(key); e != nil {
		return e.value, !e.tombstone, nil
	}
	if e := t.clean.m[string(key)]; e != nil {
		return e.value, !e.tombstone, nil
	}
	if t.store.closed.Load() {
		return nil, false, ErrClosed
	}
	cacheable := t.cacheable(key)
	if !cacheable && len(t.unsynced.list) > 0 {
		// Its committed writes may wait on the unsynced list, which is
		// not searched: such keys are read by Scan, which syncs too.
		if err := t.Sync(); err != nil {
			return nil, false, err
		}
	}
	if cacheable && !t.clean.loaded {
		if err := t.warm(); err != nil {
			return nil, false, fmt.Errorf("state: task %v: loading the cache: %w", t.id, err)
		}
		if e := t.clean.m[string(key)]; e != nil {
			return e.value, !e.tombstone, nil
		}
	}
	if cacheable && t.clean.complete {
		return nil, false, nil
	}
	v, closer, err := t.store.db.Get(t.physical(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("state: task %v: get: %w", t.id, err)
	}
	value = append(make([]byte, 0, len(v)), v...)
	if cacheable {
		t.cacheRead(key, value)
	}
	return value, true, closer.Close()
}

// Set records key = value in the dirty cache. Nothing reaches Pebble until
// the checkpoint that covers it commits. Both slices are copied: they are
// safe to reuse after Set returns.
func (t *TaskStore) Set(key, value []byte) { t.dirty.put(key, value, false, false) }

// SetNew is Set for a key the caller knows to be absent: Get would report
// it so. The store then knows its local copy does not have the key either,
// and a deletion before the next sync need not reach it (sync.go): the
// engine's timers, made and fired within seconds, are set this way. A key
// that is present must not be set with SetNew: a later deletion of it
// might not reach the local copy.
func (t *TaskStore) SetNew(key, value []byte) { t.dirty.put(key, value, false, true) }

// Delete records the deletion of key in the dirty cache: reads see it
// absent, and the next Flush emits a tombstone for it (whether or not
// Pebble has the key: finding out would cost a read). key is safe to reuse
// after Delete returns.
func (t *TaskStore) Delete(key []byte) { t.dirty.put(key, nil, true, false) }

// DirtyBytes approximates the memory the dirty cache holds: keys, values
// and a fixed per-entry overhead. The engine checkpoints early when the sum
// over its tasks nears its memory budget, so that state never has to be
// spilled to Pebble ahead of Kafka. The pending generation is not counted.
func (t *TaskStore) DirtyBytes() int { return t.dirty.bytes }

// DirtyKeys returns the number of keys written (set or deleted) since the
// last Flush.
func (t *TaskStore) DirtyKeys() int { return len(t.dirty.m) }

// Drop forgets the task: it discards the dirty and pending generations and
// any unfinished restore, and deletes the task's whole key range from
// Pebble, its checkpoint metadata included. The engine calls it when the
// task is revoked and its local state is not worth keeping; other tasks'
// keys are untouched. The TaskStore stays usable, empty.
func (t *TaskStore) Drop() error {
	t.discardCache()
	t.discardRestore()
	t.resetClean(false)
	t.unsynced = unsyncedSet{}
	if t.store.closed.Load() {
		return ErrClosed
	}
	start := t.dataPrefix[:taskPrefixLen]
	if err := t.store.db.DeleteRange(start, t.rangeEnd, t.store.writeOpts); err != nil {
		return fmt.Errorf("state: task %v: drop: %w", t.id, err)
	}
	t.resetClean(true) // known empty
	return nil
}

// discardCache drops the dirty and pending generations.
func (t *TaskStore) discardCache() {
	t.dirty = dirtySet{seq: t.dirty.seq}
	t.pending = pendingSet{}
	clear(t.flushed) // no references to the dropped entries
}
