package engine

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/state"
)

// memoryBudget splits Config.MemoryLimit among everything in a replica
// that grows with its input, so that a backlog of any size is held by
// Kafka, not by the process: what does not fit waits behind paused
// partitions.
//
//	Go heap limit (GOMEMLIMIT, unless set)   limit - Pebble's share at first, then
//	                                         limit - what is outside Go - 1/16
//	                                         (tuneGoMemLimit)
//	state cache (committed state in memory)  3/16 (state.WithCacheSize)
//	operators' typed state (window            1/16, split among the tasks the
//	accumulators; Task.StateMemory)           replica runs (at least 1 MiB each)
//	Pebble block cache                       1/16: the state cache serves
//	                                         what is read again
//	Pebble memtable                          1/16 (two can be alive)
//	fetch buffers                            1/16 (per request), 1/1024 per partition, at most 1 MiB
//	producer buffer                          1/16
//	task queues                              1/8, shared by the tasks
//	write-back state cache                   1/8: a checkpoint comes early when it is full
//	timers in memory                         1/32: the earliest; the rest are read
//	                                         from the store as they come due
//
// The rest is for the records being processed, the Go runtime and
// headroom.
type memoryBudget struct {
	limit                         int64
	blockCache, memTable          int64
	fetchBytes, fetchPartition    int32
	producerBytes                 int
	queueBytes, dirtyBytes, goMem int64
	stateCache                    int64
	timers                        int64
	// opState is the operators' typed state in memory (Task.StateMemory),
	// split among the job's tasks.
	opState int64
}

// minMemoryLimit is the smallest budget that leaves Pebble its minimum
// memtable and each share room for a few batches.
const minMemoryLimit = 32 << 20

func newMemoryBudget(limit int64) (memoryBudget, bool) {
	if limit <= 0 {
		return memoryBudget{}, false
	}
	b := memoryBudget{
		limit:      limit,
		blockCache: limit / 16,
		stateCache: limit/4 - limit/16,
		opState:    limit / 16,
		memTable:   max(1<<20, limit/16),
		fetchBytes: int32(min(limit/16, 1<<30)),
		// Small: franz-go decodes a fetch whole, and small records take
		// many times their wire size as kgo.Records.
		fetchPartition: int32(min(limit/1024, 1<<20)),
		producerBytes:  int(limit / 16),
		queueBytes:     limit / 8,
		dirtyBytes:     limit / 8,
		timers:         limit / 32,
	}
	b.goMem = limit - b.blockCache - 2*b.memTable
	return b, true
}

// kgoOpts bounds franz-go's fetch and produce buffers.
func (b memoryBudget) kgoOpts() []kgo.Opt {
	return []kgo.Opt{
		kgo.FetchMaxBytes(b.fetchBytes),
		kgo.FetchMaxPartitionBytes(b.fetchPartition),
		kgo.MaxBufferedBytes(b.producerBytes),
	}
}

// stateMemory is one task's share of the operators' typed state when
// the replica runs every task of the job: the smallest it gets (a local
// task's, and a replica's before it is assigned any).
func (b memoryBudget) stateMemory(partitions int32, stages int) int64 {
	return b.stateShare(int64(partitions) * int64(stages))
}

// stateShare is each task's share of the operators' typed state when the
// replica runs tasks of them (runtime.tasksChangedLocked).
func (b memoryBudget) stateShare(tasks int64) int64 {
	return max(1<<20, b.opState/max(1, tasks))
}

// stateOpts bounds Pebble's caches.
func (b memoryBudget) stateOpts() []state.Opt {
	return []state.Opt{state.WithBlockCacheSize(b.blockCache), state.WithMemTableSize(uint64(b.memTable)), state.WithCacheSize(b.stateCache)}
}

// setGoMemLimit sets the Go runtime's soft memory limit to the heap's
// share, unless the user set GOMEMLIMIT, and reports whether it did. Job.Main
// calls it: the process is the job's. The runtime then keeps the limit
// tuned (tuneGoMemLimit).
func (b memoryBudget) setGoMemLimit() bool {
	if os.Getenv("GOMEMLIMIT") != "" {
		return false
	}
	debug.SetMemoryLimit(b.goMem)
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(budgetGCPercent)
	}
	return true
}

// budgetGCPercent is the garbage collector's target (GOGC) under a memory
// budget: the heap may grow to five times what is live before a cycle,
// a quarter of the cycles of Go's default 100, since the soft memory
// limit, not GOGC, is what bounds the heap; as a JVM grows its heap to
// -Xmx. With a live heap near the limit, the limit sets the pace anyway.
// Nexmark q5 on 8M events, Weir at 1 GiB: 386.6k events per CPU-second at
// GOGC 100, 462.3k at 200, 485.1k at 400 (528 MiB peak RSS), 521.6k at 800
// (875 MiB).
const budgetGCPercent = 400

// goLimitFor is the Go runtime's share of the budget when outside bytes
// of the process's resident memory are not Go's (Pebble's caches and
// memtables, built with cgo; nothing else here): the rest, less headroom
// for what the runtime keeps beyond its limit, and never below half.
// goMem assumes Pebble's shares are full and outside Go; a small state
// leaves most of them unused, and without cgo Pebble allocates in Go's
// heap, inside the limit: either way a fixed share starves the heap, and
// the garbage collector runs near its limit all the time (a catch-up ran
// at 0.8 of its unbudgeted speed, 35-40% of its CPU in the collector).
func (b memoryBudget) goLimitFor(outside int64) int64 {
	headroom := max(4<<20, b.limit/16)
	return max(b.limit/2, b.limit-outside-headroom)
}

// outsideGo returns how much of the process's resident memory the Go
// runtime does not account for: RSS less the memory Go has mapped and not
// returned. ok is false where RSS is not known (not Linux).
func outsideGo() (int64, bool) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, false
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, false
	}
	rss := pages * int64(os.Getpagesize())
	ms := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(ms)
	goMem := int64(ms[0].Value.Uint64()) - int64(ms[1].Value.Uint64())
	return max(0, rss-goMem), true
}

// tuneGoMemLimit keeps the Go runtime's soft memory limit at what the
// budget leaves it after the memory measured outside Go, every interval,
// until ctx ends.
func (b memoryBudget) tuneGoMemLimit(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if outside, ok := outsideGo(); ok {
			debug.SetMemoryLimit(b.goLimitFor(outside))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// parseBytes reads a size: a number of bytes, or one with a unit (KiB,
// MiB, GiB, or KB, MB, GB as powers of ten, or Kubernetes' Ki, Mi, Gi);
// "0" and "off" mean none.
func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "off" || s == "none" {
		return 0, nil
	}
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("size %q: want a number of bytes, maybe with a unit (256MiB, 1GiB)", s)
	}
	return int64(v * float64(mult)), nil
}

// formatBytes prints n in MiB.
func formatBytes(n int64) string {
	return strconv.FormatFloat(float64(n)/(1<<20), 'f', -1, 64) + "MiB"
}
