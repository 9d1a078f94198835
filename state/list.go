package state

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/weirstream/weir/codec"
)

// List is a list of T per (key, namespace), like Flink's ListState. Each
// element is its own store key, numbered in order of addition, so Add costs
// one read and two writes however long the list is; the list's length
// record holds the next number (layout.go). It is a descriptor, shared by
// every task of the operator.
type List[T any] struct {
	d descriptor
	c codec.Codec[T]
}

// NewList declares a list state named name in r, its elements encoded with
// c. With WithTTL each element expires on its own. A refused declaration
// (see Registry.Err) still returns a handle.
func NewList[T any](r *Registry, name string, c codec.Codec[T], opts ...HandleOpt) *List[T] {
	return &List[T]{d: r.declare(name, opts, map[string]any{"codec": c}), c: c}
}

// Name returns the state's declared name.
func (l *List[T]) Name() string { return l.d.name }

// seqLen is the length of an element's sequence number.
const seqLen = 8

// Add appends v to s's list.
func (l *List[T]) Add(s Scope, v T) error {
	ts := s.TaskStore()
	b, err := encodeValue(&l.d, ts, s, l.c, v)
	if err != nil {
		return l.d.fail("add", err)
	}
	key := l.d.stateKey(ts, s)
	next, err := nextSeq(ts, key)
	if err != nil {
		return l.d.fail("add", err)
	}
	var length [seqLen]byte
	binary.BigEndian.PutUint64(length[:], next+1)
	ts.Set(key, length[:])
	ts.Set(binary.BigEndian.AppendUint64(key, next), b)
	return nil
}

// nextSeq reads the list's length record at key: the next element number.
func nextSeq(ts *TaskStore, key []byte) (uint64, error) {
	raw, ok, err := ts.Get(key)
	switch {
	case err != nil:
		return 0, err
	case !ok:
		return 0, nil
	case len(raw) != seqLen:
		return 0, fmt.Errorf("%w: list length record %x", ErrCorrupt, raw)
	}
	return binary.BigEndian.Uint64(raw), nil
}

// Get returns s's list in order of addition, without expired elements
// (which it deletes); nil if the list is empty.
func (l *List[T]) Get(s Scope) ([]T, error) {
	ts := s.TaskStore()
	prefix := bytes.Clone(l.d.stateKey(ts, s))
	var out []T
	var ferr error
	expired := 0
	err := ts.Scan(prefix, prefixEnd(prefix), func(key, raw []byte) bool {
		if len(key) == len(prefix) {
			return true // the length record
		}
		if len(key) != len(prefix)+seqLen {
			ferr = fmt.Errorf("%w: list element key %x", ErrCorrupt, key)
			return false
		}
		payload, exp, err := openEnvelope(raw, s)
		if err != nil {
			ferr = err
			return false
		}
		if exp {
			ts.Delete(key)
			expired++
			return true
		}
		v, err := l.c.Decode(payload)
		if err != nil {
			ferr = err
			return false
		}
		out = append(out, v)
		return true
	})
	if err == nil {
		err = ferr
	}
	if err != nil {
		return nil, l.d.fail("get", err)
	}
	if len(out) == 0 && expired > 0 {
		ts.Delete(prefix) // every element expired: drop the length record too
	}
	return out, nil
}

// Update replaces s's list with vs (clearing it if vs is empty). Every
// element is encoded before anything is written, so a codec error leaves
// the list as it was.
func (l *List[T]) Update(s Scope, vs []T) error {
	ts := s.TaskStore()
	encoded := make([][]byte, len(vs))
	for i, v := range vs {
		b, err := encodeValue(&l.d, ts, s, l.c, v)
		if err != nil {
			return l.d.fail("update", err)
		}
		encoded[i] = bytes.Clone(b)
	}
	prefix := bytes.Clone(l.d.stateKey(ts, s))
	if err := clearRange(ts, prefix); err != nil {
		return l.d.fail("update", err)
	}
	if len(vs) == 0 {
		return nil
	}
	for i, b := range encoded {
		ts.Set(binary.BigEndian.AppendUint64(prefix, uint64(i)), b)
	}
	ts.Set(prefix, binary.BigEndian.AppendUint64(nil, uint64(len(vs))))
	return nil
}

// Clear empties s's list.
func (l *List[T]) Clear(s Scope) error {
	ts := s.TaskStore()
	return l.d.failIf("clear", clearRange(ts, l.d.stateKey(ts, s)))
}

// The methods below serve a caller that keeps lists in memory and the
// store as their durable copy (the window join's buffers): it reads a
// list once, with its next element number, then appends and clears with
// no read of the store.

// GetNext returns s's list as Get does, and its next element number (the
// length record; 0 for a list that has none).
func (l *List[T]) GetNext(s Scope) ([]T, uint64, error) {
	vs, err := l.Get(s)
	if err != nil {
		return nil, 0, err
	}
	next, err := l.Next(s)
	if err != nil {
		return nil, 0, err
	}
	return vs, next, nil
}

// Next returns s's next element number alone (the length record; 0 for
// a list that has none), reading none of its elements: enough to clear a
// list with ClearBelow.
func (l *List[T]) Next(s Scope) (uint64, error) {
	ts := s.TaskStore()
	next, err := nextSeq(ts, l.d.stateKey(ts, s))
	if err != nil {
		return 0, l.d.fail("get", err)
	}
	return next, nil
}

// AddAt appends vs to s's list, numbered from next, which must be the
// list's next element number (GetNext's, or 0 for a list the store does
// not have, plus what AddAt added since): it reads nothing. Every element
// is encoded before anything is written, so a codec error leaves the list
// as it was. It returns the encoded bytes written.
func (l *List[T]) AddAt(s Scope, next uint64, vs []T) (int, error) {
	if len(vs) == 0 {
		return 0, nil
	}
	ts := s.TaskStore()
	var all []byte
	ends := make([]int, len(vs))
	for i, v := range vs {
		b, err := encodeValue(&l.d, ts, s, l.c, v)
		if err != nil {
			return 0, l.d.fail("add", err)
		}
		all = append(all, b...)
		ends[i] = len(all)
	}
	key := bytes.Clone(l.d.stateKey(ts, s))
	start := 0
	for i, end := range ends {
		ts.Set(binary.BigEndian.AppendUint64(key, next+uint64(i)), all[start:end])
		start = end
	}
	ts.Set(key, binary.BigEndian.AppendUint64(nil, next+uint64(len(vs))))
	return len(all), nil
}

// ClearBelow empties s's list whose next element number is next (see
// AddAt), deleting its keys without reading the store.
func (l *List[T]) ClearBelow(s Scope, next uint64) {
	ts := s.TaskStore()
	key := bytes.Clone(l.d.stateKey(ts, s))
	for seq := range next {
		ts.Delete(binary.BigEndian.AppendUint64(key, seq))
	}
	ts.Delete(key)
}

// Each calls fn with every non-empty list of the task's store, in key
// order, and its next element number, until fn returns false. Expired
// elements are left out (and not deleted).
func (l *List[T]) Each(s Scope, fn func(key, ns []byte, vs []T, next uint64) (more bool)) error {
	ts := s.TaskStore()
	prefix := l.d.prefix
	var (
		bad     error
		cur     []byte // the current list's key and namespace, as stored
		key, ns []byte
		vs      []T
		next    uint64
		stopped bool
	)
	emit := func() bool {
		if cur == nil || len(vs) == 0 {
			return true
		}
		more := fn(key, ns, vs, next)
		stopped = !more
		return more
	}
	err := ts.Scan(prefix, prefixEnd(prefix), func(k, raw []byte) bool {
		rest := k[len(prefix):]
		k1, r1, ok := readPart(rest)
		ns1, r2, ok2 := readPart(r1)
		if !ok || !ok2 || (len(r2) != 0 && len(r2) != seqLen) {
			bad = fmt.Errorf("%w: key %q is not a list's", ErrCorrupt, k)
			return false
		}
		id := rest[:len(rest)-len(r2)]
		if cur == nil || !bytes.Equal(id, cur) {
			if !emit() {
				return false
			}
			cur, key, ns = bytes.Clone(id), bytes.Clone(k1), bytes.Clone(ns1)
			vs, next = nil, 0
		}
		if len(r2) == 0 {
			if len(raw) != seqLen {
				bad = fmt.Errorf("%w: list length record %x", ErrCorrupt, raw)
				return false
			}
			next = binary.BigEndian.Uint64(raw)
			return true
		}
		v, expired, err := decodeStored(l.c, raw, s)
		switch {
		case err != nil:
			bad = err
			return false
		case !expired:
			vs = append(vs, v)
		}
		return true
	})
	if err == nil && bad == nil && !stopped {
		emit()
	}
	if err == nil {
		err = bad
	}
	return l.d.failIf("each", err)
}
