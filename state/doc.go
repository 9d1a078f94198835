// Package state owns keyed state: the replica's local store (one Pebble DB),
// the per-task write-back cache in front of it, the checkpoint hooks that
// move the cache into Pebble, and the typed handles (value, map, list,
// aggregating) that operators declare once and use per record.
//
// The pieces, from the disk up:
//
//   - Store (store.go) is the replica's Pebble DB. It hands out one
//     TaskStore per task; all tasks share the DB, each in its own contiguous
//     key range (layout.go draws the keys).
//   - TaskStore (taskstore.go, cache.go, scan.go) is one task's view: a
//     write-back cache of dirty keys over a "pending" generation (flushed,
//     not yet committed) over Pebble. It is owned by the task's goroutine and
//     takes no locks.
//   - Flush, CommitPending, AbortPending (checkpoint.go) are the checkpoint
//     protocol; Restore and FinishRestore (restore.go) rebuild a task from its
//     changelog.
//   - Registry and the handles Value, Map, List and Aggregating (registry.go
//     and one file each) give operators typed state scoped to (task,
//     operator, key, namespace), with optional TTL (ttl.go).
//
// What it must never do: let the local store run ahead of Kafka. Set and
// Delete only touch memory; nothing a task writes reaches Pebble before
// CommitPending, which the engine calls only after the Kafka transaction
// holding the same writes (in the changelog) has committed. A crash at any
// point leaves Pebble at a checkpoint Kafka has, or behind it; recovery
// replays the changelog tail from the offsets recorded with the checkpoint.
//
// This package does not talk to Kafka, does not know about records, and
// does not start goroutines.
package state
