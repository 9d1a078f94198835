// Package checkpoint owns the bookkeeping of Weir's checkpoints: which
// outputs a checkpoint covers and whether Kafka has acknowledged them, and
// how a checkpoint identifies itself in committed offsets.
//
// It must never touch Kafka or the state store itself: the engine drives
// the protocol (barrier, flush, commit, then the local store) and uses this
// package to know when each step may proceed.
package checkpoint

import (
	"sync"
	"sync/atomic"
)

// Epoch counts the records a task produced between two barriers that Kafka
// has not acknowledged yet. A checkpoint may commit the input offsets of an
// epoch only once Done is closed and Err is nil: that is what makes
// at-least-once delivery hold (no offset is committed before the outputs it
// produced are durable).
//
// The owning task calls Add before each produce and Seal at the barrier;
// produce callbacks, on any goroutine, call Ack. Add and Seal must not be
// called after Seal. The zero value is not usable; use NewEpoch.
type Epoch struct {
	// pending starts at 1, the task's own hold, released by Seal; it
	// reaches zero exactly once, when the epoch is sealed and every record
	// in it is acknowledged.
	pending atomic.Int64
	done    chan struct{}
	errOnce sync.Once
	err     atomic.Pointer[error]
	prev    atomic.Pointer[Epoch]
}

// NewEpoch returns an open epoch that follows prev (nil for the first).
// Waiting on the new epoch also waits on prev, so a checkpoint whose
// predecessor never completed still covers everything before it.
func NewEpoch(prev *Epoch) *Epoch {
	e := &Epoch{done: make(chan struct{})}
	e.pending.Store(1)
	if prev != nil {
		e.prev.Store(prev)
	}
	return e
}

// Add records that one more record of this epoch is in flight.
func (e *Epoch) Add() { e.pending.Add(1) }

// Ack records that one record of this epoch reached Kafka, or failed to
// with err. The first error is kept; the epoch still completes so that
// waiters learn about it.
func (e *Epoch) Ack(err error) {
	if err != nil {
		e.keep(err)
	}
	e.release()
}

// keep records err as the epoch's error unless one is kept already. It is
// apart from Ack so that Ack(nil), the per-record path, allocates nothing.
func (e *Epoch) keep(err error) {
	e.errOnce.Do(func() { e.err.Store(&err) })
}

// Seal closes the epoch to new records. Done closes once every record
// added before Seal is acknowledged.
func (e *Epoch) Seal() { e.release() }

func (e *Epoch) release() {
	if e.pending.Add(-1) == 0 {
		close(e.done)
	}
}

// Done is closed when the epoch is sealed and all its records are acknowledged.
// It does not wait for earlier epochs; Wait does.
func (e *Epoch) Done() <-chan struct{} { return e.done }

// Err returns the first produce error of this epoch, if any. It is
// meaningful once Done is closed.
func (e *Epoch) Err() error {
	if p := e.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Wait blocks until this epoch and every earlier one are complete, or stop
// is closed, and returns the first produce error among them. Once the whole
// chain is complete its error is folded into this epoch and the
// predecessors are unlinked, so a long chain is not retained; an aborted
// wait unlinks nothing, so a later Wait still covers every predecessor.
func (e *Epoch) Wait(stop <-chan struct{}) error {
	var first error
	for cur := e; cur != nil; cur = cur.prev.Load() {
		select {
		case <-cur.done:
		case <-stop:
			return ErrAborted
		}
		if err := cur.Err(); err != nil {
			first = err
		}
	}
	if first != nil {
		e.keep(first)
	}
	e.prev.Store(nil)
	return e.Err()
}
