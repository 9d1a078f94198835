package operators

// memList is memState's counterpart for list state: one task's lists of
// a state kept in memory, typed, the store their durable copy. The window
// join buffers both sides in it. A record appends to its list in memory;
// at each barrier the elements added since the last one are appended to
// the store's list (state.List.AddAt, which reads nothing); a fired
// window's lists are read from memory and cleared by deleting the keys
// memory knows the store has (state.List.ClearBelow), so a window costs
// no read of the store. The share, the spill, the load at restore and
// "complete" are memState's.

import (
	"strings"
	"unsafe"

	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/state"
)

// listState is a list state as an operator of one task uses it: kept in
// memory (memList) or in the store (storeList).
type listState[K comparable, T any] interface {
	add(c *keyedCtx[K], v T) error
	get(c *keyedCtx[K]) ([]T, error)
	clear(c *keyedCtx[K]) error
}

// storeList is a list state kept in the store.
type storeList[K comparable, T any] struct{ l *state.List[T] }

func (s storeList[K, T]) add(c *keyedCtx[K], v T) error   { return s.l.Add(c, v) }
func (s storeList[K, T]) get(c *keyedCtx[K]) ([]T, error) { return s.l.Get(c) }
func (s storeList[K, T]) clear(c *keyedCtx[K]) error      { return s.l.Clear(c) }

// listSlot is one list in memory.
type listSlot[T any] struct {
	slotHead
	vs []T
	// stored: vs[:stored] are in the store, numbered below next, the
	// store's next element number (0: the store has no list).
	stored int
	next   uint64
}

// memList is a list state of one task, kept in memory.
type memList[K comparable, T any] struct {
	memSlots[K, *listSlot[T]]
	l *state.List[T]
}

// newMemList keeps l's lists of c's task whose namespace is nsLen bytes
// long in memory, within mem, and appends what was added to the store at
// each of the task's barriers.
func newMemList[K comparable, T any](t *engine.Task, c *keyedCtx[K], l *state.List[T], nsLen int, mem *taskMemory) *memList[K, T] {
	s := &memList[K, T]{memSlots: newMemSlots[K, *listSlot[T]](c, nsLen, mem), l: l}
	mem.states = append(mem.states, s)
	t.OnBarrier(s.flush)
	return s
}

// elemSize is about what an element costs in memory before it is encoded.
func elemSize[T any]() int64 { return int64(unsafe.Sizeof(*new(T))) }

// listSize is what a list of n elements read from the store costs.
func listSize[T any](id string, n int) int64 {
	return memFixed[T]() + int64(len(id)) + int64(n)*elemSize[T]()
}

// slot returns the list of c's key and namespace, from memory or else
// from the store; nil if there is none and not create. c's namespace must
// be nsLen long.
func (s *memList[K, T]) slot(c *keyedCtx[K], create bool) (*listSlot[T], error) {
	if !s.loaded {
		if err := s.load(c); err != nil {
			return nil, err
		}
	}
	id := s.id(c)
	if sl := s.lookup(id); sl != nil {
		return sl, nil
	}
	var vs []T
	var next uint64
	if !s.complete {
		memStoreReads.Add(1)
		var err error
		if vs, next, err = s.l.GetNext(c); err != nil {
			return nil, err
		}
	}
	if len(vs) == 0 && next == 0 && !create {
		return nil, nil
	}
	size := listSize[T](id, len(vs))
	if err := s.mem.reserve(size); err != nil {
		return nil, err
	}
	sl := &listSlot[T]{slotHead: slotHead{id: strings.Clone(id), size: size}, vs: vs, stored: len(vs), next: next}
	s.insert(sl)
	if next > 0 {
		s.back()
	}
	return sl, nil
}

// add appends v to the list of c's key and namespace.
func (s *memList[K, T]) add(c *keyedCtx[K], v T) error {
	if len(c.ns) != s.nsLen {
		return s.l.Add(c, v)
	}
	n := elemSize[T]()
	if err := s.mem.reserve(n); err != nil { // before the slot: a spill drops it
		return err
	}
	sl, err := s.slot(c, true)
	if err != nil {
		s.mem.used -= n
		return err
	}
	sl.vs = append(sl.vs, v)
	sl.size += n
	s.bytes += n
	s.touch(sl)
	return nil
}

// get returns the list of c's key and namespace; the caller must not
// keep it past the next change of the state.
func (s *memList[K, T]) get(c *keyedCtx[K]) ([]T, error) {
	if len(c.ns) != s.nsLen {
		return s.l.Get(c)
	}
	sl, err := s.slot(c, false)
	if err != nil || sl == nil {
		return nil, err
	}
	return sl.vs, nil
}

// clear empties the list of c's key and namespace.
func (s *memList[K, T]) clear(c *keyedCtx[K]) error {
	if len(c.ns) != s.nsLen {
		return s.l.Clear(c)
	}
	sl := s.lookup(s.id(c))
	switch {
	case sl != nil:
	case s.loaded && s.complete:
		return nil
	case s.away > 0:
		// Counted: is it one of the lists away? Its length record
		// tells; its elements need not be read to clear it.
		next, err := s.l.Next(c)
		if err != nil {
			s.away = -1
			return s.l.Clear(c)
		}
		if next > 0 {
			s.l.ClearBelow(c, next)
			s.back()
		}
		return nil
	default:
		return s.l.Clear(c) // the store may have it
	}
	s.remove(sl)
	if sl.next > 0 {
		s.l.ClearBelow(c, sl.next)
	}
	return nil
}

// flush appends every list's elements added since the last flush to the
// store: at each barrier, so that the checkpoint carries them.
func (s *memList[K, T]) flush() error {
	return s.flushWith(func(c *keyedCtx[K], sl *listSlot[T]) error {
		n, err := s.l.AddAt(c, sl.next, sl.vs[sl.stored:])
		if err != nil {
			return err
		}
		sl.next += uint64(len(sl.vs) - sl.stored)
		sl.stored = len(sl.vs)
		s.resize(sl, sl.size+int64(n))
		return nil
	})
}

// spill is memState.spill.
func (s *memList[K, T]) spill() error {
	if err := s.flush(); err != nil {
		return err
	}
	// Flushed: every list with elements is in the store, numbered.
	s.dropAll(func(sl *listSlot[T]) bool { return sl.next > 0 })
	return nil
}

// load is memState.load.
func (s *memList[K, T]) load(c *keyedCtx[K]) error {
	s.loaded = true
	complete := true
	err := s.l.Each(c, func(key, ns []byte, vs []T, next uint64) bool {
		if len(ns) != s.nsLen {
			return true
		}
		id := string(key) + string(ns)
		sl := &listSlot[T]{slotHead: slotHead{id: id, size: listSize[T](id, len(vs))}, vs: vs, stored: len(vs), next: next}
		complete = s.loadSlot(sl)
		return complete
	})
	s.complete = complete && err == nil
	if !s.complete {
		s.away = -1
	}
	return err
}
