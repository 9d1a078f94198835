package engine

import (
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/state"
)

// memoryBudget splits Config.MemoryLimit among everything in a replica
// that grows with its input, so that a backlog of any size is held by
// Kafka, not by the process: what does not fit waits behind paused
// partitions.
//
//	Go heap limit (GOMEMLIMIT, unless set)   limit - Pebble's share
//	Pebble block cache                       1/8
//	Pebble memtable                          1/16 (two can be alive)
//	fetch buffers                            1/16 (per request), 1/64 per partition, at most 1 MiB
//	producer buffer                          1/16
//	task queues                              1/8, shared by the tasks
//	write-back state cache                   1/8: a checkpoint comes early when it is full
//
// The rest is for the records being processed, the Go runtime and
// headroom.
type memoryBudget struct {
	limit                         int64
	blockCache, memTable          int64
	fetchBytes, fetchPartition    int32
	producerBytes                 int
	queueBytes, dirtyBytes, goMem int64
}

// minMemoryLimit is the smallest budget that leaves Pebble its minimum
// memtable and each share room for a few batches.
const minMemoryLimit = 32 << 20

func newMemoryBudget(limit int64) (memoryBudget, bool) {
	if limit <= 0 {
		return memoryBudget{}, false
	}
	b := memoryBudget{
		limit:          limit,
		blockCache:     limit / 8,
		memTable:       max(1<<20, limit/16),
		fetchBytes:     int32(min(limit/16, 1<<30)),
		fetchPartition: int32(min(limit/64, 1<<20)),
		producerBytes:  int(limit / 16),
		queueBytes:     limit / 8,
		dirtyBytes:     limit / 8,
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

// stateOpts bounds Pebble's caches.
func (b memoryBudget) stateOpts() []state.Opt {
	return []state.Opt{state.WithBlockCacheSize(b.blockCache), state.WithMemTableSize(uint64(b.memTable))}
}

// setGoMemLimit sets the Go runtime's soft memory limit to the heap's
// share, unless the user set GOMEMLIMIT. Job.Main calls it: the process
// is the job's.
func (b memoryBudget) setGoMemLimit() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(b.goMem)
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
