package state

import "fmt"

// restoreBatchBytes is the size at which Restore commits its batch and
// starts another, so a long changelog restore holds bounded memory.
// Committing part of a restore early is safe: the records come from the
// committed changelog (Kafka has them), and until FinishRestore the task's
// checkpoint record still names the old offsets, so a restore cut short
// starts again from there and rewrites the same keys.
const restoreBatchBytes = 4 << 20

// Restore applies one changelog record straight to Pebble, bypassing the
// cache: value for key, or a tombstone. It is for recovery only: the
// engine reads the task's changelog from the offsets Checkpoint returned
// (or from the start) and calls Restore for each record, then
// FinishRestore, all before the task processes any record. With dirty or
// pending writes it returns ErrNotIdle.
//
// key and value are copied; safe to reuse after return.
func (t *TaskStore) Restore(key, value []byte, tombstone bool) error {
	if len(t.dirty.m) > 0 || len(t.pending.list) > 0 {
		return fmt.Errorf("%w: task %v", ErrNotIdle, t.id)
	}
	if t.store.closed.Load() {
		return ErrClosed
	}
	if err := t.Sync(); err != nil {
		return err
	}
	if t.restore == nil {
		t.restore = t.store.db.NewBatch()
		t.resetClean(false) // Pebble changes behind the cache
	}
	var err error
	if tombstone {
		err = t.restore.Delete(t.physical(key), nil)
	} else {
		err = t.restore.Set(t.physical(key), value, nil)
	}
	if err == nil && t.restore.Len() >= restoreBatchBytes {
		err = t.restore.Commit(t.store.writeOpts)
		t.discardRestore()
	}
	if err != nil {
		return fmt.Errorf("state: task %v: restore: %w", t.id, err)
	}
	return nil
}

// FinishRestore commits what Restore buffered together with the task's
// checkpoint record: the checkpoint id and the changelog offsets the
// restore reached (the next offset to read, by topic). Checkpoint then
// returns them, and the task may start processing.
func (t *TaskStore) FinishRestore(checkpointID int64, changelogOffsets map[string]int64) error {
	if len(t.dirty.m) > 0 || len(t.pending.list) > 0 {
		return fmt.Errorf("%w: task %v", ErrNotIdle, t.id)
	}
	if t.store.closed.Load() {
		return ErrClosed
	}
	if err := t.Sync(); err != nil {
		return err
	}
	b := t.restore
	if b == nil {
		b = t.store.db.NewBatch()
	}
	t.resetClean(false) // Pebble changes behind the cache
	t.restore = nil
	defer b.Close()
	if err := t.commitWithMeta(b, checkpointID, changelogOffsets); err != nil {
		return fmt.Errorf("state: task %v: finish restore: %w", t.id, err)
	}
	return nil
}

// discardRestore drops an unfinished restore batch.
func (t *TaskStore) discardRestore() {
	if t.restore != nil {
		_ = t.restore.Close()
		t.restore = nil
	}
}
