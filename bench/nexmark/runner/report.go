package runner

import (
	"fmt"
	"io"
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
	by := map[key]*Measurement{}
	for _, m := range ms {
		by[key{m.Engine, m.Query, m.Guarantee, m.Interval}] = m
	}
	ceiling := func(m *Measurement) *Measurement {
		c := by[key{"bare", CopyQuery, m.Guarantee, m.Interval}]
		if c == nil || c.Failed() {
			return nil
		}
		return c
	}
	for _, p := range cfg.Passes {
		fmt.Fprintf(w, "\n%s, checkpoint/commit interval %v, %d events per run", p.Guarantee, p.Interval, cfg.Events)
		if p.Live {
			fmt.Fprintf(w, ", latency at %d events/s for %v (window queries %v)", cfg.LiveRate, cfg.LiveFor, cfg.LiveForWindows)
		}
		fmt.Fprintln(w, ":")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| query | engine | events/CPU-s | wall events/s | ÷ ceiling (CPU / wall) | latency p50 / p99 (n) | peak RSS | first output |")
		fmt.Fprintln(w, "| --- | --- | --: | --: | --: | --: | --: | --: |")
		queries := p.Queries
		if queries == nil {
			queries = cfg.Queries
		}
		for _, q := range append([]string{CopyQuery}, queries...) {
			for _, e := range cfg.Engines {
				m := by[key{e.Name, q, p.Guarantee, p.Interval}]
				if m == nil {
					continue
				}
				if m.Failed() {
					fmt.Fprintf(w, "| %s | %s | failed: %s | | | | | |\n", q, m.Engine, oneLine(m.Err))
					continue
				}
				ratio := ""
				if c := ceiling(m); c != nil && m != c && c.Commits >= MinCommits {
					ratio = fmt.Sprintf("%.2f / %.2f", m.CPURate/c.CPURate, m.WallRate/c.WallRate)
				}
				lat := "-"
				if l := m.Latency; l != nil && l.N > 0 {
					lat = fmt.Sprintf("%s / %s (%d)", ms3(l.P50), ms3(l.P99), l.N)
				} else if l != nil {
					lat = "no results"
				}
				first := "-"
				if m.FirstOutput > 0 {
					first = fmt.Sprintf("%.1f s", m.FirstOutput.Seconds())
				}
				cpu, wall := thousands(m.CPURate), thousands(m.WallRate)
				if m.Commits < MinCommits {
					cpu, wall, ratio = "-", fmt.Sprintf("- (%d commits)", m.Commits), ""
				}
				fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %d MiB | %s |\n",
					q, m.Engine, cpu, wall, ratio, lat, m.PeakRSS>>20, first)
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
	for _, m := range ms {
		if m.Guarantee != "exactly-once" || m.Failed() {
			continue
		}
		a := by[key{m.Engine, m.Query, "at-least-once", m.Interval}]
		if a == nil || a.Failed() || a.WallRate == 0 || a.CPURate == 0 || a.Commits < MinCommits || m.Commits < MinCommits {
			continue
		}
		rows = append(rows, fmt.Sprintf("| %s | %s | %v | %s | %s | %.2f | %.2f |", m.Engine, m.Query, m.Interval,
			thousands(m.WallRate), thousands(a.WallRate), m.WallRate/a.WallRate, m.CPURate/a.CPURate))
	}
	if len(rows) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Exactly once over at least once (same query, interval and input):")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| engine | query | interval | exactly-once events/s | at-least-once events/s | ratio (wall) | ratio (CPU) |")
		fmt.Fprintln(w, "| --- | --- | --- | --: | --: | --: | --: |")
		for _, r := range rows {
			fmt.Fprintln(w, r)
		}
	}
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
