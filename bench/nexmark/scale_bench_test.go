package nexmark

import (
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"testing"

	"github.com/weirstream/weir/internal/procmem"
	"github.com/weirstream/weir/state"
)

// BenchmarkQ5Scale is q5 (bids per auction in 10 s windows sliding by
// 2 s) as its live state grows: n auctions take bids, uniformly (no hot
// auction), at an event-time rate that puts about n bids in each window,
// so a window counts about 0.64n distinct auctions and the state holds
// five windows' worth of them. The store is on disk with the shares a
// 256 MiB memory budget gives it (engine/memory.go): 64 MiB of committed
// state in memory, 16 MiB of block cache, 16 MiB of memtables. Each size
// first runs one window (10 s of event time, about 1.1n events) untimed;
// after the timed events it collects garbage and reports the Go heap in
// use and the process's resident memory (and, with
// WEIR_BENCH_HEAP_PROFILE_DIR set, writes a heap profile there):
//
//	go test -run '^$' -bench BenchmarkQ5Scale -benchtime 1000000x -timeout 60m ./bench/nexmark/
func BenchmarkQ5Scale(b *testing.B) {
	q5 := Queries[0]
	for _, q := range Queries {
		if q.Name == "q5" {
			q5 = q
		}
	}
	for _, n := range []int{10_000, 1_000_000, 10_000_000} {
		b.Run(strconv.Itoa(n)+"-auctions", func(b *testing.B) {
			st, err := state.Open(b.TempDir(), state.WithCacheSize(64<<20), state.WithBlockCacheSize(16<<20), state.WithMemTableSize(16<<20))
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			p, err := newPipelineOn(q5, st)
			if err != nil {
				b.Fatal(err)
			}
			rate := max(10_000, n/9)
			g := NewGenerator(Config{Seed: 1, EventsPerSecond: rate, NumInFlightAuctions: n, HotAuctionRatio: 1})
			next := func(k int) []Event {
				evs := make([]Event, k)
				for i := range evs {
					evs[i] = g.Next()
				}
				return evs
			}
			for left := int(Q5WindowSize.Seconds()) * rate; left > 0; left -= checkpointEvery {
				if _, err := p.run(records(next(min(left, checkpointEvery)), batchSize)); err != nil {
					b.Fatal(err)
				}
			}
			before := p.outputs
			b.ResetTimer()
			for done := 0; done < b.N; done += checkpointEvery {
				b.StopTimer()
				batches := records(next(min(b.N-done, checkpointEvery)), batchSize)
				b.StartTimer()
				if _, err := p.run(batches); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(p.outputs-before)/float64(b.N), "outputs/event")
			procmem.ReportMemory(b)
			if dir := os.Getenv("WEIR_BENCH_HEAP_PROFILE_DIR"); dir != "" {
				// What holds the heap, with the state still live.
				f, err := os.Create(filepath.Join(dir, "q5-"+strconv.Itoa(n)+".heap"))
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				if err := pprof.WriteHeapProfile(f); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
