package state

import (
	"bytes"
	"slices"
	"sort"
	"unsafe"
)

// The write-back cache is two generations of entries over Pebble:
//
//	dirty    written by Set and Delete since the last Flush
//	pending  flushed (its mutations are in the open Kafka transaction),
//	         not yet committed to Pebble
//
// A read looks in dirty, then pending, then Pebble; the first generation
// that has the key answers, a tombstone answering "absent". CommitPending
// writes pending to Pebble and drops it; AbortPending drops both.

// entry is one key's latest write in one generation.
type entry struct {
	// key is never modified after the entry is made, so the generation's
	// map key aliases it (see keyString).
	key []byte
	// value is the written value; in the dirty generation a later Set of
	// the same key overwrites it in place. Empty for a tombstone.
	value     []byte
	tombstone bool
	// seq orders the entry's creation among the task's dirty entries:
	// a Scan skips entries made after it started (see TaskStore.Scan).
	seq uint64
	// fresh: Pebble does not have the key (it is new since the last
	// sync), so a deletion of it need not be written (sync.go).
	fresh bool
	// unsynced: a committed entry of the clean generation that Pebble does
	// not have yet, pinned there until the next sync; skip: a later
	// commit of the key superseded it before that sync (sync.go).
	unsynced, skip bool
	// created: the first write of the key in its dirty generation was
	// SetNew's, so the key had no committed value before it (sync.go).
	created bool
	// next links the entry in the dirty generation's skiplist (index.go);
	// nil until the generation is first scanned.
	next []*entry
}

// entryOverhead approximates the memory an entry costs beyond its key and
// value bytes: the entry struct, its map slot and skiplist links.
const entryOverhead = 96

func (e *entry) size() int { return len(e.key) + len(e.value) + entryOverhead }

// keyString returns a string that shares k's bytes. k must never be
// modified afterwards; entry keys never are.
func keyString(k []byte) string { return unsafe.String(unsafe.SliceData(k), len(k)) }

func compareEntries(a, b *entry) int { return bytes.Compare(a.key, b.key) }

// dirtySet is the generation Set and Delete write to.
type dirtySet struct {
	m     map[string]*entry
	bytes int // sum of entry sizes
	// seq is the seq of the last entry made; it carries over from one
	// generation to the next.
	seq uint64
	// index orders the entries for Scan; nil until the generation is first
	// scanned. unindexed holds entries added since, which the next Scan
	// links in.
	index     *skiplist
	unindexed []*entry
	// last is the entry the last get found or put wrote: an operator
	// reads a key and then writes it (an aggregate's accumulator), and a
	// comparison of the key's bytes is cheaper than hashing it again.
	last *entry
}

func (d *dirtySet) get(key []byte) *entry {
	if e := d.last; e != nil && bytes.Equal(e.key, key) {
		return e
	}
	e := d.m[string(key)]
	if e != nil {
		d.last = e
	}
	return e
}

// put records a write of key; value is ignored for a tombstone. Both are
// copied. created marks a first write in the generation as SetNew's.
func (d *dirtySet) put(key, value []byte, tombstone, created bool) {
	if tombstone {
		value = nil
	}
	if e := d.get(key); e != nil {
		d.bytes -= len(e.value)
		e.value = append(e.value[:0], value...)
		e.tombstone = tombstone
		d.bytes += len(e.value)
		return
	}
	if d.m == nil {
		d.m = make(map[string]*entry)
	}
	d.seq++
	e := &entry{tombstone: tombstone, seq: d.seq, created: created}
	// The key and the value in one allocation: each slice's capacity ends
	// where it does, so a later write of the value in place (above) never
	// reaches the key, and one that grows it copies.
	buf := make([]byte, len(key)+len(value))
	copy(buf, key)
	e.key = buf[:len(key):len(key)]
	if !tombstone {
		copy(buf[len(key):], value)
		e.value = buf[len(key):]
	}
	d.m[keyString(e.key)] = e
	d.last = e
	d.bytes += e.size()
	if d.index != nil {
		d.unindexed = append(d.unindexed, e)
	}
}

// ensureIndexedIfAny brings the skiplist up to date, unless there is
// nothing to index.
func (d *dirtySet) ensureIndexedIfAny() {
	if len(d.m) > 0 && (d.index == nil || len(d.unindexed) > 0) {
		d.ensureIndexed()
	}
}

// ensureIndexed brings the skiplist up to date with every entry.
func (d *dirtySet) ensureIndexed() {
	switch {
	case d.index == nil, len(d.unindexed) > len(d.m)/2:
		// Building from a sorted slice is linear; inserting many entries
		// one by one is not worth it.
		d.index = newSkiplistSorted(d.sortedFromMap())
	default:
		for _, e := range d.unindexed {
			d.index.insert(e)
		}
	}
	clear(d.unindexed)
	d.unindexed = d.unindexed[:0]
}

func (d *dirtySet) sortedFromMap() []*entry {
	es := make([]*entry, 0, len(d.m))
	for _, e := range d.m {
		es = append(es, e)
	}
	slices.SortFunc(es, compareEntries)
	return es
}

// sorted returns the entries in key order.
func (d *dirtySet) sorted() []*entry {
	if d.index == nil {
		return d.sortedFromMap()
	}
	d.ensureIndexed()
	es := make([]*entry, 0, len(d.m))
	for e := d.index.first(); e != nil; e = e.next[0] {
		es = append(es, e)
	}
	return es
}

// entries returns every entry once, in key order only if the generation
// was indexed for a Scan (ordered reports which): a Flush need not sort,
// so it does not pay for an order that only a Scan of the flushed
// generation needs.
func (d *dirtySet) entries() (es []*entry, ordered bool) {
	if d.index != nil {
		return d.sorted(), true
	}
	es = make([]*entry, 0, len(d.m))
	for _, e := range d.m {
		es = append(es, e)
	}
	return es, false
}

// pendingSet is the flushed generation. Its entries are never modified:
// the mutations Flush returned share their bytes.
type pendingSet struct {
	m map[string]*entry
	// list holds every entry once, in key order when ordered: sorted
	// orders it on first need (a Scan), since writing the generation to
	// Kafka and Pebble needs no order.
	list    []*entry
	ordered bool
	bytes   int // about: the dirty generations' bytes it took over
}

func (p *pendingSet) get(key []byte) *entry { return p.m[string(key)] }

// sorted returns the entries in key order.
func (p *pendingSet) sorted() []*entry {
	if !p.ordered {
		slices.SortFunc(p.list, compareEntries)
		p.ordered = true
	}
	return p.list
}

// seekGE returns the index in sorted() of the first entry whose key is >=
// key.
func (p *pendingSet) seekGE(key []byte) int {
	es := p.sorted()
	return sort.Search(len(es), func(i int) bool { return bytes.Compare(es[i].key, key) >= 0 })
}

// add takes over a flushed dirty generation m, whose entries es lists
// (in key order if ordered). If p already holds one (Flush twice without
// a commit or an abort), the newer entries replace the older ones key by
// key.
func (p *pendingSet) add(m map[string]*entry, es []*entry, ordered bool) {
	if len(p.list) == 0 {
		p.m, p.list, p.ordered = m, es, ordered
		return
	}
	// Whether a key had a committed value before is the older entry's
	// to say.
	for k, e := range m {
		if old := p.m[k]; old != nil {
			e.created = old.created
		}
	}
	if !p.ordered || !ordered {
		for k, e := range m {
			p.m[k] = e
		}
		// A new slice: a Scan in progress keeps the old one.
		list := make([]*entry, 0, len(p.m))
		for _, e := range p.m {
			list = append(list, e)
		}
		p.list, p.ordered = list, false
		return
	}
	merged := make([]*entry, 0, len(p.list)+len(es))
	old := p.list
	for len(old) > 0 && len(es) > 0 {
		switch c := bytes.Compare(old[0].key, es[0].key); {
		case c < 0:
			merged, old = append(merged, old[0]), old[1:]
		case c > 0:
			merged, es = append(merged, es[0]), es[1:]
		default:
			merged, old, es = append(merged, es[0]), old[1:], es[1:]
		}
	}
	merged = append(append(merged, old...), es...)
	for k, e := range m {
		p.m[k] = e
	}
	p.list = merged
}
