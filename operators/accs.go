package operators

import (
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/windowing"
)

// windowNsLen is the length of a window's namespace (appendWindow).
const windowNsLen = 16

// accCache is aggContents bound to one task, with the task's window
// accumulators in memory (memstate.go): a record folds into its window's
// accumulator in place.
type accCache[K comparable, IN, ACC, OUT any] struct {
	*aggContents[K, IN, ACC, OUT]
	s *memState[K, ACC]
}

// taskBound is contents that keep per-task memory: each task binds its
// own when it builds the operator, within the task's share.
type taskBound[K comparable, IN, OUT any] interface {
	bind(t *engine.Task, c *keyedCtx[K], mem *taskMemory) contents[K, IN, OUT]
}

func (a *aggContents[K, IN, ACC, OUT]) bind(t *engine.Task, c *keyedCtx[K], mem *taskMemory) contents[K, IN, OUT] {
	return &accCache[K, IN, ACC, OUT]{aggContents: a, s: newMemState(t, c, a.accs, windowNsLen, mem)}
}

func (a *accCache[K, IN, ACC, OUT]) add(c *keyedCtx[K], v IN) (bool, error) {
	sl, cached, err := a.s.slot(c, true)
	switch {
	case !cached:
		return a.aggContents.add(c, v)
	case err != nil:
		return false, err
	}
	existed := sl.has
	if !sl.has {
		sl.v, sl.has = a.fn.Zero(), true
	}
	sl.v = a.fn.Add(sl.v, v)
	a.s.touch(sl)
	return existed, nil
}

func (a *accCache[K, IN, ACC, OUT]) emit(c *keyedCtx[K], _ windowing.Window, out Collector[OUT]) (bool, error) {
	acc, ok, err := a.s.get(c)
	if err != nil || !ok {
		return false, err
	}
	return true, out.Collect(a.fn.Result(acc))
}

func (a *accCache[K, IN, ACC, OUT]) clear(c *keyedCtx[K]) error {
	a.s.clear(c)
	return nil
}

// absorb merges from's accumulator into the current window's, as
// aggContents.absorb does.
func (a *accCache[K, IN, ACC, OUT]) absorb(c *keyedCtx[K], from []byte) error {
	into := c.ns
	c.ns = from
	other, ok, err := a.s.take(c)
	c.ns = into
	if err != nil || !ok {
		return err
	}
	acc, had, err := a.s.get(c)
	if err != nil {
		return err
	}
	if had {
		other = a.fn.Merge(acc, other)
	}
	return a.s.set(c, other)
}

func (a *accCache[K, IN, ACC, OUT]) emitSlices(c *keyedCtx[K], parts []windowing.Window, out Collector[OUT], buf *[]byte) (int, error) {
	return emitSlicesWith(a.fn, a.s.get, c, parts, out, buf)
}

func (a *accCache[K, IN, ACC, OUT]) clearSlices(c *keyedCtx[K], parts []windowing.Window, buf *[]byte) {
	ns := c.ns
	for _, p := range parts {
		*buf = appendWindow((*buf)[:0], p)
		c.ns = *buf
		a.s.clear(c)
	}
	c.ns = ns
}
