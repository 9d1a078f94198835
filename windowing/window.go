package windowing

import (
	"fmt"
	"math"
	"time"
)

// Window is a time window [Start, End): End is exclusive, so a record at
// End belongs to the next window, and the window's last instant is End-1ms
// (Flink's maxTimestamp), which is when its event-time trigger fires.
type Window struct {
	Start, End Millis
}

// MaxTimestamp is the window's last millisecond; the global window's is
// the largest time there is, as Flink's GlobalWindow.maxTimestamp.
func (w Window) MaxTimestamp() Millis {
	if w == GlobalWindow {
		return MaxMillis
	}
	return w.End - 1
}

// MaxMillis is the largest instant in event time.
const MaxMillis = Millis(math.MaxInt64)

// CleanupTime is when a window's state goes: its last millisecond plus
// the allowed lateness, saturating at MaxMillis instead of wrapping
// around (Flink's WindowOperator.cleanupTime).
func (w Window) CleanupTime(lateness Millis) Millis {
	return AddMillis(w.MaxTimestamp(), lateness)
}

// AddMillis is m+d, saturating at MaxMillis (and MinWatermark) instead of
// wrapping around.
func AddMillis(m, d Millis) Millis {
	s := m + d
	switch {
	case d > 0 && s < m:
		return MaxMillis
	case d < 0 && s > m:
		return MinWatermark
	}
	return s
}

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
// the window of length size, aligned to offset, that contains ts. It does
// not overflow for any ts (|offset| < size).
func windowStart(ts, offset, size Millis) Millis {
	rem := (ts - offset) % size
	if rem < 0 { // Go's % keeps the sign of the dividend, as Java's does
		rem += size
	}
	if start := ts - rem; start <= ts {
		return start
	}
	return MinWatermark // the window starts before the smallest time there is
}

// Tumbling returns fixed, non-overlapping windows of size, aligned to the
// epoch plus offset (Flink's TumblingEventTimeWindows.of(size, offset);
// offset shifts, e.g., hourly windows to a time zone).
// The offset must be smaller than size in absolute value (ValidateAssigner
// says so otherwise, as Flink's constructor does).
func Tumbling(size time.Duration, offset ...time.Duration) Assigner {
	return &sliding{size: Millis(size.Milliseconds()), slide: Millis(size.Milliseconds()), offset: offsetOf(offset), tumbling: true}
}

// Sliding returns windows of size starting every slide (Flink's
// SlidingEventTimeWindows.of(size, slide, offset)): each record is in
// size/slide windows.
// The offset must be smaller than slide in absolute value.
func Sliding(size, slide time.Duration, offset ...time.Duration) Assigner {
	return &sliding{size: Millis(size.Milliseconds()), slide: Millis(slide.Milliseconds()), offset: offsetOf(offset)}
}

func offsetOf(offset []time.Duration) Millis {
	if len(offset) == 0 {
		return 0
	}
	return Millis(offset[0].Milliseconds())
}

type sliding struct {
	size, slide, offset Millis
	tumbling            bool // for messages
}

func (s *sliding) Merging() bool { return false }

func (s *sliding) Assign(dst []Window, ts Millis) []Window {
	if s.size <= 0 || s.slide <= 0 || s.offset >= s.slide || -s.offset >= s.slide {
		return dst // invalid; ValidateAssigner says why
	}
	last := windowStart(ts, s.offset, s.slide)
	first := len(dst)
	// Every window start from last back while the window still holds ts
	// (ts-start < size, computed without overflow: start <= ts).
	for start := last; uint64(ts)-uint64(start) < uint64(s.size); start -= s.slide {
		dst = append(dst, Window{Start: start, End: AddMillis(start, s.size)})
		if start-s.slide > start { // below the smallest time there is
			break
		}
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
	return append(dst, Window{Start: ts, End: AddMillis(ts, s.gap)})
}

// ValidateAssigner reports an assigner that cannot work, with Flink's
// rules: sizes, slides and gaps must be positive, and an offset smaller
// than the slide (a tumbling window's size) in absolute value.
func ValidateAssigner(a Assigner) error {
	if p, ok := a.(processingTime); ok {
		a = p.Assigner
	}
	if p, ok := a.(interface{ unwrap() Assigner }); ok {
		a = p.unwrap()
	}
	if d, ok := a.(interface{ hasGap() bool }); ok && !d.hasGap() {
		return fmt.Errorf("%w: dynamic sessions need a gap function", ErrInvalidStrategy)
	}
	switch a := a.(type) {
	case *sliding:
		if a.size <= 0 || a.slide <= 0 {
			return fmt.Errorf("%w: window size %dms and slide %dms must be positive", ErrInvalidStrategy, a.size, a.slide)
		}
		if a.offset >= a.slide || -a.offset >= a.slide {
			if a.tumbling {
				return fmt.Errorf("%w: tumbling window offset %dms must be smaller than the size %dms in absolute value", ErrInvalidStrategy, a.offset, a.size)
			}
			return fmt.Errorf("%w: sliding window offset %dms must be smaller than the slide %dms in absolute value", ErrInvalidStrategy, a.offset, a.slide)
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

// TumblingProcessingTime is Tumbling over processing time (Flink's
// TumblingProcessingTimeWindows): a record goes in the window of the
// task's clock when it is processed, and the window fires when the clock
// passes its end. Processing-time windows need no watermark and have no
// late records; their results are not reproducible on a replay.
func TumblingProcessingTime(size time.Duration, offset ...time.Duration) Assigner {
	return processingTime{Tumbling(size, offset...)}
}

// SlidingProcessingTime is Sliding over processing time (Flink's
// SlidingProcessingTimeWindows).
func SlidingProcessingTime(size, slide time.Duration, offset ...time.Duration) Assigner {
	return processingTime{Sliding(size, slide, offset...)}
}

// ProcessingTimeSessions is Sessions over processing time (Flink's
// ProcessingTimeSessionWindows): a session ends after gap of the clock
// without records of its key.
func ProcessingTimeSessions(gap time.Duration) Assigner {
	return processingTime{Sessions(gap)}
}

// processingTime marks an assigner as assigning by the task's clock.
type processingTime struct{ Assigner }

// IsEventTime reports whether a assigns windows by the records' event
// time (Tumbling, Sliding, Sessions), rather than by the clock of the task
// processing them (TumblingProcessingTime, ...). The global window is in
// neither: it reports false.
func IsEventTime(a Assigner) bool {
	switch a.(type) {
	case processingTime, global:
		return false
	}
	if _, ok := a.(interface{ processingTimeElements() }); ok {
		return false
	}
	return true
}

// Global returns the global window assigner: one window per key holding
// every record. It never ends, so it fires only by a trigger other than
// the event-time one (Flink's GlobalWindows, whose default trigger never
// fires): pair it with CountTrigger or a continuous trigger.
func Global() Assigner { return global{} }

type global struct{}

// GlobalWindow is the window of Global.
var GlobalWindow = Window{Start: MinWatermark, End: Millis(math.MaxInt64)}

func (global) Merging() bool { return false }
func (global) Assign(dst []Window, _ Millis) []Window {
	return append(dst, GlobalWindow)
}

// Trigger decides when a window emits its result (Flink's triggers). The
// default, EventTimeTrigger, fires once when the watermark passes the
// window's end.
type Trigger struct {
	Kind TriggerKind
	// Count is CountTrigger's record count.
	Count int64
	// Interval is the continuous triggers' period.
	Interval Millis
	// Purge clears the window's contents after each firing (Flink's
	// PurgingTrigger); otherwise each firing sees everything so far.
	Purge bool
}

// TriggerKind names a trigger.
type TriggerKind uint8

const (
	// EventTimeTrigger fires when the watermark passes the window's end.
	EventTimeTrigger TriggerKind = iota
	// ProcessingTimeTrigger fires when the clock passes the window's end.
	ProcessingTimeTrigger
	// CountTrigger fires every Count records of a key's window.
	CountTrigger
	// ContinuousEventTimeTrigger fires every Interval of event time while
	// the window is open (early results), and at its end.
	ContinuousEventTimeTrigger
	// ContinuousProcessingTimeTrigger fires every Interval of processing
	// time while the window has records, and at its (event-time) end.
	ContinuousProcessingTimeTrigger
)

// OnCount is CountTrigger(n): fire every n records.
func OnCount(n int64) Trigger { return Trigger{Kind: CountTrigger, Count: n} }

// OnProcessingTime fires when the clock passes the window's end.
func OnProcessingTime() Trigger { return Trigger{Kind: ProcessingTimeTrigger} }

// EveryEventTime fires every d of event time and at the window's end.
func EveryEventTime(d time.Duration) Trigger {
	return Trigger{Kind: ContinuousEventTimeTrigger, Interval: Millis(d.Milliseconds())}
}

// EveryProcessingTime fires every d of processing time and at the window's end.
func EveryProcessingTime(d time.Duration) Trigger {
	return Trigger{Kind: ContinuousProcessingTimeTrigger, Interval: Millis(d.Milliseconds())}
}

// Purging returns t clearing the window after each firing.
func (t Trigger) Purging() Trigger { t.Purge = true; return t }

// Validate reports a trigger that cannot work.
func (t Trigger) Validate() error {
	switch t.Kind {
	case CountTrigger:
		if t.Count < 1 {
			return fmt.Errorf("%w: count trigger of %d records", ErrInvalidStrategy, t.Count)
		}
	case ContinuousEventTimeTrigger, ContinuousProcessingTimeTrigger:
		if t.Interval < 1 {
			return fmt.Errorf("%w: continuous trigger every %dms", ErrInvalidStrategy, t.Interval)
		}
	}
	return nil
}

// ElementAssigner is an Assigner that also sees each record's value
// (Flink's WindowAssigner.assignWindows gets the element): window
// operators call AssignElement instead of Assign. An error fails the
// record, under the operator's error policy.
type ElementAssigner[T any] interface {
	Assigner
	AssignElement(dst []Window, v T, ts Millis) ([]Window, error)
}

// DynamicSessions returns session windows whose gap each record sets
// (Flink's EventTimeSessionWindows.withDynamicGap): a record opens [ts,
// ts+gap(v)), and windows of one key that intersect merge. A gap that is
// not positive fails the record.
func DynamicSessions[T any](gap func(T) time.Duration) ElementAssigner[T] {
	return dynamicSessions[T]{gap: gap}
}

// DynamicProcessingTimeSessions is DynamicSessions over processing time
// (Flink's ProcessingTimeSessionWindows.withDynamicGap).
func DynamicProcessingTimeSessions[T any](gap func(T) time.Duration) ElementAssigner[T] {
	return processingTimeElements[T]{processingTime{dynamicSessions[T]{gap: gap}}}
}

type dynamicSessions[T any] struct{ gap func(T) time.Duration }

func (dynamicSessions[T]) Merging() bool { return true }

func (s dynamicSessions[T]) hasGap() bool { return s.gap != nil }

// Assign has no record to ask for its gap: it assigns nothing. Window
// operators call AssignElement.
func (dynamicSessions[T]) Assign(dst []Window, _ Millis) []Window { return dst }

func (s dynamicSessions[T]) AssignElement(dst []Window, v T, ts Millis) ([]Window, error) {
	gap := Millis(s.gap(v).Milliseconds())
	if gap <= 0 {
		return dst, fmt.Errorf("dynamic session gap %dms: must be positive", gap)
	}
	return append(dst, Window{Start: ts, End: AddMillis(ts, gap)}), nil
}

type processingTimeElements[T any] struct{ processingTime }

func (processingTimeElements[T]) processingTimeElements() {}

func (p processingTimeElements[T]) unwrap() Assigner { return p.Assigner }

func (p processingTimeElements[T]) AssignElement(dst []Window, v T, ts Millis) ([]Window, error) {
	return p.Assigner.(dynamicSessions[T]).AssignElement(dst, v, ts)
}
