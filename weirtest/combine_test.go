package weirtest_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

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

// A panic in Combine's key or merge function meets the job's error policy
// for the record in hand, as a panic in Map's function does: with dead
// letters, the record goes to the dead-letter topic, what the combiner
// held before it goes on unchanged, and the task keeps running.
func TestCombineDeadLettersWhatItsFunctionsPanicOn(t *testing.T) {
	job := engine.NewJob("combined", engine.WithErrorPolicy(engine.DeadLetter))
	src := connectors.KafkaSource(job, "amounts", codec.JSON[amount]())
	combined := operators.Combine(src, "per-key", func(a amount) string {
		if a.N < 0 {
			panic("negative amount")
		}
		return a.Key
	}, func(a, b amount) amount {
		if b.N == 13 {
			panic("unlucky amount")
		}
		a.N += b.N
		return a
	})
	connectors.KafkaSink(combined, "totals", codec.JSON[amount]())
	h := weirtest.New(t, job, weirtest.Partitions(1))

	at := parseClock(t, "10:00:00")
	var recs []*kgo.Record
	for _, a := range []amount{{"a", at, 1}, {"a", at, -5}, {"b", at, 2}, {"a", at, 13}, {"a", at, 4}, {"b", at, 13}} {
		v, err := codec.JSON[amount]().Encode(a)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: "amounts", Key: []byte(a.Key), Value: v, Timestamp: at})
	}
	// One batch, so the combiner holds a's and b's records when the bad
	// ones come.
	if err := h.SendBatch("amounts", recs...); err != nil {
		t.Fatalf("a panicking function stopped the task: %v", err)
	}
	if err := h.EndInput(); err != nil {
		t.Fatal(err)
	}
	totals := map[string]int64{}
	for _, r := range h.ReadOutput("totals") {
		a, err := codec.JSON[amount]().Decode(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		totals[a.Key] += a.N
	}
	if want := map[string]int64{"a": 5, "b": 2}; !maps.Equal(totals, want) {
		t.Errorf("totals %v, want %v: the good records, and nothing of the bad", totals, want)
	}
	var dead []int64
	for _, r := range h.ReadOutput("combined-dlq") {
		a, err := codec.JSON[amount]().Decode(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		dead = append(dead, a.N)
	}
	slices.Sort(dead)
	if want := []int64{-5, 13, 13}; !slices.Equal(dead, want) {
		t.Errorf("dead letters %v, want the three records key or merge panicked on, %v", dead, want)
	}
}
