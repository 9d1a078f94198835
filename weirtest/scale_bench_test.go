package weirtest_test

import (
	"bytes"
	"context"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/internal/local"
	"github.com/weirstream/weir/internal/procmem"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/state"
)

// BenchmarkKeyScale is the keyed count of BenchmarkKeyedState over 10k, 1M
// and 10M distinct keys, visited in turn, with the engine's default memory
// budget's state shares (256 MiB: 64 MiB for committed state in memory),
// the store on disk. Every key is
// written once before the timer starts, so the timed records find their
// key's state: in memory while the task's state fits the state cache, in
// Pebble beyond it. Besides records/s it reports the Go heap in use and
// the process's resident memory after a collection at the end: what must
// stay flat as keys grow past the budget.
func BenchmarkKeyScale(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000, 10_000_000} {
		b.Run(strconv.Itoa(n)+"-keys", func(b *testing.B) {
			job := engine.NewJob("bench")
			src := connectors.KafkaSource(job, "in", codec.Bytes())
			fired := 0
			operators.Process(operators.KeyByRecordKey(src, codec.String()), "count",
				operators.KeyedProcessFunction[string, []byte, int64](&counter{fired: &fired}))
			// On disk, with the shares a 256 MiB budget gives the store
			// (engine/memory.go): an in-memory file system would put the
			// whole database in the heap.
			st, err := state.Open(b.TempDir(), state.WithCacheSize(64<<20), state.WithBlockCacheSize(16<<20), state.WithMemTableSize(16<<20))
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			lt, err := local.NewTask(context.Background(), job, 0, 0, local.Env{Producer: discard{}, Store: st})
			if err != nil {
				b.Fatal(err)
			}
			key := make([]byte, 0, 16)
			recs := make([]*kgo.Record, 1)
			step := func(i int) {
				key = strconv.AppendInt(append(key[:0], "key-"...), int64(i%n), 10)
				recs[0] = &kgo.Record{Topic: "in", Key: bytes.Clone(key), Offset: int64(i)}
				if err := lt.Process("in", recs); err != nil {
					b.Fatal(err)
				}
				if i%checkpointEvery == checkpointEvery-1 {
					if err := lt.Checkpoint(int64(i)); err != nil {
						b.Fatal(err)
					}
				}
			}
			for i := range n {
				step(i)
			}
			i := n
			for b.Loop() {
				step(i)
				i++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
			procmem.ReportMemory(b)
		})
	}
}
