package windowing

// Slicing cuts sliding windows into slices, as Flink SQL's window
// aggregation does (its SliceAssigners): each window is a whole number of
// consecutive slices, a record belongs to exactly one slice, and a
// window's aggregate is its slices' accumulators merged. A record then
// updates one accumulator instead of one per window it falls in (size /
// slide of them).
type Slicing struct {
	// Slice is the slices' length: the greatest common divisor of the
	// windows' size and slide.
	Slice               Millis
	size, slide, offset Millis
}

// SlicingOf returns the slicing of assigner a: ok only for event-time
// sliding windows (Sliding) that hold more than one slice each.
func SlicingOf(a Assigner) (Slicing, bool) {
	s, ok := a.(*sliding)
	if !ok || s.tumbling || ValidateAssigner(a) != nil {
		return Slicing{}, false
	}
	p := gcd(s.size, s.slide)
	if s.size/p < 2 {
		return Slicing{}, false
	}
	return Slicing{Slice: p, size: s.size, slide: s.slide, offset: s.offset}, true
}

func gcd(a, b Millis) Millis {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// SliceOf returns the slice holding ts. Slices are aligned like the
// windows, so a window holds a slice whole or not at all.
func (s Slicing) SliceOf(ts Millis) Window {
	start := windowStart(ts, s.offset%s.Slice, s.Slice)
	return Window{Start: start, End: AddMillis(start, s.Slice)}
}

// Slices appends the slices of window w to dst, earliest first.
func (s Slicing) Slices(dst []Window, w Window) []Window {
	for start := w.Start; start < w.End; start = AddMillis(start, s.Slice) {
		dst = append(dst, Window{Start: start, End: AddMillis(start, s.Slice)})
		if AddMillis(start, s.Slice) == start {
			break
		}
	}
	return dst
}

// Owns reports whether w is the last window to end that holds slice: the
// window after which nothing needs the slice.
func (s Slicing) Owns(w, slice Window) bool {
	return windowStart(slice.Start, s.offset, s.slide) == w.Start
}

// Owned appends to dst the slices w owns (Owns): its first slide's worth.
func (s Slicing) Owned(dst []Window, w Window) []Window {
	end := min(AddMillis(w.Start, s.slide), w.End)
	for start := w.Start; start < end; start = AddMillis(start, s.Slice) {
		dst = append(dst, Window{Start: start, End: AddMillis(start, s.Slice)})
		if AddMillis(start, s.Slice) == start {
			break
		}
	}
	return dst
}

// Slide is the windows' slide: a window's next starts and ends that much
// later.
func (s Slicing) Slide() Millis { return s.slide }
