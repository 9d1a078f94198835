package state

import (
	"bytes"

	"github.com/weirstream/weir/codec"
)

// Map is a map from K to V per (key, namespace), like Flink's MapState.
// Each entry is its own store key (layout.go), so Get and Put touch one
// entry, and the entries of one (key, namespace) form one contiguous range
// for Range and Clear. It is a descriptor, shared by every task of the
// operator.
type Map[K comparable, V any] struct {
	d  descriptor
	kc codec.Codec[K]
	vc codec.Codec[V]
}

// NewMap declares a map state named name in r, its keys encoded with kc
// and its values with vc. Range visits entries in the byte order of their
// encoded keys, so choose kc accordingly (codec.String orders strings
// lexicographically; JSON numbers do not sort numerically). A refused
// declaration (see Registry.Err) still returns a handle.
func NewMap[K comparable, V any](r *Registry, name string, kc codec.Codec[K], vc codec.Codec[V], opts ...HandleOpt) *Map[K, V] {
	d := r.declare(name, opts, map[string]any{"key codec": kc, "value codec": vc})
	return &Map[K, V]{d: d, kc: kc, vc: vc}
}

// Name returns the state's declared name.
func (m *Map[K, V]) Name() string { return m.d.name }

// entryKey returns the store key of map key k in s, in the TaskStore's
// scratch buffer.
func (m *Map[K, V]) entryKey(ts *TaskStore, s Scope, k K) ([]byte, error) {
	if ae, ok := m.kc.(codec.AppendEncoder[K]); ok {
		key, err := ae.AppendEncode(m.d.stateKey(ts, s), k)
		if err != nil {
			return nil, err
		}
		ts.stateKey = key
		return key, nil
	}
	kb, err := m.kc.Encode(k)
	if err != nil {
		return nil, err
	}
	ts.stateKey = append(m.d.stateKey(ts, s), kb...)
	return ts.stateKey, nil
}

// Get returns the value of k in s's map; ok is false if k is absent or
// its entry has expired (which Get then deletes).
func (m *Map[K, V]) Get(s Scope, k K) (value V, ok bool, err error) {
	ts := s.TaskStore()
	key, err := m.entryKey(ts, s, k)
	if err != nil {
		return value, false, m.d.fail("get", err)
	}
	raw, ok, err := ts.Get(key)
	if err != nil || !ok {
		return value, false, m.d.failIf("get", err)
	}
	payload, expired, err := openEnvelope(raw, s)
	if err != nil {
		return value, false, m.d.fail("get", err)
	}
	if expired {
		ts.Delete(key)
		return value, false, nil
	}
	if value, err = m.vc.Decode(payload); err != nil {
		return value, false, m.d.fail("get", err)
	}
	return value, true, nil
}

// Contains reports whether k is in s's map (and has not expired).
func (m *Map[K, V]) Contains(s Scope, k K) (bool, error) {
	ts := s.TaskStore()
	key, err := m.entryKey(ts, s, k)
	if err != nil {
		return false, m.d.fail("contains", err)
	}
	raw, ok, err := ts.Get(key)
	if err != nil || !ok {
		return false, m.d.failIf("contains", err)
	}
	_, expired, err := openEnvelope(raw, s)
	if err != nil {
		return false, m.d.fail("contains", err)
	}
	if expired {
		ts.Delete(key)
		return false, nil
	}
	return true, nil
}

// Put sets k to value in s's map, stamping the entry's expiry if the state
// has a TTL.
func (m *Map[K, V]) Put(s Scope, k K, value V) error {
	ts := s.TaskStore()
	b, err := encodeValue(&m.d, ts, s, m.vc, value)
	if err != nil {
		return m.d.fail("put", err)
	}
	key, err := m.entryKey(ts, s, k)
	if err != nil {
		return m.d.fail("put", err)
	}
	ts.Set(key, b)
	return nil
}

// Delete removes k from s's map.
func (m *Map[K, V]) Delete(s Scope, k K) error {
	ts := s.TaskStore()
	key, err := m.entryKey(ts, s, k)
	if err != nil {
		return m.d.fail("delete", err)
	}
	ts.Delete(key)
	return nil
}

// Range calls fn for each live entry of s's map in ascending order of the
// encoded keys, until fn returns false. Expired entries are skipped, and
// deleted. fn may read and write this or any other state: entries fn adds
// are not visited, and whether Range sees fn's other writes to entries it
// has not reached yet is unspecified (TaskStore.Scan).
//
// An error is an *Error: an entry did not decode, or the store failed.
// fn has then seen the entries before it.
func (m *Map[K, V]) Range(s Scope, fn func(k K, v V) (more bool)) error {
	ts := s.TaskStore()
	prefix := bytes.Clone(m.d.stateKey(ts, s)) // fn may reuse the scratch buffer
	var ferr error
	err := ts.Scan(prefix, prefixEnd(prefix), func(key, raw []byte) bool {
		payload, expired, err := openEnvelope(raw, s)
		if err != nil {
			ferr = err
			return false
		}
		if expired {
			ts.Delete(key)
			return true
		}
		k, err := m.kc.Decode(key[len(prefix):])
		if err != nil {
			ferr = err
			return false
		}
		v, err := m.vc.Decode(payload)
		if err != nil {
			ferr = err
			return false
		}
		return fn(k, v)
	})
	if err == nil {
		err = ferr
	}
	return m.d.failIf("range", err)
}

// Clear removes every entry of s's map.
func (m *Map[K, V]) Clear(s Scope) error {
	return m.d.failIf("clear", clearRange(s.TaskStore(), m.d.stateKey(s.TaskStore(), s)))
}

// clearRange deletes every key that starts with prefix.
func clearRange(ts *TaskStore, prefix []byte) error {
	prefix = bytes.Clone(prefix)
	return ts.Scan(prefix, prefixEnd(prefix), func(key, _ []byte) bool {
		ts.Delete(key)
		return true
	})
}
