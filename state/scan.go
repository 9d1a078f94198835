package state

import (
	"bytes"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Scan calls fn for each key in [lower, upper) as the task sees it, in
// ascending key order: the merge of the dirty and pending generations and
// Pebble, where the newest write of a key wins and a deletion hides the
// key. A nil or empty lower starts at the task's first key; a nil or empty
// upper runs to its last. Scan stops when fn returns false.
//
// key and value are valid only during the call to fn, and fn must not
// modify them. fn may call Get, Set, Delete and Scan (Map.Clear deletes as
// it scans). Keys that fn adds are never visited, so a scan that writes
// ahead of itself still ends; whether it sees fn's other writes to keys it
// has not reached yet is unspecified. fn must not call Flush,
// CommitPending, AbortPending, Restore or Drop.
//
// An error is Pebble's or ErrClosed; fn has then seen a prefix of the range.
func (t *TaskStore) Scan(lower, upper []byte, fn func(key, value []byte) (more bool)) error {
	if t.store.closed.Load() {
		return ErrClosed
	}
	if err := t.Sync(); err != nil {
		return err
	}
	// Pebble holds on to the bounds while the iterator is open, and fn may
	// reuse t's scratch buffers: the bounds get their own memory.
	lo := append(append(make([]byte, 0, len(t.dataPrefix)+len(lower)), t.dataPrefix...), lower...)
	hi := prefixEnd(t.dataPrefix)
	if len(upper) > 0 {
		hi = append(append(make([]byte, 0, len(t.dataPrefix)+len(upper)), t.dataPrefix...), upper...)
	}
	it, err := t.store.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("state: task %v: scan: %w", t.id, err)
	}
	err = t.merge(it, lower, upper, fn)
	if cerr := it.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("state: task %v: scan: %w", t.id, err)
	}
	return nil
}

// merge runs the three-way merge of Scan. Dirty beats pending beats Pebble
// on equal keys; each source advances past a key once it has been decided.
func (t *TaskStore) merge(it *pebble.Iterator, lower, upper []byte, fn func(key, value []byte) bool) error {
	t.dirty.ensureIndexedIfAny()
	// Dirty entries made after this point (by fn) are skipped: the scan
	// visits the dirty keys that existed when it started.
	last := t.dirty.seq
	visible := func(e *entry) *entry {
		for e != nil && e.seq > last {
			e = e.next[0]
		}
		return e
	}
	var d *entry
	if t.dirty.index != nil {
		d = visible(t.dirty.index.seekGE(lower))
	}
	pending := t.pending.sorted() // fn may flush; keep this generation's view
	p := t.pending.seekGE(lower)
	inRange := func(key []byte) bool { return len(upper) == 0 || bytes.Compare(key, upper) < 0 }

	valid := it.First()
	for {
		// The smallest key among the sources, and the entry that decides it.
		var key []byte
		var win *entry
		found := false
		if d != nil && inRange(d.key) {
			key, win, found = d.key, d, true
		}
		if p < len(pending) && inRange(pending[p].key) {
			if !found || bytes.Compare(pending[p].key, key) < 0 {
				key, win, found = pending[p].key, pending[p], true
			}
		}
		var pk []byte
		if valid {
			pk = it.Key()[len(t.dataPrefix):]
			if !found || bytes.Compare(pk, key) < 0 {
				key, win, found = pk, nil, true
			}
		}
		if !found {
			return it.Error()
		}

		var value []byte
		live := true
		if win != nil {
			value, live = win.value, !win.tombstone
		} else {
			v, err := it.ValueAndErr()
			if err != nil {
				return err
			}
			value = v
		}
		// Note which sources are at key before fn runs (key may alias the
		// Pebble iterator's buffer, and fn may write); advance them after.
		dAt := d != nil && bytes.Equal(d.key, key)
		pAt := p < len(pending) && bytes.Equal(pending[p].key, key)
		iAt := valid && bytes.Equal(pk, key)
		if live && !fn(key, value) {
			return it.Error()
		}
		if dAt {
			d = visible(d.next[0])
		}
		if pAt {
			p++
		}
		if iAt {
			valid = it.Next()
		}
	}
}
