package operators

// This file keeps a task's window accumulators in memory, typed, as
// Flink's heap state backend keeps them on the heap: a record folds into
// its window's accumulator in a Go map, without building a store key,
// decoding or encoding. The store stays the durable copy: at each barrier
// the accumulators changed since the last one are written to it (so they
// reach the changelog and Pebble with the checkpoint, as before), and when
// the task's share of memory (engine.Task.StateMemory) is full, every
// accumulator is written to it and dropped from memory, to be read back
// from the store as records need it. A window made and fired between two
// barriers never reaches the store at all.
//
// The store is never ahead of the cache: an accumulator in memory is the
// window's latest, and the store holds an older one or none. A task that
// fails is built again with an empty cache, from the store's last
// checkpoint, as its operators are.

import (
	"strings"
	"sync/atomic"
	"unsafe"

	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/windowing"
)

// windowNsLen is the length of a window's namespace (appendWindow).
const windowNsLen = 16

// accSlot is one window's accumulator in memory.
type accSlot[ACC any] struct {
	// id is the slot's key in the cache's map: the encoded key, then the
	// window's namespace (windowNsLen bytes).
	id  string
	acc ACC
	// has: acc holds what the window holds (false: nothing yet).
	has bool
	// dirty: acc changed since it was last written to the store; listed
	// in accCache.dirty.
	dirty bool
	// stored: the store may hold a value for the window (read from it or
	// written to it), which clearing the window must delete.
	stored bool
	// gone: cleared or spilled, no longer in the cache's map.
	gone bool
	// size is what the slot counts for in the task's memory.
	size int64
}

// accCache is aggContents bound to one task, with the task's accumulators
// in memory.
type accCache[K comparable, IN, ACC, OUT any] struct {
	*aggContents[K, IN, ACC, OUT]
	c *keyedCtx[K]
	// m holds the slots by id: a string key, which Go's maps hash
	// fastest.
	m     map[string]*accSlot[ACC]
	dirty []*accSlot[ACC]
	idBuf []byte // scratch for lookups
	// bytes is the slots' sizes summed; limit the task's share (0: no
	// bound).
	bytes, limit int64
}

// accSpills counts the spills of every task, for tests.
var accSpills atomic.Int64

// accFixed is about what a slot costs beyond its id and the
// accumulator's encoding: the slot, its map entry and the map's overhead.
func accFixed[ACC any]() int64 {
	return int64(unsafe.Sizeof(accSlot[ACC]{})) + 3*int64(unsafe.Sizeof(""))/2 + 16
}

// bind gives the task its own cache of a's accumulators, written to the
// store at each of its barriers. A share too small to hold a few
// accumulators leaves them in the store.
func (a *aggContents[K, IN, ACC, OUT]) bind(t *engine.Task, c *keyedCtx[K]) contents[K, IN, OUT] {
	limit := t.StateMemory()
	if limit < 0 || (limit > 0 && limit < 4*accFixed[ACC]()) {
		return a
	}
	ac := &accCache[K, IN, ACC, OUT]{aggContents: a, c: c, m: map[string]*accSlot[ACC]{}, limit: limit}
	t.OnBarrier(ac.flush)
	return ac
}

// taskBound is contents that keep per-task memory: each task binds its
// own when it builds the operator.
type taskBound[K comparable, IN, OUT any] interface {
	bind(t *engine.Task, c *keyedCtx[K]) contents[K, IN, OUT]
}

// id names the accumulator of c's key and namespace, in a.idBuf: valid
// until the next call, for lookups only. ok is false for a namespace that
// is not a window's.
func (a *accCache[K, IN, ACC, OUT]) id(c *keyedCtx[K]) (string, bool) {
	if len(c.ns) != windowNsLen {
		return "", false
	}
	a.idBuf = append(append(a.idBuf[:0], c.rec.Key...), c.ns...)
	return unsafe.String(unsafe.SliceData(a.idBuf), len(a.idBuf)), true
}

// keyOf and nsOf return the encoded key and the namespace of slot id s,
// sharing its bytes: for the store, which copies them.
func keyOf(id string) []byte {
	return unsafe.Slice(unsafe.StringData(id), len(id)-windowNsLen)
}

func nsOf(id string) []byte {
	return unsafe.Slice(unsafe.StringData(id[len(id)-windowNsLen:]), windowNsLen)
}

// slot returns the accumulator of c's key and namespace, from memory or
// else from the store. With create, a window the store does not have gets
// an empty slot (has false); without, the result is nil then. A nil slot
// with a nil error and ok false means the namespace is not a window's:
// the caller uses the store.
func (a *accCache[K, IN, ACC, OUT]) slot(c *keyedCtx[K], create bool) (s *accSlot[ACC], ok bool, err error) {
	id, ok := a.id(c)
	if !ok {
		return nil, false, nil
	}
	if s := a.m[id]; s != nil {
		return s, true, nil
	}
	acc, had, err := a.accs.Get(c)
	if err != nil || (!had && !create) {
		return nil, true, err
	}
	size := accFixed[ACC]() + int64(len(id))
	if a.limit > 0 && a.bytes+size > a.limit {
		if err := a.spill(); err != nil {
			return nil, true, err
		}
	}
	s = &accSlot[ACC]{id: strings.Clone(id), acc: acc, has: had, stored: had, size: size}
	a.m[s.id] = s
	a.bytes += size
	return s, true, nil
}

func (a *accCache[K, IN, ACC, OUT]) touch(s *accSlot[ACC]) {
	if !s.dirty {
		s.dirty = true
		a.dirty = append(a.dirty, s)
	}
}

// drop forgets slot s, deleting the store's value if it may have one
// (c's key and namespace must be s's).
func (a *accCache[K, IN, ACC, OUT]) drop(c *keyedCtx[K], s *accSlot[ACC]) {
	delete(a.m, s.id)
	s.gone = true
	a.bytes -= s.size
	if s.stored {
		a.accs.Clear(c)
	}
}

func (a *accCache[K, IN, ACC, OUT]) add(c *keyedCtx[K], v IN) (bool, error) {
	s, ok, err := a.slot(c, true)
	if err != nil {
		return false, err
	}
	if !ok {
		return a.aggContents.add(c, v)
	}
	existed := s.has
	if !s.has {
		s.acc, s.has = a.fn.Zero(), true
	}
	s.acc = a.fn.Add(s.acc, v)
	a.touch(s)
	return existed, nil
}

func (a *accCache[K, IN, ACC, OUT]) emit(c *keyedCtx[K], w windowing.Window, out Collector[OUT]) (bool, error) {
	s, ok, err := a.slot(c, false)
	switch {
	case err != nil:
		return false, err
	case !ok:
		return a.aggContents.emit(c, w, out)
	case s == nil || !s.has:
		return false, nil
	}
	return true, out.Collect(a.fn.Result(s.acc))
}

func (a *accCache[K, IN, ACC, OUT]) clear(c *keyedCtx[K]) error {
	id, ok := a.id(c)
	if !ok {
		return a.aggContents.clear(c)
	}
	if s := a.m[id]; s != nil {
		a.drop(c, s)
		return nil
	}
	a.accs.Clear(c) // the store may have it
	return nil
}

// take removes the accumulator of c's namespace, from memory and the
// store, and returns it.
func (a *accCache[K, IN, ACC, OUT]) take(c *keyedCtx[K]) (acc ACC, had bool, err error) {
	id, ok := a.id(c)
	if ok {
		if s := a.m[id]; s != nil {
			a.drop(c, s)
			return s.acc, s.has, nil
		}
	}
	acc, had, err = a.accs.Get(c)
	if err == nil && had {
		a.accs.Clear(c)
	}
	return acc, had, err
}

// absorb merges from's accumulator into the current window's, as
// aggContents.absorb does.
func (a *accCache[K, IN, ACC, OUT]) absorb(c *keyedCtx[K], from []byte) error {
	into := c.ns
	c.ns = from
	other, ok, err := a.take(c)
	c.ns = into
	if err != nil || !ok {
		return err
	}
	s, cached, err := a.slot(c, true)
	switch {
	case err != nil:
		return err
	case !cached:
		acc, had, err := a.accs.Get(c)
		if err != nil {
			return err
		}
		if had {
			other = a.fn.Merge(acc, other)
		}
		return a.accs.Set(c, other)
	case s.has:
		other = a.fn.Merge(s.acc, other)
	}
	s.acc, s.has = other, true
	a.touch(s)
	return nil
}

// get returns the accumulator of c's namespace, from memory or the store.
func (a *accCache[K, IN, ACC, OUT]) get(c *keyedCtx[K]) (acc ACC, had bool, err error) {
	s, ok, err := a.slot(c, false)
	switch {
	case err != nil:
		return acc, false, err
	case !ok:
		return a.accs.Get(c)
	case s == nil || !s.has:
		return acc, false, nil
	}
	return s.acc, true, nil
}

func (a *accCache[K, IN, ACC, OUT]) emitSlices(c *keyedCtx[K], parts []windowing.Window, out Collector[OUT], buf *[]byte) (int, error) {
	return emitSlicesWith(a.fn, a.get, c, parts, out, buf)
}

func (a *accCache[K, IN, ACC, OUT]) clearSlices(c *keyedCtx[K], parts []windowing.Window, buf *[]byte) {
	ns := c.ns
	for _, p := range parts {
		*buf = appendWindow((*buf)[:0], p)
		c.ns = *buf
		_ = a.clear(c) // never fails
	}
	c.ns = ns
}

// flush writes every accumulator changed since the last flush to the
// store: at each barrier, so that the checkpoint carries it.
func (a *accCache[K, IN, ACC, OUT]) flush() error {
	if len(a.dirty) == 0 {
		return nil
	}
	c := a.c
	key, ns := c.rec.Key, c.ns
	defer func() { c.rec.Key, c.ns = key, ns }()
	for i, s := range a.dirty {
		if s.gone || !s.dirty {
			continue
		}
		c.rec.Key, c.ns = keyOf(s.id), nsOf(s.id)
		n, err := a.accs.SetLen(c, s.acc)
		if err != nil {
			// The slots before i are written; the rest stay dirty.
			a.dirty = append(a.dirty[:0], a.dirty[i:]...)
			return err
		}
		s.dirty, s.stored = false, true
		size := accFixed[ACC]() + int64(len(s.id)) + int64(n)
		a.bytes += size - s.size
		s.size = size
	}
	clear(a.dirty)
	a.dirty = a.dirty[:0]
	return nil
}

// spill writes the changed accumulators to the store and drops them all
// from memory: the share is full. Records read them back as they need
// them, from the store's caches or Pebble.
func (a *accCache[K, IN, ACC, OUT]) spill() error {
	if err := a.flush(); err != nil {
		return err
	}
	for _, s := range a.m {
		s.gone = true
	}
	// A new map: a cleared one would keep its buckets.
	a.m = map[string]*accSlot[ACC]{}
	a.bytes = 0
	accSpills.Add(1)
	return nil
}
