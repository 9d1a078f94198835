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
