package operators

import (
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/windowing"
)

// maxHeld bounds the keys an operator holds between flushes (held): past
// it, they all go downstream at once.
const maxHeld = 1 << 14

// held is what an operator that merges records by key between flushes
// holds (Combine, the first phase of TwoPhaseWindowAggregate): a value
// per key, in the order the keys came, so that a replay of the same
// records flushed at the same points emits the same records, and the
// earliest event time among them, which holds the task's watermark.
type held[K comparable, V any] struct {
	index map[K]int
	vals  []V
	// hold is the earliest event time held, MaxMillis with none
	// (engine.InFlight's Hold).
	hold int64
}

func newHeld[K comparable, V any]() held[K, V] {
	return held[K, V]{index: map[K]int{}, hold: int64(windowing.MaxMillis)}
}

// at returns k's value, for a record of event time ts (Unix ms), and
// whether k had one: a zero value is added for it if not.
func (h *held[K, V]) at(k K, ts int64) (*V, bool) {
	h.hold = min(h.hold, ts)
	if i, ok := h.index[k]; ok {
		return &h.vals[i], true
	}
	h.index[k] = len(h.vals)
	var zero V
	h.vals = append(h.vals, zero)
	return &h.vals[len(h.vals)-1], false
}

// full reports whether as many keys are held as may be.
func (h *held[K, V]) full() bool { return len(h.vals) >= maxHeld }

// flush calls emit with each value held, in order, and holds nothing
// after, even when emit fails.
func (h *held[K, V]) flush(emit func(*V) error) error {
	defer func() {
		clear(h.vals)
		h.vals = h.vals[:0]
		clear(h.index)
		h.hold = int64(windowing.MaxMillis)
	}()
	for i := range h.vals {
		if err := emit(&h.vals[i]); err != nil {
			return err
		}
	}
	return nil
}

// lateInTask reports whether a record of event time ts (Unix ms) that an
// operator which holds records (held) is handed must go on at once: its
// task's watermark passed it. Held, it could reach the operator
// downstream after another task's watermark passed it there, and be
// judged late where it would not be alone; on at once, it is judged as it
// would be without the operator (Flink's local window aggregate forwards
// such a record). What an event-time timer emits at the watermark (a
// window's results) is not late: it is held, and goes before the
// watermark moves on.
func lateInTask(t *engine.Task, ts int64) bool {
	return ts <= int64(t.Watermark()) && !t.FiringEventTimer()
}
