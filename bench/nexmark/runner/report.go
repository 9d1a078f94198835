package runner

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// WriteTables writes the measurements as Markdown tables: one per pass
// with the live phase (every figure), and one of each engine's
// exactly-once over at-least-once throughput for the queries measured
// both ways at the same interval.
func WriteTables(w io.Writer, cfg Config, ms []*Measurement) {
	type key struct {
		engine, query, guarantee string
		interval                 time.Duration
	}
	by := map[key]*Summary{}
	for _, m := range ms {
		k := key{m.Engine, m.Query, m.Guarantee, m.Interval}
		if by[k] == nil {
			by[k] = &Summary{}
		}
		by[k].add(m)
	}
	ceiling := func(m *Measurement) *Summary {
		c := by[key{"bare", CopyQuery, m.Guarantee, m.Interval}]
		if c == nil || len(c.Counted) == 0 {
			return nil
		}
		return c
	}
	reps := max(cfg.Reps, 1)
	for _, p := range cfg.Passes {
		fmt.Fprintf(w, "\n%s, checkpoint/commit interval %v, %d repetitions", p.Guarantee, p.Interval, reps)
		if cfg.MinWindow > 0 {
			fmt.Fprintf(w, ", measured windows of at least %v after a %v warm-up (inputs of %d events or more, sized per engine)", cfg.MinWindow, cfg.Warmup, cfg.Events)
		} else {
			fmt.Fprintf(w, ", %d events per run", cfg.Events)
		}
		if cfg.CeilingBeside {
			fmt.Fprint(w, ", the bare copy run beside each query (÷ ceiling: the median of each repetition's ratio to its copy, and the CPU ratios' range)")
		}
		if p.Live {
			fmt.Fprintf(w, ", latency at %d events/s for %v (window queries %v) in the first repetition", cfg.LiveRate, cfg.LiveFor, cfg.LiveForWindows)
		}
		fmt.Fprintln(w, ":")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| query | engine | events/CPU-s, median (min-max) | wall events/s, median (min-max) | ÷ ceiling (CPU / wall) | cores: engine / broker | latency p50 / p99 (n) | peak RSS | first output | events, window |")
		fmt.Fprintln(w, "| --- | --- | --: | --: | --: | --: | --: | --: | --: | --: |")
		queries := p.Queries
		if queries == nil {
			queries = cfg.Queries
		}
		for _, q := range append([]string{CopyQuery}, queries...) {
			for _, e := range cfg.Engines {
				s := by[key{e.Name, q, p.Guarantee, p.Interval}]
				if s == nil {
					continue
				}
				if len(s.Counted) == 0 {
					why := "no window long enough to count"
					if s.Failed != nil {
						why = "failed: " + oneLine(s.Failed.Err)
					} else if s.First != nil && s.First.Commits < MinCommits {
						why = fmt.Sprintf("%d commits in the window", s.First.Commits)
					}
					fmt.Fprintf(w, "| %s | %s | %s | | | | | | | |\n", q, e.Name, why)
					continue
				}
				ratio := ""
				if cfg.CeilingBeside && q != CopyQuery {
					ratio = pairedRatios(s, ms)
				} else if c := ceiling(s.Counted[0]); c != nil && c != s {
					ratio = fmt.Sprintf("%.2f / %.2f", s.Median(cpuRate)/c.Median(cpuRate), s.Median(wallRate)/c.Median(wallRate))
				}
				lat, first := "-", "-"
				if f := s.First; f != nil {
					if l := f.Latency; l != nil && l.N > 0 {
						lat = fmt.Sprintf("%s / %s (%d)", ms3(l.P50), ms3(l.P99), l.N)
					} else if l != nil {
						lat = "no results"
					}
					if f.FirstOutput > 0 {
						first = fmt.Sprintf("%.1f s", f.FirstOutput.Seconds())
					}
				}
				broker := "-"
				if s.Median(brokerCores) > 0 {
					broker = fmt.Sprintf("%.2f", s.Median(brokerCores))
				}
				counted := ""
				if n := len(s.Counted); n < reps {
					counted = fmt.Sprintf(", %d of %d runs", n, reps)
				}
				fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %.2f / %s | %s | %d MiB | %s | %s, %.1f s%s |\n",
					q, e.Name, s.spread(cpuRate), s.spread(wallRate), ratio, s.Median(engineCores), broker,
					lat, s.PeakRSS>>20, first, thousands(float64(s.Counted[0].Events)), s.Median(window), counted)
			}
		}
	}

	// Cross-check.
	var checked []*Measurement
	for _, m := range ms {
		if m.Match != "" {
			checked = append(checked, m)
		}
	}
	if len(checked) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintf(w, "Cross-check: each engine's results of the historical input against %s's, as multisets (q12 counts by processing time and is not compared):\n\n", cfg.Reference)
		fmt.Fprintln(w, "| query | engine | results |")
		fmt.Fprintln(w, "| --- | --- | --- |")
		for _, m := range checked {
			fmt.Fprintf(w, "| %s | %s | %s |\n", m.Query, m.Engine, oneLine(m.Match))
		}
	}

	// Exactly once over at least once.
	var rows []string
	for k, s := range by {
		if k.guarantee != "exactly-once" || len(s.Counted) == 0 {
			continue
		}
		a := by[key{k.engine, k.query, "at-least-once", k.interval}]
		if a == nil || len(a.Counted) == 0 {
			continue
		}
		rows = append(rows, fmt.Sprintf("| %s | %s | %v | %s | %s | %.2f | %.2f |", k.engine, k.query, k.interval,
			thousands(s.Median(wallRate)), thousands(a.Median(wallRate)), s.Median(wallRate)/a.Median(wallRate), s.Median(cpuRate)/a.Median(cpuRate)))
	}
	slices.Sort(rows)
	if len(rows) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Exactly once over at least once (same query, interval and input; medians):")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| engine | query | interval | exactly-once events/s | at-least-once events/s | ratio (wall) | ratio (CPU) |")
		fmt.Fprintln(w, "| --- | --- | --- | --: | --: | --: | --: |")
		for _, r := range rows {
			fmt.Fprintln(w, r)
		}
	}
}

// pairedRatios is the ÷ ceiling column under Config.CeilingBeside: each
// counted run's rates over those of the copy run beside its query in the
// same repetition, the median of those ratios (CPU / wall), and the CPU
// ratios' range when there are several.
func pairedRatios(s *Summary, ms []*Measurement) string {
	var cpu, wall []float64
	for _, m := range s.Counted {
		var c *Measurement
		for _, b := range ms {
			if b.Engine == "bare" && b.Beside == m.Query && b.Rep == m.Rep && b.Guarantee == m.Guarantee &&
				b.Interval == m.Interval && !b.Failed() && !b.Sizing && b.Commits >= MinCommits {
				c = b
			}
		}
		if c == nil || c.CPURate <= 0 || c.WallRate <= 0 {
			continue
		}
		cpu = append(cpu, m.CPURate/c.CPURate)
		wall = append(wall, m.WallRate/c.WallRate)
	}
	if len(cpu) == 0 {
		return ""
	}
	out := fmt.Sprintf("%.2f / %.2f", median(cpu), median(wall))
	if len(cpu) > 1 {
		out += fmt.Sprintf(" (CPU %.2f-%.2f)", slices.Min(cpu), slices.Max(cpu))
	}
	return out
}

func median(v []float64) float64 {
	v = slices.Sorted(slices.Values(v))
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// Summary gathers the runs of one engine, query, guarantee and interval.
type Summary struct {
	// Counted are the runs whose rates count: not failed, not sizing
	// runs, with enough commits in their window.
	Counted []*Measurement
	// First is the first repetition's run (latency, first output, the
	// cross-check); Failed is a failed run, if any.
	First, Failed *Measurement
	// PeakRSS is the largest of the runs'.
	PeakRSS int64
}

func (s *Summary) add(m *Measurement) {
	if s.First == nil && m.Rep <= 1 {
		s.First = m
	}
	s.PeakRSS = max(s.PeakRSS, m.PeakRSS)
	switch {
	case m.Failed():
		s.Failed = m
	case !m.Sizing && m.Commits >= MinCommits:
		s.Counted = append(s.Counted, m)
	}
}

// A figure of a run.
type figure func(*Measurement) float64

var (
	cpuRate     figure = func(m *Measurement) float64 { return m.CPURate }
	wallRate    figure = func(m *Measurement) float64 { return m.WallRate }
	window      figure = func(m *Measurement) float64 { return m.Window.Seconds() }
	engineCores figure = func(m *Measurement) float64 { return perWindow(m, m.EngineCPU) }
	brokerCores figure = func(m *Measurement) float64 { return perWindow(m, m.BrokerCPU) }
)

func perWindow(m *Measurement, cpu time.Duration) float64 {
	if m.Window <= 0 {
		return 0
	}
	return cpu.Seconds() / m.Window.Seconds()
}

// Median is the median of f over the counted runs (of an even number, the
// mean of the middle two).
func (s *Summary) Median(f figure) float64 {
	v := s.values(f)
	if len(v) == 0 {
		return 0
	}
	return median(v)
}

func (s *Summary) values(f figure) []float64 {
	v := make([]float64, 0, len(s.Counted))
	for _, m := range s.Counted {
		v = append(v, f(m))
	}
	slices.Sort(v)
	return v
}

// spread is f's median with its range: "123.4k (120.1k-130.0k)".
func (s *Summary) spread(f figure) string {
	v := s.values(f)
	if len(v) == 1 {
		return thousands(v[0])
	}
	return fmt.Sprintf("%s (%s-%s)", thousands(s.Median(f)), thousands(v[0]), thousands(v[len(v)-1]))
}

func ms3(d time.Duration) string {
	if d >= 10*time.Second {
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
	return fmt.Sprintf("%d ms", d.Milliseconds())
}

func thousands(f float64) string {
	if f >= 1e6 {
		return fmt.Sprintf("%.2fM", f/1e6)
	}
	if f >= 1000 {
		return fmt.Sprintf("%.1fk", f/1000)
	}
	return fmt.Sprintf("%.0f", f)
}

func oneLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return strings.ReplaceAll(s, "|", "/")
}
