package state

import "bytes"

// skiplist orders the dirty generation's entries for Scan. The generation's
// map answers point reads; the skiplist exists only once the generation is
// scanned (see dirtySet.ensureIndexed), so state that is never scanned never
// pays for ordering.
//
// It supports what the cache needs and nothing more: insert of a key not
// yet present, seek, and in-order iteration through entry.next[0]. Entries
// never leave it: a Delete is a tombstone entry, and a flush hands the whole
// generation, skiplist and all, to the pending set at once.
//
// Iterating while inserting is memory-safe; the iteration may or may not
// see the new entries.
type skiplist struct {
	head   entry // sentinel; head.next has maxHeight links
	height int
	rnd    uint64 // xorshift state: deterministic heights, no global rand
}

const (
	maxHeight = 20 // 4^20 entries before the top level is crowded
	// branching: one entry in skipBranch gets each further level.
	skipBranch = 4
)

func newSkiplist() *skiplist {
	l := &skiplist{height: 1, rnd: 0x9e3779b97f4a7c15}
	l.head.next = make([]*entry, maxHeight)
	return l
}

func (l *skiplist) randomHeight() int {
	h := 1
	for h < maxHeight {
		l.rnd ^= l.rnd << 13
		l.rnd ^= l.rnd >> 7
		l.rnd ^= l.rnd << 17
		if l.rnd%skipBranch != 0 {
			break
		}
		h++
	}
	return h
}

// insert links e, whose key must not be in the list yet.
func (l *skiplist) insert(e *entry) {
	var prev [maxHeight]*entry
	x := &l.head
	for i := l.height - 1; i >= 0; i-- {
		for x.next[i] != nil && bytes.Compare(x.next[i].key, e.key) < 0 {
			x = x.next[i]
		}
		prev[i] = x
	}
	h := l.randomHeight()
	for ; l.height < h; l.height++ {
		prev[l.height] = &l.head
	}
	e.next = make([]*entry, h)
	for i := range h {
		e.next[i] = prev[i].next[i]
		prev[i].next[i] = e
	}
}

// newSkiplistSorted builds a skiplist of entries, which must be sorted by
// key without duplicates, in linear time.
func newSkiplistSorted(entries []*entry) *skiplist {
	l := newSkiplist()
	var tail [maxHeight]*entry // tail[i]: the last entry linked at level i
	for i := range tail {
		tail[i] = &l.head
	}
	for _, e := range entries {
		l.appendSorted(e, &tail)
	}
	return l
}

// appendSorted links e after every entry in the list: e's key must be
// greater than all of theirs.
func (l *skiplist) appendSorted(e *entry, tail *[maxHeight]*entry) {
	h := l.randomHeight()
	l.height = max(l.height, h)
	e.next = make([]*entry, h)
	for i := range h {
		tail[i].next[i] = e
		tail[i] = e
	}
}

// first returns the smallest entry, or nil.
func (l *skiplist) first() *entry { return l.head.next[0] }

// seekGE returns the first entry whose key is >= key, or nil.
func (l *skiplist) seekGE(key []byte) *entry {
	x := &l.head
	for i := l.height - 1; i >= 0; i-- {
		for x.next[i] != nil && bytes.Compare(x.next[i].key, key) < 0 {
			x = x.next[i]
		}
	}
	return x.next[0]
}
