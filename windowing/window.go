package windowing

import (
	"fmt"
	"time"
)

// Window is a time window [Start, End): End is exclusive, so a record at
// End belongs to the next window, and the window's last instant is End-1ms
// (Flink's maxTimestamp), which is when its event-time trigger fires.
type Window struct {
	Start, End Millis
}

// MaxTimestamp is the window's last millisecond.
func (w Window) MaxTimestamp() Millis { return w.End - 1 }

// Intersects reports whether w and o overlap or touch, the condition for
// session windows to merge (Flink's TimeWindow.intersects).
func (w Window) Intersects(o Window) bool { return w.Start <= o.End && w.End >= o.Start }

// Cover is the smallest window containing both.
func (w Window) Cover(o Window) Window {
	return Window{Start: min(w.Start, o.Start), End: max(w.End, o.End)}
}

func (w Window) String() string { return fmt.Sprintf("[%s, %s)", w.Start, w.End) }

// Assigner puts a record's timestamp in windows.
type Assigner interface {
	// Assign appends to dst the windows ts belongs to, earliest first.
	Assign(dst []Window, ts Millis) []Window
	// Merging reports whether windows merge (sessions).
	Merging() bool
}

// windowStart is Flink's TimeWindow.getWindowStartWithOffset: the start of
// the window of length size, aligned to offset, that contains ts.
func windowStart(ts, offset, size Millis) Millis {
	rem := (ts - offset + size) % size
	if rem < 0 { // Go's % keeps the sign of the dividend; Java's does too, but ts may be negative
		rem += size
	}
	return ts - rem
}

// Tumbling returns fixed, non-overlapping windows of size, aligned to the
// epoch plus offset (Flink's TumblingEventTimeWindows.of(size, offset);
// offset shifts, e.g., hourly windows to a time zone).
func Tumbling(size time.Duration, offset ...time.Duration) Assigner {
	return &sliding{size: Millis(size.Milliseconds()), slide: Millis(size.Milliseconds()), offset: offsetOf(offset, size)}
}

// Sliding returns windows of size starting every slide (Flink's
// SlidingEventTimeWindows.of(size, slide, offset)): each record is in
// size/slide windows.
func Sliding(size, slide time.Duration, offset ...time.Duration) Assigner {
	return &sliding{size: Millis(size.Milliseconds()), slide: Millis(slide.Milliseconds()), offset: offsetOf(offset, slide)}
}

func offsetOf(offset []time.Duration, period time.Duration) Millis {
	if len(offset) == 0 || period.Milliseconds() <= 0 {
		return 0 // ValidateAssigner reports a non-positive period
	}
	return Millis(offset[0].Milliseconds()) % Millis(period.Milliseconds())
}

type sliding struct{ size, slide, offset Millis }

func (s *sliding) Merging() bool { return false }

func (s *sliding) Assign(dst []Window, ts Millis) []Window {
	if s.size <= 0 || s.slide <= 0 {
		return dst // invalid; ValidateAssigner says why
	}
	last := windowStart(ts, s.offset, s.slide)
	first := len(dst)
	for start := last; start > ts-s.size; start -= s.slide {
		dst = append(dst, Window{Start: start, End: start + s.size})
	}
	// Earliest first.
	for i, j := first, len(dst)-1; i < j; i, j = i+1, j-1 {
		dst[i], dst[j] = dst[j], dst[i]
	}
	return dst
}

// Sessions returns session windows: a record opens [ts, ts+gap), and
// windows of one key that intersect merge, so a session ends after gap of
// inactivity (Flink's EventTimeSessionWindows.withGap).
func Sessions(gap time.Duration) Assigner { return sessions{gap: Millis(gap.Milliseconds())} }

type sessions struct{ gap Millis }

func (s sessions) Merging() bool { return true }

func (s sessions) Assign(dst []Window, ts Millis) []Window {
	return append(dst, Window{Start: ts, End: ts + s.gap})
}

// ValidateAssigner reports an assigner that cannot work: sizes, slides and
// gaps must be positive.
func ValidateAssigner(a Assigner) error {
	switch a := a.(type) {
	case *sliding:
		if a.size <= 0 || a.slide <= 0 {
			return fmt.Errorf("%w: window size %dms and slide %dms must be positive", ErrInvalidStrategy, a.size, a.slide)
		}
	case sessions:
		if a.gap <= 0 {
			return fmt.Errorf("%w: session gap %dms must be positive", ErrInvalidStrategy, a.gap)
		}
	}
	return nil
}

// MergeWindows merges ws (one key's windows, in any order) the way Flink's
// TimeWindow.mergeWindows does: sorted by start, each window that
// intersects the running cover joins it. It returns the merged windows and,
// for each, which of ws it covers.
func MergeWindows(ws []Window) (merged []Window, members [][]int) {
	idx := make([]int, len(ws))
	for i := range idx {
		idx[i] = i
	}
	// Insertion sort: a key has few live sessions.
	for i := 1; i < len(idx); i++ {
		for j := i; j > 0 && ws[idx[j]].Start < ws[idx[j-1]].Start; j-- {
			idx[j], idx[j-1] = idx[j-1], idx[j]
		}
	}
	for _, i := range idx {
		if n := len(merged); n > 0 && merged[n-1].Intersects(ws[i]) {
			merged[n-1] = merged[n-1].Cover(ws[i])
			members[n-1] = append(members[n-1], i)
			continue
		}
		merged = append(merged, ws[i])
		members = append(members, []int{i})
	}
	return merged, members
}
