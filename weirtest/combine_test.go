package weirtest_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/weirtest"
	"github.com/weirstream/weir/windowing"
)

// amount is an event with a quantity, summed per key and window.
type amount struct {
	Key string    `json:"key"`
	At  time.Time `json:"at"`
	N   int64     `json:"n"`
}

// sumAmounts is a window aggregate summing amounts.
type sumAmounts struct{}

func (sumAmounts) Zero() int64                   { return 0 }
func (sumAmounts) Add(acc int64, a amount) int64 { return acc + a.N }
func (sumAmounts) Merge(a, b int64) int64        { return a + b }
func (sumAmounts) Result(acc int64) int64        { return acc }

const amountWindow = 5 * time.Second

// amountSums sums amounts per key and tumbling window, with the amounts of
// a key and window combined in each task first (operators.Combine) or not.
func amountSums(combine bool) *engine.Job {
	job := engine.NewJob("sums")
	var in engine.Stream[amount] = connectors.KafkaSource(job, "amounts", codec.JSON[amount](),
		connectors.WithWatermarks(windowing.BoundedOutOfOrderness(time.Second, func(a amount) time.Time { return a.At })))
	if combine {
		type keyWindow struct {
			key    string
			window int64
		}
		in = operators.Combine(in, "combine", func(a amount) keyWindow {
			return keyWindow{a.Key, a.At.UnixMilli() / amountWindow.Milliseconds()}
		}, func(a, b amount) amount {
			a.N += b.N
			return a
		})
	}
	keyed := operators.KeyBy(in, func(a amount) string { return a.Key }, operators.KeyByName("sums-by-key"),
		operators.KeyByCodecs(codec.String(), codec.JSON[amount]()))
	sums := operators.WindowAggregate(keyed, "sums", windowing.Tumbling(amountWindow), sumAmounts{}, codec.Key[int64]())
	connectors.KafkaSink(sums, "sums", codec.JSON[operators.Windowed[string, int64]]())
	return job
}

// Combining the records of a key and window ahead of the window
// aggregation commits what the aggregation alone does, on random inputs
// (out of order, late) sent in batches, watermark and clock moves and
// checkpoints, though it crashes at random points and the other does not.
func TestCombineCommitsWhatTheAggregationAloneDoes(t *testing.T) {
	send := func(h *weirtest.Harness, rng *rand.Rand, at time.Time) error {
		n := int64(rng.IntN(100))
		return sendBatch(h, rng, "amounts", at, func(key string, at time.Time) any { return amount{Key: key, At: at, N: n} })
	}
	for seed := uint64(1); seed <= 6; seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			combined := weirtest.New(t, amountSums(true), weirtest.Partitions(2))
			alone := weirtest.New(t, amountSums(false), weirtest.Partitions(2))
			crashWalk(t, rand.New(rand.NewPCG(seed, 0xc0b1)), combined, alone, []string{"sums"}, send)
		})
	}
}

// Combine merges what a window emits when the watermark passes its end:
// the counts of every key of a window, keyed by the window, go on as one
// record per task, and the total downstream is what the windows counted.
func TestCombineMergesAWindowsResults(t *testing.T) {
	job := engine.NewJob("totals")
	src := connectors.KafkaSource(job, "amounts", codec.JSON[amount](),
		connectors.WithWatermarks(windowing.BoundedOutOfOrderness(0, func(a amount) time.Time { return a.At })))
	counts := operators.WindowAggregate(operators.KeyBy(src, func(a amount) string { return a.Key }, operators.KeyByName("by-key"),
		operators.KeyByCodecs(codec.String(), codec.JSON[amount]())), "counts", windowing.Tumbling(amountWindow),
		sumAmounts{}, codec.Key[int64]())
	type total struct {
		End time.Time `json:"end"`
		N   int64     `json:"n"`
	}
	totals := operators.Map(counts, func(w operators.Windowed[string, int64]) (total, error) { return total{w.End, w.Value}, nil })
	combined := operators.Combine(totals, "per-window", func(x total) int64 { return x.End.UnixMilli() },
		func(a, b total) total { a.N += b.N; return a })
	seen := weirtest.Capture(combined)
	connectors.KafkaSink(combined, "totals", codec.JSON[total]())
	h := weirtest.New(t, job, weirtest.Partitions(1))

	at := parseClock(t, "10:00:00")
	var want int64
	for i := range 40 {
		n := int64(i + 1)
		want += n
		key := fmt.Sprintf("k%d", i)
		if err := weirtest.SendValue(h, "amounts", codec.JSON[amount](), key, amount{Key: key, At: at, N: n}, at); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.AdvanceWatermark(at.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	got := seen.Take()
	if len(got) != 1 || got[0].Value.N != want {
		t.Fatalf("the window's 40 counts went on as %d records, want one of total %d", len(got), want)
	}
}
