package state

import (
	"fmt"

	"github.com/weirstream/weir/codec"
)

// Value is a single value per (key, namespace), like Flink's ValueState.
// It is a descriptor: declare it once in the operator's Open, use it from
// every task with the Scope of the record being processed.
type Value[T any] struct {
	d descriptor
	c codec.Codec[T]
}

// NewValue declares a value state named name in r, its values encoded with
// c. A refused declaration (see Registry.Err) still returns a handle.
func NewValue[T any](r *Registry, name string, c codec.Codec[T], opts ...HandleOpt) *Value[T] {
	return &Value[T]{d: r.declare(name, opts, map[string]any{"codec": c}), c: c}
}

// Name returns the state's declared name.
func (v *Value[T]) Name() string { return v.d.name }

// Get returns the value of s's key and namespace; ok is false if there is
// none or it has expired. An error is an *Error: the codec could not decode
// the stored bytes, or the store failed.
func (v *Value[T]) Get(s Scope) (value T, ok bool, err error) {
	return readCell(&v.d, v.c, s, "get")
}

// Set writes value for s's key and namespace (stamping its expiry if the
// state has a TTL). An error is an *Error from the codec.
func (v *Value[T]) Set(s Scope, value T) error {
	_, err := writeCell(&v.d, v.c, s, "set", value, false)
	return err
}

// SetLen is Set, and returns how many bytes the value takes in the store:
// for an operator that keeps values in memory and counts what they cost.
// absent tells that the key has no value (Get would report none), as
// TaskStore.SetNew does: a deletion of it before the store's next local
// sync then need not reach Pebble.
func (v *Value[T]) SetLen(s Scope, value T, absent bool) (int, error) {
	return writeCell(&v.d, v.c, s, "set", value, absent)
}

// Clear deletes the value of s's key and namespace.
func (v *Value[T]) Clear(s Scope) {
	ts := s.TaskStore()
	ts.Delete(v.d.stateKey(ts, s))
}

// Each calls fn with every value of the state in s's task, in key
// order: its key and namespace (valid during the call only) and its
// value. Expired values are skipped. It stops when fn returns false. An
// operator that keeps a state's values in memory loads them so when its
// task starts. An error is an *Error: a value that does not decode, or
// the store's.
func (v *Value[T]) Each(s Scope, fn func(key, ns []byte, value T) (more bool)) error {
	ts := s.TaskStore()
	prefix := v.d.prefix
	var bad error
	err := ts.Scan(prefix, prefixEnd(prefix), func(k, raw []byte) bool {
		key, rest, ok := readPart(k[len(prefix):])
		ns, rest2, ok2 := readPart(rest)
		if !ok || !ok2 || len(rest2) != 0 {
			bad = fmt.Errorf("%w: key %q is not a value's", ErrCorrupt, k)
			return false
		}
		value, expired, err := decodeStored(v.c, raw, s)
		switch {
		case err != nil:
			bad = err
			return false
		case expired:
			return true
		}
		return fn(key, ns, value)
	})
	if err == nil {
		err = bad
	}
	return v.d.failIf("each", err)
}

// readCell reads the one value that lives at d's state key for s (Value,
// Aggregating), deleting it if it has expired.
func readCell[T any](d *descriptor, c codec.Codec[T], s Scope, op string) (value T, ok bool, err error) {
	ts := s.TaskStore()
	key := d.stateKey(ts, s)
	raw, ok, err := ts.Get(key)
	if err != nil || !ok {
		return value, false, d.failIf(op, err)
	}
	payload, expired, err := openEnvelope(raw, s)
	if err != nil {
		return value, false, d.fail(op, err)
	}
	if expired {
		ts.Delete(key)
		return value, false, nil
	}
	if value, err = c.Decode(payload); err != nil {
		return value, false, d.fail(op, err)
	}
	return value, true, nil
}

// writeCell writes value at d's state key for s, and returns the bytes it
// takes. absent: the key has no value (TaskStore.SetNew).
func writeCell[T any](d *descriptor, c codec.Codec[T], s Scope, op string, value T, absent bool) (int, error) {
	ts := s.TaskStore()
	b, err := encodeValue(d, ts, s, c, value)
	if err != nil {
		return 0, d.fail(op, err)
	}
	if absent {
		ts.SetNew(d.stateKey(ts, s), b)
	} else {
		ts.Set(d.stateKey(ts, s), b)
	}
	return len(b), nil
}
