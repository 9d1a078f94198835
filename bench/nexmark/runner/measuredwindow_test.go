package runner

import (
	"testing"
	"time"
)

// TestWindowEndsAt99Percent: an engine that committed 99% of its input by
// 20 s and the rest only at 30 s, its commit path idle in between (Flink's
// source waiting out its 10 s poll), is measured to 20 s: the tail is left
// out of its window and its rates.
func TestWindowEndsAt99Percent(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	w := newMeasuredWindow(1_000_000, 2*time.Second)
	at := func(s float64, off int64, cpuS float64) sample {
		return sample{now: t0.Add(time.Duration(s * float64(time.Second))), off: off, caughtUp: true,
			cpu: time.Duration(cpuS * float64(time.Second)), broker: time.Duration(s * float64(time.Second) / 10)}
	}
	// 50k events a second on one core from 0 s to 20 s...
	for s := 0; s <= 20; s++ {
		w.observe(at(float64(s), int64(s)*50_000-int64(min(s, 1))*10_000, float64(s)))
	}
	// ...the last 1% at 30 s, with a third of a core spent meanwhile.
	for s := 21; s <= 29; s++ {
		if w.observe(at(float64(s), 990_000, 20+float64(s-20)/3)) {
			t.Fatalf("offsets moved at %d s", s)
		}
		if w.done() {
			t.Fatalf("done at %d s, before the last commit", s)
		}
	}
	w.observe(at(30, 1_000_000, 23.3))
	if !w.done() {
		t.Fatal("not done with all of the input committed")
	}
	var m Measurement
	w.measure(&m, t0, true)
	// The window opens at the first sample past the warm-up with a tenth
	// committed (3 s: 140k; the first commit was at 1 s) and closes at 20 s.
	if want := 17 * time.Second; m.Window != want {
		t.Errorf("window %v; want %v, to the sample with 99%% committed", m.Window, want)
	}
	if want := float64(990_000-140_000) / 17; m.WallRate != want || m.CPURate != want {
		t.Errorf("rates %.0f wall, %.0f CPU; want %.0f both, the tail left out", m.WallRate, m.CPURate, want)
	}
	if m.EngineCPU != 17*time.Second || m.BrokerCPU != 1700*time.Millisecond {
		t.Errorf("CPU: engine %v, broker %v; want 17s, 1.7s", m.EngineCPU, m.BrokerCPU)
	}
	if m.Commits != 17 {
		t.Errorf("%d commits in the window; want 17", m.Commits)
	}
}

// TestWindowOfARunDoneInItsWarmUp: a run that commits everything before
// its warm-up ends has no window; its rates from 10% to the end size the
// next run.
func TestWindowOfARunDoneInItsWarmUp(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	w := newMeasuredWindow(100_000, 30*time.Second)
	w.observe(sample{now: t0.Add(time.Second), off: 10_000, caughtUp: true, cpu: time.Second})
	w.observe(sample{now: t0.Add(4 * time.Second), off: 100_000, caughtUp: false, cpu: 3 * time.Second})
	if w.done() {
		t.Fatal("done before the later stages caught up")
	}
	w.observe(sample{now: t0.Add(5 * time.Second), off: 100_000, caughtUp: true, cpu: 4 * time.Second})
	var m Measurement
	w.measure(&m, t0, true)
	if m.Window != 0 || m.Commits != 0 || m.WallRate != 90_000/4.0 || m.CPURate != 90_000/3.0 {
		t.Errorf("window %v, %d commits, rates %.0f wall, %.0f CPU; want none, none, 22500, 30000", m.Window, m.Commits, m.WallRate, m.CPURate)
	}
}
