package weirtest_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
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

// windowCounts counts events per key and window of a, in one phase
// (WindowAggregate after KeyBy) or in two (TwoPhaseWindowAggregate).
func windowCounts(a windowing.Assigner, lateness time.Duration, twoPhase bool) *engine.Job {
	job := engine.NewJob("windows")
	src := connectors.KafkaSource(job, "events", codec.JSON[event](),
		connectors.WithWatermarks(windowing.BoundedOutOfOrderness(time.Second, func(e event) time.Time { return e.At })))
	key := func(e event) string { return e.Key }
	var counts engine.Stream[operators.Windowed[string, int64]]
	if twoPhase {
		counts = operators.TwoPhaseWindowAggregate(src, "counts", key, codec.String(), a,
			operators.Count[event]{}, codec.Key[int64](), operators.AllowedLateness(lateness))
	} else {
		counts = operators.WindowAggregate(operators.KeyBy(src, key, operators.KeyByName("counts-by-key"),
			operators.KeyByCodecs(codec.String(), codec.JSON[event]())), "counts", a,
			operators.Count[event]{}, codec.Key[int64](), operators.AllowedLateness(lateness))
	}
	connectors.KafkaSink(counts, "counts", codec.JSON[operators.Windowed[string, int64]]())
	return job
}

// A two-phase window aggregation commits what the one-phase one does,
// record for record, on random inputs (out of order, late, within and
// past the allowed lateness) sent in batches, watermark and clock moves
// and checkpoints, though it crashes at random points and the other does
// not.
func TestTwoPhaseWindowAggregateCommitsWhatOnePhaseDoes(t *testing.T) {
	events := func(h *weirtest.Harness, rng *rand.Rand, at time.Time) error {
		return sendBatch(h, rng, "events", at, func(key string, at time.Time) any { return event{Key: key, At: at} })
	}
	for _, tc := range []struct {
		name     string
		a        windowing.Assigner
		lateness time.Duration
	}{
		{"tumbling", windowing.Tumbling(5 * time.Second), 2 * time.Second},
		{"sliding", windowing.Sliding(6*time.Second, 2*time.Second), 0},
		{"sliding-late", windowing.Sliding(4*time.Second, time.Second), 3 * time.Second},
	} {
		for seed := uint64(1); seed <= 6; seed++ {
			t.Run(fmt.Sprintf("%s/seed=%d", tc.name, seed), func(t *testing.T) {
				two := weirtest.New(t, windowCounts(tc.a, tc.lateness, true), weirtest.Partitions(2))
				one := weirtest.New(t, windowCounts(tc.a, tc.lateness, false), weirtest.Partitions(2))
				crashWalk(t, rand.New(rand.NewPCG(seed, 0x2fa5e)), two, one, []string{"counts"}, events)
			})
		}
	}
}

// The assigners two phases cannot serve are refused when the job is
// built, with the reason.
func TestTwoPhaseWindowAggregateRefusesWhatItCannotSplit(t *testing.T) {
	for _, tc := range []struct {
		a    windowing.Assigner
		opts []operators.WindowOpt
		want string
	}{
		{windowing.Sessions(time.Second), nil, "session windows"},
		{windowing.TumblingProcessingTime(time.Second), nil, "processing-time"},
		{windowing.Tumbling(time.Second), []operators.WindowOpt{operators.WithTrigger(windowing.OnCount(3))}, "WithTrigger"},
	} {
		job := engine.NewJob("refused")
		src := connectors.KafkaSource(job, "events", codec.JSON[event](),
			connectors.WithWatermarks(windowing.BoundedOutOfOrderness(time.Second, func(e event) time.Time { return e.At })))
		counts := operators.TwoPhaseWindowAggregate(src, "counts", func(e event) string { return e.Key }, codec.String(), tc.a,
			operators.Count[event]{}, codec.Key[int64](), tc.opts...)
		connectors.KafkaSink(counts, "counts", codec.JSON[operators.Windowed[string, int64]]())
		if _, err := weirtest.Start(job); !errors.Is(err, engine.ErrTopology) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: Start = %v, want ErrTopology naming %q", tc.a, err, tc.want)
		}
	}
}

// sendBatch sends one to six records under keys k0-k3 in one batch
// (Harness.SendBatch), the first at at and the others before or after it
// (up to 3 s before: some late, or past a window's end), each made by mk
// from its key and event time and encoded as JSON.
func sendBatch(h *weirtest.Harness, rng *rand.Rand, topic string, at time.Time, mk func(key string, at time.Time) any) error {
	recs := make([]*kgo.Record, 1+rng.IntN(6))
	for i := range recs {
		ts := at
		if i > 0 {
			ts = at.Add(time.Duration(rng.IntN(3500)-3000) * time.Millisecond)
		}
		key := fmt.Sprintf("k%d", rng.IntN(4))
		b, err := json.Marshal(mk(key, ts))
		if err != nil {
			return err
		}
		recs[i] = &kgo.Record{Key: []byte(key), Value: b, Timestamp: ts}
	}
	return h.SendBatch(topic, recs...)
}
