package state

import (
	"errors"
	"fmt"
)

// ErrClosed is returned by TaskStore methods that reach Pebble after
// Store.Close. The replica is shutting down: the engine stops the task and
// does not retry.
var ErrClosed = errors.New("state: store closed")

// ErrCorrupt says bytes in the store are not in the layout this package
// writes (layout.go, ttl.go, checkpoint metadata). The state, not the input
// record, is bad: the engine fails the task, never dead-letters the record;
// the cure is to Drop the task and restore it from its changelog.
var ErrCorrupt = errors.New("state: corrupt")

// ErrIncompatibleFormat is returned by Open when the directory holds a
// store written with another key layout version, or a Pebble DB that is not
// a Weir state store. Nothing was changed; the replica does not start.
var ErrIncompatibleFormat = errors.New("state: incompatible store format")

// ErrNotIdle is returned by Restore and FinishRestore when the task has
// dirty or pending writes. Restore is for recovery, before the task
// processes records; call AbortPending first to restart from a checkpoint.
var ErrNotIdle = errors.New("state: restore into a task with unflushed writes")

// ErrDuplicateState is reported by Registry.Err when an operator declares
// two states with the same name. The engine does not start the job.
var ErrDuplicateState = errors.New("state: duplicate state name")

// ErrInvalidState is reported by Registry.Err for a declaration the
// registry refuses: an empty name, a nil codec or aggregate function, a
// non-positive TTL. The engine does not start the job.
var ErrInvalidState = errors.New("state: invalid state declaration")

// Error is what a typed handle returns when a state operation fails: a
// codec error, a TaskStore error (ErrClosed, a Pebble error) or ErrCorrupt,
// wrapped in Err. The engine fails the task on it, whatever the poison
// record policy: the operator's state, not the record, is at fault.
type Error struct {
	Operator string // the registry's operator id
	State    string // the state's declared name
	Op       string // the handle method: "get", "set", "range", ...
	Err      error
}

func (e *Error) Error() string {
	return fmt.Sprintf("state %s/%s: %s: %v", e.Operator, e.State, e.Op, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }
