package windowing

import "time"

// A Generator tracks the watermark of one input partition under a
// WatermarkStrategy: the largest timestamp seen so far minus the maximum
// out-of-orderness minus 1ms, or MinWatermark before the first record. The
// watermark never goes backwards.
//
// It also tracks whether the partition is idle: no record for the
// strategy's idle timeout, measured in processing time.
//
// The watermark is computed on every record rather than periodically (Flink
// emits it every 200ms by default); the caller decides how often to look.
//
// Get one from WatermarkStrategy.NewGenerator, one per input partition; the
// zero value is not ready for use.
type Generator struct {
	bound       Millis        // max out-of-orderness + 1ms
	idleTimeout time.Duration // 0: never idle
	maxSeen     Millis        // largest timestamp seen; MinWatermark before the first
	wm          Millis

	// lastActive is the processing time of the last record given by
	// OnEvent, or of the first IsIdle call after the first record or
	// after a record given by Observe; valid when started.
	lastActive time.Time
	started    bool
	// active: a record came through Observe since the last IsIdle.
	active bool
	// idle is IsIdle's last answer, until the next record.
	idle bool
	// markedIdle is set by MarkIdle until the next record.
	markedIdle bool
}

// OnEvent records a record with event time ts, read at processing time
// now. Every record counts as activity, a late one too.
func (g *Generator) OnEvent(ts Millis, now time.Time) {
	g.lastActive, g.started, g.active = now, true, false
	g.Observe(ts)
}

// Observe records a record with event time ts without reading a clock,
// for a caller that sees records faster than a clock is worth reading:
// the record counts as activity at the next IsIdle, as Flink's idleness
// timer counts records and looks at its clock only when it checks. The
// partition then goes idle a timeout after the first check that follows
// its last record, not after the record itself: later by at most the
// interval between checks.
func (g *Generator) Observe(ts Millis) {
	g.active, g.idle, g.markedIdle = true, false, false
	if ts <= g.maxSeen {
		return
	}
	g.maxSeen = ts
	// Saturate rather than wrap for timestamps near the bottom of the range.
	if ts >= MinWatermark+g.bound {
		g.wm = ts - g.bound // maxSeen only grows, so neither does wm
	}
}

// Emit raises the partition's watermark to wm (never back), as a source
// emitting a watermark of its own does (Flink's WatermarkOutput.emitWatermark;
// a test harness's processWatermark1/2).
func (g *Generator) Emit(wm Millis) {
	g.wm = max(g.wm, wm)
}

// MarkIdle marks the partition idle until its next record, whatever the
// idle timeout (Flink's WatermarkOutput.markIdle).
func (g *Generator) MarkIdle() { g.markedIdle = true }

// Current returns the partition's watermark.
func (g *Generator) Current() Millis { return g.wm }

// MaxSeen returns the largest event time seen, MinWatermark before any:
// what a checkpoint keeps so that a restart resumes the partition's
// watermark by feeding it back to OnEvent.
func (g *Generator) MaxSeen() Millis { return g.maxSeen }

// IsIdle reports whether no record has arrived for the idle timeout, that
// is now - (processing time of the last record) >= timeout. It is always
// false when the strategy has no idle timeout.
//
// The idle clock of a partition that has not had a record yet starts at
// the first IsIdle call, so a partition that stays empty goes idle one
// timeout after the task first asks. (Flink starts the clock at its first
// periodic check that sees no activity, and goes idle only once strictly
// more than the timeout has passed; the two differ by at most one check
// interval.)
func (g *Generator) IsIdle(now time.Time) bool {
	if g.markedIdle {
		return true
	}
	if g.idleTimeout == 0 {
		return false
	}
	if !g.started || g.active {
		g.lastActive, g.started, g.active = now, true, false
		return false
	}
	g.idle = now.Sub(g.lastActive) >= g.idleTimeout
	return g.idle
}

// WasIdle is IsIdle without a clock: IsIdle's last answer, false once a
// record came after it. A partition goes idle only as time passes, which
// IsIdle sees.
func (g *Generator) WasIdle() bool { return g.markedIdle || g.idle }
