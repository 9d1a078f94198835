package operators

// This file keeps one task's values of a state in memory, typed, as
// Flink's heap state backend keeps them on the heap: the window
// operators' accumulators (aggContents.bind) and session lists. A value
// is read and written without building a store key, decoding or
// encoding. The
// store stays the durable copy: at each barrier the values changed since
// the last one are written to it (so they reach the changelog and Pebble
// with the checkpoint, as before), and when the task's share of memory
// (engine.Task.StateMemory) is full, every value is written to it and
// dropped from memory, to be read back from the store as records need
// it. A value made and cleared between two barriers (a window made and
// fired) never reaches the store at all.
//
// The store is never ahead of the memory: a value in memory is the
// latest, and the store holds an older one or none. A task that fails is
// built again with nothing in memory, from the store's last checkpoint,
// as its operators are.

import (
	"strings"
	"sync/atomic"
	"unsafe"

	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/observe"
	"github.com/weirstream/weir/state"
)

// valueState is a value state as an operator of one task uses it: kept
// in memory (memState) or in the store (storeValue).
type valueState[K comparable, T any] interface {
	get(c *keyedCtx[K]) (T, bool, error)
	set(c *keyedCtx[K], v T) error
	clear(c *keyedCtx[K])
}

// storeValue is a value state kept in the store.
type storeValue[K comparable, T any] struct{ v *state.Value[T] }

func (s storeValue[K, T]) get(c *keyedCtx[K]) (T, bool, error) { return s.v.Get(c) }
func (s storeValue[K, T]) set(c *keyedCtx[K], v T) error       { return s.v.Set(c, v) }
func (s storeValue[K, T]) clear(c *keyedCtx[K])                { s.v.Clear(c) }

// slotHead is what every slot in memory has.
type slotHead struct {
	// id is the slot's key in the map: the encoded key, then the
	// namespace (memSlots.nsLen bytes).
	id string
	// dirty: changed since it was last written to the store; listed in
	// memSlots.dirty.
	dirty bool
	// gone: cleared or spilled, no longer in the map.
	gone bool
	// size is what the slot counts for in the task's memory.
	size int64
}

func (h *slotHead) head() *slotHead { return h }

// memSlots is what memState and memList share: one task's slots of a
// state by id, those changed since the last barrier, their part of the
// task's share, and whether memory holds all of them.
//
// The slots are grouped by key: a key's slots of every namespace (a
// window's slices and windows) are found with one lookup of the key, and
// the lookups of one key in a row (a sliced window's firing reads its
// five slices, then clears one) with none.
type memSlots[K comparable, S interface{ head() *slotHead }] struct {
	c   *keyedCtx[K]
	mem *taskMemory
	// nsLen is the length of the namespaces kept in memory (a window's,
	// or none); state of other namespaces stays in the store, so that
	// ids, the key then the namespace, cannot collide.
	nsLen int
	// m holds each key's slots, by the key's part of their ids: a string,
	// which Go's maps hash fastest.
	m map[string]*slotGroup[S]
	// last is the group the last lookup found or insert made, nil if it
	// was removed: a key's slots are looked up in a row.
	last  *slotGroup[S]
	dirty []S
	bytes int64  // the slots' sizes summed
	idBuf []byte // scratch for lookups
	// loaded: the store's state was loaded (load), when the first record
	// or timer used it. complete: all of the state (of namespaces of
	// nsLen) is in memory, so what is not is absent, and neither a read
	// nor a deletion goes to the store for it (a window that cannot exist
	// yet, a slice without records). Not after a spill: the store then
	// answers for what memory does not hold, until every value the spill
	// left in the store alone is read back or deleted (away).
	loaded, complete bool
	// away counts the values the store holds (of namespaces of nsLen)
	// that memory does not, while memory is not complete: those a spill
	// dropped, less those read back or deleted since. Memory is complete
	// again when it is back to 0, as it is once the windows a spill cut
	// fired: a spill under a burst does not send every record after it
	// to the store for good. -1: not known (a load that did not fit, a
	// state that does not count).
	away int
}

// slotGroup is one key's slots in memory, one per namespace: few (the
// live windows or slices of a key), so a scan finds one. The namespaces
// are kept side by side, the i-th slot's at nss[i*nsLen:], so that the
// scan reads them from one place rather than from each slot.
type slotGroup[S interface{ head() *slotHead }] struct {
	key   string // the key's part of the slots' ids
	slots []S
	nss   []byte
	// one and ns0 hold the first slot and its namespace (a window's 16
	// bytes), so that a group of one slot, a key's only window, is one
	// allocation rather than three: a group goes when its key's last
	// window fires, and comes again with the key's next.
	one [1]S
	ns0 [16]byte
}

// groupFixed is about what a slot costs in its group, beyond memFixed:
// its place in the group's slots, and its share of the group and its map
// entry when the key has few slots.
const groupFixed = 32

func newMemSlots[K comparable, S interface{ head() *slotHead }](c *keyedCtx[K], nsLen int, mem *taskMemory) memSlots[K, S] {
	return memSlots[K, S]{c: c, mem: mem, nsLen: nsLen, m: map[string]*slotGroup[S]{}}
}

// id names the state of c's key and namespace, in idBuf: valid until the
// next call, for lookups only.
func (s *memSlots[K, S]) id(c *keyedCtx[K]) string {
	s.idBuf = append(append(s.idBuf[:0], c.rec.Key...), c.ns...)
	return unsafe.String(unsafe.SliceData(s.idBuf), len(s.idBuf))
}

// group returns the group of the key of id, nil if memory has no slot of
// it.
func (s *memSlots[K, S]) group(id string) *slotGroup[S] {
	key := id[:len(id)-s.nsLen]
	if g := s.last; g != nil && g.key == key {
		return g
	}
	g := s.m[key]
	if g != nil {
		s.last = g
	}
	return g
}

// lookup returns the slot of id, the zero S if memory has none.
func (s *memSlots[K, S]) lookup(id string) (sl S) {
	if g := s.group(id); g != nil {
		if i := g.index(id[len(g.key):], s.nsLen); i >= 0 {
			return g.slots[i]
		}
	}
	return sl
}

// index returns the index of the slot of namespace ns, -1 if there is
// none.
func (g *slotGroup[S]) index(ns string, nsLen int) int {
	if nsLen == 0 && len(g.slots) > 0 {
		return 0 // the one slot
	}
	for i, at := 0, 0; i < len(g.slots); i, at = i+1, at+nsLen {
		if string(g.nss[at:at+nsLen]) == ns {
			return i
		}
	}
	return -1
}

// insert adds sl, of sl.head().size bytes already reserved, to memory;
// memory must not have a slot of its id.
func (s *memSlots[K, S]) insert(sl S) {
	h := sl.head()
	g := s.group(h.id)
	k := len(h.id) - s.nsLen
	if g == nil {
		g = &slotGroup[S]{key: h.id[:k]}
		g.slots = g.one[:0]
		if s.nsLen <= len(g.ns0) {
			g.nss = g.ns0[:0]
		}
		s.m[g.key] = g
		s.last = g
	}
	g.slots = append(g.slots, sl)
	g.nss = append(g.nss, h.id[k:]...)
	s.bytes += h.size
}

// touch marks sl changed since the last barrier.
func (s *memSlots[K, S]) touch(sl S) {
	if h := sl.head(); !h.dirty {
		h.dirty = true
		s.dirty = append(s.dirty, sl)
	}
}

// remove forgets sl.
func (s *memSlots[K, S]) remove(sl S) {
	h := sl.head()
	if g := s.group(h.id); g != nil {
		if i := g.index(h.id[len(g.key):], s.nsLen); i >= 0 && g.slots[i].head() == h {
			last, n := len(g.slots)-1, s.nsLen
			g.slots[i] = g.slots[last]
			var zero S
			g.slots[last] = zero
			g.slots = g.slots[:last]
			copy(g.nss[i*n:], g.nss[last*n:])
			g.nss = g.nss[:last*n]
		}
		if len(g.slots) == 0 {
			delete(s.m, g.key)
			s.last = nil
		}
	}
	h.gone = true
	s.bytes -= h.size
	s.mem.used -= h.size
}

// resize makes sl count for size bytes.
func (s *memSlots[K, S]) resize(sl S, size int64) {
	h := sl.head()
	s.bytes += size - h.size
	s.mem.used += size - h.size
	h.size = size
}

// flushWith calls write for each slot changed since the last flush, with
// c set to its key and namespace, and marks it unchanged: at each
// barrier, so that the checkpoint carries it. On an error the slots not
// written stay changed.
func (s *memSlots[K, S]) flushWith(write func(c *keyedCtx[K], sl S) error) error {
	if len(s.dirty) == 0 {
		return nil
	}
	c := s.c
	key, ns := c.rec.Key, c.ns
	defer func() { c.rec.Key, c.ns = key, ns }()
	for i, sl := range s.dirty {
		h := sl.head()
		if h.gone || !h.dirty {
			continue
		}
		k := len(h.id) - s.nsLen
		c.rec.Key, c.ns = bytesOf(h.id[:k]), bytesOf(h.id[k:])
		if err := write(c, sl); err != nil {
			s.dirty = append(s.dirty[:0], s.dirty[i:]...)
			return err
		}
		h.dirty = false
	}
	clear(s.dirty)
	s.dirty = s.dirty[:0]
	return nil
}

// dropAll forgets every slot, all written: the spill after the flush.
// Records read the state back from the store's caches or Pebble as they
// need it. stored tells whether the store holds a slot's value, for away;
// nil: away is not kept.
func (s *memSlots[K, S]) dropAll(stored func(S) bool) {
	if stored == nil && len(s.m) > 0 {
		s.away = -1
	}
	for _, g := range s.m {
		for _, sl := range g.slots {
			sl.head().gone = true
			if s.away >= 0 && stored(sl) {
				s.away++
			}
		}
	}
	// A new map: a cleared one would keep its buckets.
	s.m = map[string]*slotGroup[S]{}
	s.last = nil
	s.mem.used -= s.bytes
	s.bytes = 0
	s.complete = s.away == 0
}

// back notes that a value the store alone held (away) is in memory again
// or deleted.
func (s *memSlots[K, S]) back() {
	if s.away > 0 {
		s.away--
		s.complete = s.away == 0
	}
}

// loadSlot adds sl, read from the store at load, if it fits half the
// share, and reports whether it did.
func (s *memSlots[K, S]) loadSlot(sl S) bool {
	size := sl.head().size
	if limit := s.mem.limit(); limit > 0 && s.mem.used+size > limit/2 {
		return false
	}
	s.mem.used += size
	s.insert(sl)
	return true
}

// memSlot is one value in memory.
type memSlot[T any] struct {
	slotHead
	v T
	// has: v is the value (false: there is none yet).
	has bool
	// stored: the store may hold a value (read from it or written to
	// it), which clearing must delete.
	stored bool
}

// memState is a value state of one task, kept in memory.
type memState[K comparable, T any] struct {
	memSlots[K, *memSlot[T]]
	v *state.Value[T]
}

// taskMemory is one task's share of memory for state kept in memory
// (engine.Task.StateMemory), shared by its operators' memStates and
// memLists: when it is full, every one of them goes to the store.
type taskMemory struct {
	// limit returns the task's share (0: no bound), read at every
	// reservation: it changes as the replica's tasks come and go.
	limit  func() int64
	used   int64
	states []interface{ spill() error }
	// task and obs report each spill (observe.Observer.StateSpilled).
	task string
	obs  observe.Observer
}

// memSpills counts the spills of every task, for tests; memStoreReads
// the reads of a value memory did not hold.
var memSpills, memStoreReads atomic.Int64

// stateMemory returns the task's share of memory for state kept in
// memory, nil if it is too small to be worth it: the operators leave
// their state in the store then.
func stateMemory(t *engine.Task) *taskMemory {
	limit := t.StateMemory()
	if limit > 0 && limit < minStateMemory {
		return nil
	}
	return &taskMemory{limit: t.StateMemory, task: t.ID().String(), obs: t.Observer()}
}

// minStateMemory is the smallest share worth keeping state in memory for:
// a few values.
const minStateMemory = 320

// reserve takes n bytes of the share, spilling every memState of the task
// first if they do not fit.
func (m *taskMemory) reserve(n int64) error {
	if limit := m.limit(); limit > 0 && m.used+n > limit {
		memSpills.Add(1)
		m.obs.StateSpilled(m.task, m.used)
		for _, s := range m.states {
			if err := s.spill(); err != nil {
				return err
			}
		}
	}
	m.used += n
	return nil
}

// newMemState keeps v's values of c's task whose namespace is nsLen
// bytes long in memory, within mem, and writes those changed to the store
// at each of the task's barriers.
func newMemState[K comparable, T any](t *engine.Task, c *keyedCtx[K], v *state.Value[T], nsLen int, mem *taskMemory) *memState[K, T] {
	s := &memState[K, T]{memSlots: newMemSlots[K, *memSlot[T]](c, nsLen, mem), v: v}
	mem.states = append(mem.states, s)
	t.OnBarrier(s.flush)
	return s
}

// memFixed is about what a slot costs beyond its id and the value's
// encoding: the slot, its place in its key's group, and the group's map
// entry and the map's overhead.
func memFixed[T any]() int64 {
	return int64(unsafe.Sizeof(memSlot[T]{})) + 3*int64(unsafe.Sizeof(""))/2 + 16 + groupFixed
}

// slot returns the value of c's key and namespace, from memory or else
// from the store. With create, a value the store does not have gets an
// empty slot (has false); without, the result is nil then. The slot is
// valid until the next call that may spill (slot with create). cached is
// false for a namespace kept in the store: the caller uses the store.
func (s *memState[K, T]) slot(c *keyedCtx[K], create bool) (sl *memSlot[T], cached bool, err error) {
	if len(c.ns) != s.nsLen {
		return nil, false, nil
	}
	if !s.loaded {
		if err := s.load(c); err != nil {
			return nil, true, err
		}
	}
	id := s.id(c)
	if sl := s.lookup(id); sl != nil {
		return sl, true, nil
	}
	var v T
	had := false
	if !s.complete {
		memStoreReads.Add(1)
		var err error
		if v, had, err = s.v.Get(c); err != nil {
			return nil, true, err
		}
	}
	if !had && !create {
		return nil, true, nil
	}
	size := memFixed[T]() + int64(len(id))
	if err := s.mem.reserve(size); err != nil {
		return nil, true, err
	}
	sl = &memSlot[T]{slotHead: slotHead{id: strings.Clone(id), size: size}, v: v, has: had, stored: had}
	s.insert(sl)
	if had {
		s.back()
	}
	return sl, true, nil
}

// get returns the value of c's key and namespace.
func (s *memState[K, T]) get(c *keyedCtx[K]) (v T, ok bool, err error) {
	sl, cached, err := s.slot(c, false)
	switch {
	case !cached:
		return s.v.Get(c)
	case err != nil || sl == nil || !sl.has:
		return v, false, err
	}
	return sl.v, true, nil
}

// set makes v the value of c's key and namespace.
func (s *memState[K, T]) set(c *keyedCtx[K], v T) error {
	sl, cached, err := s.slot(c, true)
	switch {
	case !cached:
		return s.v.Set(c, v)
	case err != nil:
		return err
	}
	sl.v, sl.has = v, true
	s.touch(sl)
	return nil
}

// clear deletes the value of c's key and namespace.
func (s *memState[K, T]) clear(c *keyedCtx[K]) {
	if len(c.ns) != s.nsLen {
		s.v.Clear(c)
		return
	}
	if sl := s.lookup(s.id(c)); sl != nil {
		s.drop(c, sl)
		return
	}
	switch {
	case s.complete:
	case s.away > 0:
		// Counted: is it one of the values away?
		if _, had, err := s.v.Get(c); err != nil {
			s.away = -1
			s.v.Clear(c)
		} else if had {
			s.v.Clear(c)
			s.back()
		}
	default:
		s.v.Clear(c) // the store may have it
	}
}

// drop forgets sl, deleting the store's value if it may have one (c's
// key and namespace must be sl's).
func (s *memState[K, T]) drop(c *keyedCtx[K], sl *memSlot[T]) {
	s.remove(sl)
	if sl.stored {
		s.v.Clear(c)
	}
}

// bytesOf returns a part of a slot's id as bytes, sharing them: for the
// store, which copies them.
func bytesOf(id string) []byte { return unsafe.Slice(unsafe.StringData(id), len(id)) }

// flush writes every value changed since the last flush to the store: at
// each barrier, so that the checkpoint carries it.
func (s *memState[K, T]) flush() error {
	return s.flushWith(func(c *keyedCtx[K], sl *memSlot[T]) error {
		// A slot never stored is one the store has no value for.
		n, err := s.v.SetLen(c, sl.v, !sl.stored)
		if err != nil {
			return err
		}
		sl.stored = true
		s.resize(sl, memFixed[T]()+int64(len(sl.id))+int64(n))
		return nil
	})
}

// spill writes the changed values to the store and drops them all from
// memory: the share is full.
func (s *memState[K, T]) spill() error {
	if err := s.flush(); err != nil {
		return err
	}
	s.dropAll(func(sl *memSlot[T]) bool { return sl.stored })
	return nil
}

// load reads the state's values the store holds for the task (a restored
// task's) into memory, while they take at most half the share; if all of
// them do, memory is complete.
func (s *memState[K, T]) load(c *keyedCtx[K]) error {
	s.loaded = true
	complete := true
	err := s.v.Each(c, func(key, ns []byte, v T) bool {
		if len(ns) != s.nsLen {
			return true // kept in the store
		}
		id := string(key) + string(ns)
		sl := &memSlot[T]{slotHead: slotHead{id: id, size: memFixed[T]() + int64(len(id))}, v: v, has: true, stored: true}
		complete = s.loadSlot(sl)
		return complete
	})
	s.complete = complete && err == nil
	if !s.complete {
		s.away = -1
	}
	return err
}
