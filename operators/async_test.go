package operators_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/internal/local"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/weirtest"
	"github.com/weirstream/weir/windowing"
)

// slowUpper answers each value upper-cased after the delay its value names
// ("a:30" waits 30ms), so later records can finish first.
func slowUpper(ctx context.Context, v string) (string, error) {
	name, ms, _ := strings.Cut(v, ":")
	d, _ := strconv.Atoi(ms)
	select {
	case <-time.After(time.Duration(d) * time.Millisecond):
		return strings.ToUpper(name), nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func capturedValues[T any](cs []weirtest.Captive[T]) []T {
	var vs []T
	for _, c := range cs {
		vs = append(vs, c.Value)
	}
	return vs
}

// Calls overlap: records whose calls take 60, 40, 20 ms go out in input
// order, and all are out at the checkpoint (a barrier waits for them).
// Unordered, each comes out when ready, but a key's records keep their
// order.
func TestAsyncMapOrder(t *testing.T) {
	for _, unordered := range []bool{false, true} {
		t.Run(fmt.Sprintf("unordered=%v", unordered), func(t *testing.T) {
			job := engine.NewJob("async")
			src := connectors.KafkaSource(job, "in", codec.String())
			opts := []operators.AsyncOpt{operators.AsyncName("upper")}
			if unordered {
				opts = append(opts, operators.AsyncUnordered())
			}
			// inFlight and most count the calls running at once.
			var inFlight, most atomic.Int64
			call := func(ctx context.Context, v string) (string, error) {
				n := inFlight.Add(1)
				defer inFlight.Add(-1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				return slowUpper(ctx, v)
			}
			out := weirtest.Capture(operators.AsyncMap(src, call, opts...))
			h := weirtest.New(t, job)
			at := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
			for i, v := range []string{"k1/a:90", "k2/b:45", "k1/c:1", "k3/d:1"} {
				key, val, _ := strings.Cut(v, "/")
				if err := weirtest.SendValue(h, "in", codec.String(), key, val, at.Add(time.Duration(i)*time.Second)); err != nil {
					t.Fatal(err)
				}
			}
			if err := h.Checkpoint(); err != nil {
				t.Fatal(err)
			}
			if most.Load() < 2 {
				t.Fatalf("at most %d call at a time: the calls did not overlap", most.Load())
			}
			got := capturedValues(out.Take())
			if len(got) != 4 {
				t.Fatalf("after the checkpoint: %v, want the four results", got)
			}
			if !unordered && fmt.Sprint(got) != "[A B C D]" {
				t.Fatalf("ordered results %v, want [A B C D]", got)
			}
			if unordered && slices.Index(got, "A") > slices.Index(got, "C") {
				t.Fatalf("unordered results %v: k1's C came before its A", got)
			}
		})
	}
}

// A failing call is retried while its error is retryable, then the
// fallback gives the result; without a fallback the record goes to the
// error policy (here: dead letter) and the job goes on.
func TestAsyncMapFallbackAndErrorPolicy(t *testing.T) {
	var calls atomic.Int64
	down := func(_ context.Context, v string) (string, error) {
		calls.Add(1)
		if strings.HasPrefix(v, "bad") {
			return "", engine.Retryable(errors.New("service unavailable"))
		}
		return strings.ToUpper(v), nil
	}
	job := engine.NewJob("async", engine.WithErrorPolicy(engine.DeadLetter))
	src := connectors.KafkaSource(job, "in", codec.String())
	withFallback := weirtest.Capture(operators.AsyncMap(src, down, operators.AsyncName("enrich"), operators.AsyncNoBreaker(),
		operators.AsyncFallback(func(v string, cause error) (string, error) { return "fallback:" + v, nil })))
	without := weirtest.Capture(operators.AsyncMap(src, down, operators.AsyncName("strict"), operators.AsyncNoBreaker()))
	h := weirtest.New(t, job)
	at := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, v := range []string{"ok", "bad", "fine"} {
		if err := weirtest.SendValue(h, "in", codec.String(), "k", v, at); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(capturedValues(withFallback.Take())); got != "[OK fallback:bad FINE]" {
		t.Errorf("with a fallback: %s", got)
	}
	if got := fmt.Sprint(capturedValues(without.Take())); got != "[OK FINE]" {
		t.Errorf("without: %s", got)
	}
	if n := calls.Load(); n != 2*2+2*3 { // ok and fine once per operator, bad three times each
		t.Errorf("%d calls, want 10 (3 for each bad record)", n)
	}
	dead := h.ReadOutput("async-dlq")
	if len(dead) != 1 || string(dead[0].Value) != "bad" {
		t.Fatalf("dead letters %v, want the bad record once (the strict operator's)", dead)
	}
}

// A service that keeps failing opens the breaker: the records after it
// get the fallback without a call, until the breaker lets one through.
func TestAsyncMapBreakerStopsCalling(t *testing.T) {
	var calls atomic.Int64
	failing := func(context.Context, string) (string, error) {
		calls.Add(1)
		return "", errors.New("connection refused")
	}
	job := engine.NewJob("async")
	src := connectors.KafkaSource(job, "in", codec.String())
	var mu sync.Mutex
	causes := map[string]int{}
	out := weirtest.Capture(operators.AsyncMap(src, failing, operators.AsyncConcurrency(1),
		operators.AsyncBreaker(gobreaker.Settings{Timeout: time.Hour, ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 3 }}),
		operators.AsyncFallback(func(v string, cause error) (string, error) {
			mu.Lock()
			defer mu.Unlock()
			causes[cause.Error()]++
			return "popular", nil
		})))
	h := weirtest.New(t, job)
	at := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	for i := range 10 {
		if err := weirtest.SendValue(h, "in", codec.String(), "k", strconv.Itoa(i), at); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if got := len(out.Take()); got != 10 {
		t.Fatalf("%d results, want 10 fallbacks", got)
	}
	if n := calls.Load(); n != 3 {
		t.Fatalf("%d calls, want 3: the breaker opens after 3 failures", n)
	}
	t.Log(causes)
}

// Results are stamped with their records' event times and must not be late
// for a window after them in the task: the watermark waits behind the
// records in flight, even when it is pushed past them.
func TestAsyncMapHoldsTheWatermark(t *testing.T) {
	job := engine.NewJob("async")
	src := connectors.KafkaSource(job, "in", codec.String(), connectors.WithWatermarks(windowing.RecordTimestamps[string](0)))
	enriched := operators.AsyncMap(src, slowUpper)
	counts := weirtest.Capture(operators.WindowAggregate(operators.KeyByRecordKey(enriched, codec.String()), "per-minute",
		windowing.Tumbling(time.Minute), operators.Count[string]{}, codec.JSON[int64]()))
	h := weirtest.New(t, job)
	at := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	for i, v := range []string{"a:80", "b:60", "c:40"} {
		if err := weirtest.SendValue(h, "in", codec.String(), "k", v, at.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	// The watermark passes the minute while all three are in flight.
	if err := weirtest.SendValue(h, "in", codec.String(), "k", "d:1", at.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := h.EndInput(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range counts.Take() {
		got = append(got, fmt.Sprintf("%s=%d", c.Value.Start.Format("15:04"), c.Value.Value))
	}
	if fmt.Sprint(got) != "[12:00=3 12:02=1]" {
		t.Fatalf("windows %v, want [12:00=3 12:02=1]: results late for their window", got)
	}
}

func TestAsyncMapChecks(t *testing.T) {
	for name, opt := range map[string]operators.AsyncOpt{
		"fallback type": operators.AsyncFallback(func(int, error) (string, error) { return "", nil }),
		"concurrency":   operators.AsyncConcurrency(0),
		"timeout":       operators.AsyncTimeout(0),
		"retries":       operators.AsyncRetries(0),
	} {
		job := engine.NewJob("async")
		src := connectors.KafkaSource(job, "in", codec.String())
		connectors.KafkaSink(operators.AsyncMap(src, slowUpper, opt), "out", codec.String())
		if _, err := local.NewTask(context.Background(), job, 0, 0, local.Env{}); !errors.Is(err, engine.ErrTopology) {
			t.Errorf("%s: %v, want ErrTopology", name, err)
		}
	}
}
