package windowing

import (
	"errors"
	"fmt"
	"time"
)

var (
	// ErrDuplicateInput is returned when an input is added under an id the
	// combiner already has. It is a bug in the caller: remove the old
	// input first.
	ErrDuplicateInput = errors.New("windowing: duplicate watermark input")

	// ErrUnknownInput is returned by Combiner.Update for an id that is not
	// an upstream input of the combiner. For a watermark control record it
	// means the upstream stage has more tasks than this task was told, or
	// the record is corrupt; the task should fail rather than skip it,
	// since the upstream and downstream disagree on who holds the
	// watermark.
	ErrUnknownInput = errors.New("windowing: unknown watermark input")
)

// A Combiner computes a task's watermark from its inputs: the minimum of
// the watermarks of the inputs that are not idle. An input is either
//
//   - a source partition, read through its Generator (AddGenerator), or
//   - an upstream task feeding this one over a repartition topic, whose
//     watermark arrives in control records (AddInput, then Update).
//
// Rules, as Flink's CombinedWatermarkStatus:
//
//   - The task's watermark never goes backwards. An input that comes back
//     from idleness behind it does not pull it back; it holds it where it
//     is until it catches up.
//   - An idle input does not hold the watermark back.
//   - When every input is idle, AllIdle is true and the watermark advances
//     to the largest watermark among them, as Flink 2's
//     CombinedWatermarkStatus and StatusWatermarkValve do: idle inputs have
//     said all they will for now, so what the most advanced one said
//     holds. (Which input went idle last must not decide it: with the
//     minimum over the inputs still active, inputs at 5 and at 4 going idle
//     in either order would end at 5 or at 4.)
//   - An input that has not yet reported is at MinWatermark and holds the
//     watermark back. A combiner over the N upstream tasks of a repartition
//     topic therefore declares all N up front and waits for each.
//   - With no inputs at all the watermark stays where it is and AllIdle is
//     false.
//
// Ids are compared with ==; inputs are kept in a slice and scanned on
// every Advance, which suits the handful of inputs a task has.
type Combiner[K comparable] struct {
	inputs  []combinerInput[K] // in the order added
	wm      Millis
	allIdle bool
}

type combinerInput[K comparable] struct {
	id  K
	gen *Generator // a source partition; nil for an upstream task

	// An upstream task's latest report.
	wm   Millis
	idle bool
}

// NewCombiner returns a combiner with no inputs, at MinWatermark.
func NewCombiner[K comparable]() *Combiner[K] {
	return &Combiner[K]{wm: MinWatermark}
}

// AddGenerator adds a source partition; Advance reads its watermark and
// idleness from g. The combiner keeps g until RemoveInput; the caller
// keeps feeding it records.
func (c *Combiner[K]) AddGenerator(id K, g *Generator) error {
	if c.find(id) >= 0 {
		return fmt.Errorf("%w: %v", ErrDuplicateInput, id)
	}
	c.inputs = append(c.inputs, combinerInput[K]{id: id, gen: g})
	return nil
}

// AddInput adds an upstream task whose watermark comes through Update. It
// starts at MinWatermark and not idle, so it holds the watermark back until
// it reports.
func (c *Combiner[K]) AddInput(id K) error {
	if c.find(id) >= 0 {
		return fmt.Errorf("%w: %v", ErrDuplicateInput, id)
	}
	c.inputs = append(c.inputs, combinerInput[K]{id: id, wm: MinWatermark})
	return nil
}

// RemoveInput removes an input, for a revoked partition or a retired
// upstream task, so it no longer holds the watermark back. Removing an
// unknown id does nothing.
func (c *Combiner[K]) RemoveInput(id K) {
	if i := c.find(id); i >= 0 {
		c.inputs = append(c.inputs[:i], c.inputs[i+1:]...)
	}
}

// Update records what the upstream task id reported: its watermark and
// whether all its inputs are idle. A watermark below the one it reported
// before is ignored (the idle flag is not). It returns ErrUnknownInput for
// an id that was not added with AddInput. Call Advance to see the effect.
func (c *Combiner[K]) Update(id K, wm Millis, idle bool) error {
	i := c.find(id)
	if i < 0 || c.inputs[i].gen != nil {
		return fmt.Errorf("%w: %v", ErrUnknownInput, id)
	}
	in := &c.inputs[i]
	in.wm, in.idle = max(in.wm, wm), idle
	return nil
}

// Advance recomputes the task's watermark at processing time now and
// returns it, with advanced true when it moved forward. The caller fires
// event-time timers only when it did. Call it after each record (or batch)
// and periodically, so that idle inputs are noticed without records.
func (c *Combiner[K]) Advance(now time.Time) (wm Millis, advanced bool) {
	return c.advance(now, true)
}

// AdvanceWithoutClock is Advance with each source partition's idleness
// as the last Advance saw it (Generator.WasIdle), a partition with a
// record since then being active: for after each record, with Advance
// called periodically to notice idleness, which only time brings.
func (c *Combiner[K]) AdvanceWithoutClock() (wm Millis, advanced bool) {
	return c.advance(time.Time{}, false)
}

func (c *Combiner[K]) advance(now time.Time, clock bool) (wm Millis, advanced bool) {
	if len(c.inputs) == 0 {
		c.allIdle = false
		return c.wm, false
	}
	lowest, highest, active := Millis(0), MinWatermark, false
	for i := range c.inputs {
		in := &c.inputs[i]
		w, idle := in.wm, in.idle
		if in.gen != nil {
			w = in.gen.Current()
			if clock {
				idle = in.gen.IsIdle(now)
			} else {
				idle = in.gen.WasIdle()
			}
		}
		highest = max(highest, w)
		if idle {
			continue
		}
		if !active || w < lowest {
			lowest, active = w, true
		}
	}
	c.allIdle = !active
	if !active {
		lowest = highest
	}
	if lowest > c.wm {
		c.wm = lowest
		return c.wm, true
	}
	return c.wm, false
}

// Reported returns what upstream task id last reported through Update
// (MinWatermark and not idle before any); ok is false if id is not an
// upstream input.
func (c *Combiner[K]) Reported(id K) (wm Millis, idle, ok bool) {
	i := c.find(id)
	if i < 0 || c.inputs[i].gen != nil {
		return MinWatermark, false, false
	}
	return c.inputs[i].wm, c.inputs[i].idle, true
}

// Current returns the task's watermark as of the last Advance.
func (c *Combiner[K]) Current() Millis { return c.wm }

// AllIdle reports whether every input was idle at the last Advance: the
// task's output is idle and should say so downstream (see
// UpstreamWatermark.Idle).
func (c *Combiner[K]) AllIdle() bool { return c.allIdle }

// IsLate reports whether a record with timestamp ts is late against the
// task's watermark (see IsLate). Ask before the Advance that follows the
// record: the record itself can only move the watermark below its own
// timestamp, but that Advance may also notice, at a later now, an input
// that went idle, and move the watermark past it.
func (c *Combiner[K]) IsLate(ts Millis) bool { return IsLate(ts, c.wm) }

func (c *Combiner[K]) find(id K) int {
	for i := range c.inputs {
		if c.inputs[i].id == id {
			return i
		}
	}
	return -1
}
