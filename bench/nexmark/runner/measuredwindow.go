package runner

import "time"

// sample is one poll of a run: when, the input's committed offsets
// (summed over partitions), whether the engine's later stages have caught
// up, and the CPU the engine and the broker had used.
type sample struct {
	now         time.Time
	off         int64
	caughtUp    bool
	cpu, broker time.Duration
}

// measuredWindow picks a run's measured window from its samples: it opens at the
// first sample at least warmup after the first commit, once a tenth of the
// input is committed, and closes at the first sample with windowEnd percent
// of it committed. The run is done when all of it is committed and the
// later stages caught up.
type measuredWindow struct {
	n, nEnd int64
	warmup  time.Duration

	first, t10, tStart, tEnd, t100  time.Time
	offStart, offEnd                int64
	cpu10, cpuStart, cpuEnd, cpu100 time.Duration
	brokerStart, brokerEnd          time.Duration
	commits                         int
	lastOff                         int64
}

func newMeasuredWindow(events int64, warmup time.Duration) *measuredWindow {
	return &measuredWindow{n: events, nEnd: events * windowEnd / 100, warmup: warmup, lastOff: -1}
}

// observe takes the next sample and reports whether the committed offsets
// moved since the one before.
func (w *measuredWindow) observe(s sample) (moved bool) {
	if s.off != w.lastOff {
		w.lastOff, moved = s.off, true
		if !w.tStart.IsZero() && w.tEnd.IsZero() {
			w.commits++
		}
	}
	if w.first.IsZero() && s.off > 0 {
		w.first = s.now
	}
	if w.t10.IsZero() && s.off*10 >= w.n {
		w.t10, w.cpu10 = s.now, s.cpu
	}
	if w.tStart.IsZero() && !w.t10.IsZero() && s.now.Sub(w.first) >= w.warmup && s.off < w.nEnd {
		w.tStart, w.offStart, w.cpuStart, w.brokerStart = s.now, s.off, s.cpu, s.broker
	}
	if !w.tStart.IsZero() && w.tEnd.IsZero() && s.off >= w.nEnd {
		w.tEnd, w.offEnd, w.cpuEnd, w.brokerEnd = s.now, s.off, s.cpu, s.broker
	}
	if s.off >= w.n && s.caughtUp && w.t100.IsZero() {
		w.t100, w.cpu100 = s.now, s.cpu
	}
	return moved
}

// done reports whether the run has committed all of its input.
func (w *measuredWindow) done() bool { return !w.t100.IsZero() }

// measure fills m's window, rates and commits. A run done within the
// warm-up has an empty window, and the rates of its 10% to 100% (or, all
// in one commit, of the whole run since start, start-up included: a low
// guess) size the next run. brokerOK says the broker's CPU was read.
func (w *measuredWindow) measure(m *Measurement, start time.Time, brokerOK bool) {
	if w.tStart.IsZero() {
		m.Commits = 0
		if d, c := w.t100.Sub(w.t10), w.cpu100-w.cpu10; d > 0 && c > 0 {
			m.WallRate, m.CPURate = float64(w.n-w.n/10)/d.Seconds(), float64(w.n-w.n/10)/c.Seconds()
		} else if d := w.t100.Sub(start); d > 0 {
			m.WallRate = float64(w.n) / d.Seconds()
		}
		return
	}
	m.Commits = w.commits
	m.Window, m.EngineCPU = w.tEnd.Sub(w.tStart), w.cpuEnd-w.cpuStart
	if brokerOK {
		m.BrokerCPU = w.brokerEnd - w.brokerStart
	}
	if m.Window > 0 {
		m.WallRate = float64(w.offEnd-w.offStart) / m.Window.Seconds()
	}
	if m.EngineCPU > 0 {
		m.CPURate = float64(w.offEnd-w.offStart) / m.EngineCPU.Seconds()
	}
}
