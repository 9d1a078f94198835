package windowing

import (
	"slices"
	"testing"
	"time"
)

// Every window of a sliding assigner is the union of its slices, each
// record is in one slice, the slice's windows are the record's, and each
// slice has exactly one owner among them: the last to end.
func TestSlicing(t *testing.T) {
	for _, c := range []struct {
		size, slide, offset time.Duration
		slice               Millis
	}{
		{10 * time.Second, 2 * time.Second, 0, 2000},
		{10 * time.Second, 4 * time.Second, 0, 2000},
		{5 * time.Second, 3 * time.Second, time.Second, 1000},
		{6 * time.Second, 4 * time.Second, -time.Second, 2000},
	} {
		a := Sliding(c.size, c.slide, c.offset)
		sl, ok := SlicingOf(a)
		if !ok || sl.Slice != c.slice {
			t.Fatalf("%v: slicing %v %v, want slices of %d ms", c, sl, ok, c.slice)
		}
		for ts := Millis(-20_000); ts < 20_000; ts += 137 {
			slice := sl.SliceOf(ts)
			if ts < slice.Start || ts >= slice.End || slice.End-slice.Start != c.slice {
				t.Fatalf("%v: slice of %d is %v", c, ts, slice)
			}
			ws := a.Assign(nil, ts)
			if got := a.Assign(nil, slice.Start); !slices.Equal(got, ws) {
				t.Fatalf("%v: windows of %d %v, of its slice %v %v", c, ts, ws, slice, got)
			}
			owners := 0
			for _, w := range ws {
				parts := sl.Slices(nil, w)
				if parts[0].Start != w.Start || parts[len(parts)-1].End != w.End || !slices.Contains(parts, slice) {
					t.Fatalf("%v: slices of %v: %v, not covering it or missing %v", c, w, parts, slice)
				}
				owned := slices.DeleteFunc(slices.Clone(parts), func(p Window) bool { return !sl.Owns(w, p) })
				if got := sl.Owned(nil, w); !slices.Equal(got, owned) {
					t.Fatalf("%v: %v owns %v, Owned says %v", c, w, owned, got)
				}
				if sl.Owns(w, slice) {
					owners++
					if w != ws[len(ws)-1] {
						t.Fatalf("%v: slice %v owned by %v, not the last of %v", c, slice, w, ws)
					}
				}
			}
			if owners != 1 {
				t.Fatalf("%v: slice %v has %d owners among %v", c, slice, owners, ws)
			}
		}
	}
	for _, a := range []Assigner{Tumbling(time.Second), Sliding(time.Second, time.Second), Sessions(time.Second), SlidingProcessingTime(2*time.Second, time.Second), Sliding(0, time.Second)} {
		if _, ok := SlicingOf(a); ok {
			t.Errorf("%#v: sliced, want no slicing", a)
		}
	}
}
