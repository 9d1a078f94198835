package operators_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/weirtest"
)

// BenchmarkAsyncMap enriches records through a local HTTP server that
// answers after a fixed 5 ms, with 1, 10 and 100 calls in flight per task:
// one op is one record, so records/s shows how throughput scales with the
// concurrency bound (a call at a time caps a task near 200 records/s).
//
//	go test -run '^$' -bench BenchmarkAsyncMap -benchtime 2000x ./operators/
func BenchmarkAsyncMap(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(5 * time.Millisecond)
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 200}}
	call := func(ctx context.Context, v string) (string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/?v="+v, nil)
		if err != nil {
			return "", err
		}
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return string(body), err
	}
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("in-flight=%d", n), func(b *testing.B) {
			job := engine.NewJob("async-bench")
			src := connectors.KafkaSource(job, "in", codec.String())
			out := weirtest.Capture(operators.AsyncMap(src, call, operators.AsyncConcurrency(n), operators.AsyncNoBreaker()))
			h := weirtest.New(b, job)
			at := time.Now()
			b.ResetTimer()
			for i := range b.N {
				if err := weirtest.SendValue(h, "in", codec.String(), "k", fmt.Sprint(i), at); err != nil {
					b.Fatal(err)
				}
			}
			if err := h.Checkpoint(); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if got := len(out.Take()); got != b.N {
				b.Fatalf("%d results for %d records", got, b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
