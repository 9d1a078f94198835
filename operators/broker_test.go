package operators_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/internal/kafkatest"
	"github.com/weirstream/weir/metrics"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/windowing"
)

// TestNewOperatorsAgainstTheBroker runs union, processing-time windows and
// the interval join's late outputs in one exactly-once job on the real
// broker, and reads what it committed.
func TestNewOperatorsAgainstTheBroker(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	web := kafkatest.CreateTopic(t, brokers, "ops-web", 1)
	app := kafkatest.CreateTopic(t, brokers, "ops-app", 1)
	counts := kafkatest.CreateTopic(t, brokers, "ops-counts", 1)
	procCounts := kafkatest.CreateTopic(t, brokers, "ops-proc-counts", 1)
	pairs := kafkatest.CreateTopic(t, brokers, "ops-pairs", 1)
	lateWeb := kafkatest.CreateTopic(t, brokers, "ops-late-web", 1)
	allPairs := kafkatest.CreateTopic(t, brokers, "ops-all-pairs", 1)
	sessions := kafkatest.CreateTopic(t, brokers, "ops-sessions", 1)
	group := kafkatest.Name("ops")

	job := engine.NewJob("ops", engine.WithBrokers(brokers...), engine.WithGroup(group), engine.WithStateDir(t.TempDir()),
		engine.WithMetricsAddr(""), engine.WithCheckpointInterval(100*time.Millisecond), engine.WithLogLevel("warn"))
	wm := windowing.RecordTimestamps[string](0)
	webClicks := connectors.KafkaSource(job, web, codec.String(), connectors.WithWatermarks(wm))
	appClicks := connectors.KafkaSource(job, app, codec.String(), connectors.WithWatermarks(wm))
	all := operators.KeyByRecordKey(operators.Union(webClicks, appClicks), codec.String())
	connectors.KafkaSink(operators.WindowAggregate(all, "per-minute", windowing.Tumbling(time.Minute),
		operators.Count[string]{}, codec.JSON[int64]()), counts, codec.JSON[operators.Windowed[string, int64]]())
	connectors.KafkaSink(operators.WindowAggregate(all, "per-second", windowing.TumblingProcessingTime(time.Second),
		operators.Count[string]{}, codec.JSON[int64]()), procCounts, codec.JSON[operators.Windowed[string, int64]]())
	lateTag := engine.NewOutputTag[string]("late-web")
	joined := operators.IntervalJoin(operators.KeyByRecordKey(webClicks, codec.String()), operators.KeyByRecordKey(appClicks, codec.String()),
		"pair", 0, time.Minute, func(_ string, w, a string) (string, error) { return w + "+" + a, nil }, operators.LeftLateOutput(lateTag))
	connectors.KafkaSink(joined, pairs, codec.String())
	connectors.KafkaSink(engine.SideOutput(joined, lateTag), lateWeb, codec.String())
	regular := operators.Join(operators.KeyByRecordKey(webClicks, codec.String()), operators.KeyByRecordKey(appClicks, codec.String()),
		"any-pair", func(_ string, w, a string) (string, error) { return w + "+" + a, nil }, operators.JoinTTL(time.Hour))
	connectors.KafkaSink(regular, allPairs, codec.String())
	// Sessions of web clicks whose gap each click sets: "w…" clicks 30s.
	connectors.KafkaSink(operators.WindowAggregate(operators.KeyByRecordKey(webClicks, codec.String()), "visits",
		windowing.DynamicSessions(func(string) time.Duration { return 30 * time.Second }), operators.Count[string]{}, codec.JSON[int64]()),
		sessions, codec.JSON[operators.Windowed[string, int64]]())

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- job.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("job: %v", err)
			}
		case <-time.After(time.Minute):
			t.Error("job did not stop within a minute")
		}
	})

	noon := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	rec := func(topic, key, v string, d time.Duration) *kgo.Record {
		return &kgo.Record{Topic: topic, Key: []byte(key), Value: []byte(v), Timestamp: noon.Add(d)}
	}
	producer := kafkatest.Client(t, brokers)
	kafkatest.ProduceSync(t, producer,
		rec(web, "a", "w1", 10*time.Second), rec(web, "a", "w2", 20*time.Second), rec(web, "b", "w3", 30*time.Second),
		rec(app, "a", "a1", 15*time.Second), rec(app, "b", "a2", 40*time.Second),
		rec(web, "a", "w-end", 5*time.Minute), rec(app, "a", "a-end", 5*time.Minute))

	// Both inputs' watermarks pass 12:01: the union's minute fires.
	var got []string
	for _, r := range kafkatest.ReadAll(t, brokers, counts, 2, time.Minute) {
		var w operators.Windowed[string, int64]
		if err := json.Unmarshal(r.Value, &w); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s=%d", w.Key, w.Value))
	}
	slices.Sort(got)
	if fmt.Sprint(got) != "[a=3 b=2]" {
		t.Fatalf("union counts %v, want [a=3 b=2]", got)
	}
	// Web sessions of a: w1 and w2 (10s apart) in one, [12:00:10, 12:00:50);
	// b: w3 alone.
	var sess []string
	for _, r := range kafkatest.ReadAll(t, brokers, sessions, 2, time.Minute) {
		var w operators.Windowed[string, int64]
		if err := json.Unmarshal(r.Value, &w); err != nil {
			t.Fatal(err)
		}
		sess = append(sess, fmt.Sprintf("%s[%s,%s)=%d", w.Key, w.Start.UTC().Format("04:05"), w.End.UTC().Format("04:05"), w.Value))
	}
	slices.Sort(sess)
	if fmt.Sprint(sess) != "[a[00:10,00:50)=2 b[00:30,01:00)=1]" {
		t.Errorf("dynamic sessions %v, want a[00:10,00:50)=2 b[00:30,01:00)=1", sess)
	}
	// Now late for the join: to the left side output, and, for the right
	// side, to the late-data topic Weir created.
	kafkatest.ProduceSync(t, producer, rec(web, "a", "w-late", 5*time.Second), rec(app, "a", "a-late", 6*time.Second))
	if got := values(kafkatest.ReadAll(t, brokers, lateWeb, 1, time.Minute)); fmt.Sprint(got) != "[w-late]" {
		t.Errorf("late web clicks %v, want [w-late]", got)
	}
	late := kafkatest.ReadAll(t, brokers, group+"-pair-late", 1, time.Minute)
	if len(late) != 1 || string(late[0].Value) != `"a-late"` || header(late[0], operators.HeaderLateSide) != "right" {
		t.Errorf("the join's late-data topic holds %v, want a-late from the right side", late)
	}
	if got := values(kafkatest.ReadAll(t, brokers, pairs, 3, time.Minute)); fmt.Sprint(got) != "[w1+a1 w3+a2 w-end+a-end]" {
		t.Errorf("pairs %v, want [w1+a1 w3+a2 w-end+a-end]", got)
	}
	// The regular join pairs every web click with every app click of its
	// key, late ones included: 4×3 of a, 1×1 of b.
	got = values(kafkatest.ReadAll(t, brokers, allPairs, 13, time.Minute))
	slices.Sort(got)
	want := []string{"w-end+a-end", "w-end+a-late", "w-end+a1", "w-late+a-end", "w-late+a-late", "w-late+a1",
		"w1+a-end", "w1+a-late", "w1+a1", "w2+a-end", "w2+a-late", "w2+a1", "w3+a2"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("regular join pairs %v, want %v", got, want)
	}
	// Processing-time windows count every record of the union, once.
	kafkatest.Eventually(t, time.Minute, "the processing-time windows count all 9 clicks", func() bool {
		var sum int64
		for _, r := range kafkatest.ReadAll(t, brokers, procCounts, 1<<20, 2*time.Second) {
			var w operators.Windowed[string, int64]
			if err := json.Unmarshal(r.Value, &w); err != nil {
				t.Fatal(err)
			}
			sum += w.Value
		}
		if sum > 9 {
			t.Fatalf("processing-time windows counted %d clicks, want 9", sum)
		}
		return sum == 9
	})
}

func values(rs []*kgo.Record) []string {
	var vs []string
	for _, r := range rs {
		vs = append(vs, string(r.Value))
	}
	return vs
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// TestAsyncMapAgainstARealServiceAndBroker enriches each record through a
// real HTTP server, exactly once on the real broker. The server is stopped
// for a while and started again on the same address: the records of that
// span carry the fallback (the circuit breaker opens, so most are not even
// called), the job never stops, and the records after it are enriched
// again. Every record comes out exactly once.
func TestAsyncMapAgainstARealServiceAndBroker(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	in := kafkatest.CreateTopic(t, brokers, "async-in", 1)
	out := kafkatest.CreateTopic(t, brokers, "async-out", 1)
	group := kafkatest.Name("async")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "recommended-for-%s", r.URL.Query().Get("user"))
	})
	serve := func(ln net.Listener) *http.Server {
		srv := &http.Server{Handler: handler}
		go func() { _ = srv.Serve(ln) }()
		return srv
	}
	srv := serve(ln)
	defer func() { _ = srv.Close() }()

	client := &http.Client{}
	recommend := func(ctx context.Context, user string) (string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/recommend?user="+user, nil)
		if err != nil {
			return "", err
		}
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	prom := metrics.New("async")
	job := engine.NewJob("async", engine.WithBrokers(brokers...), engine.WithGroup(group), engine.WithStateDir(t.TempDir()),
		engine.WithMetricsAddr(""), engine.WithCheckpointInterval(100*time.Millisecond), engine.WithLogLevel("warn"),
		engine.WithObserver(prom))
	src := connectors.KafkaSource(job, in, codec.String())
	enriched := operators.AsyncMap(src, recommend, operators.AsyncName("recommend"), operators.AsyncTimeout(500*time.Millisecond),
		operators.AsyncConcurrency(8), operators.AsyncRetries(1),
		operators.AsyncBreaker(gobreaker.Settings{Timeout: 300 * time.Millisecond, ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 2 }}),
		operators.AsyncFallback(func(user string, _ error) (string, error) { return "popular-items", nil }))
	connectors.KafkaSink(enriched, out, codec.String())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- job.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("job: %v", err)
		}
	}()

	producer := kafkatest.Client(t, brokers)
	sent := 0
	phase := func(n int) []string {
		t.Helper()
		for range n {
			kafkatest.ProduceSync(t, producer, &kgo.Record{Topic: in, Key: []byte("u"), Value: []byte(fmt.Sprintf("user%d", sent))})
			sent++
		}
		return values(kafkatest.ReadAll(t, brokers, out, sent, time.Minute))[sent-n:]
	}
	up := phase(10)
	_ = srv.Close() // the service goes down
	down := phase(10)
	ln, err = net.Listen("tcp", addr) // and comes back on its address
	if err != nil {
		t.Fatal(err)
	}
	srv = serve(ln)
	var again []string
	kafkatest.Eventually(t, time.Minute, "enriched outputs again", func() bool {
		again = phase(5)
		return again[len(again)-1] != "popular-items"
	})
	for i, v := range up {
		if v != fmt.Sprintf("recommended-for-user%d", i) {
			t.Fatalf("while the service was up: %q", up)
		}
	}
	for _, v := range down {
		if v != "popular-items" {
			t.Fatalf("while the service was down: %q, want the fallback", down)
		}
	}
	all := values(kafkatest.ReadAll(t, brokers, out, sent, 10*time.Second))
	if len(all) != sent {
		t.Fatalf("%d outputs for %d records", len(all), sent)
	}
	t.Logf("up %q; down %q; back %q", up[:2], down[:2], again)
	// The metrics show the outage: fallbacks, failed calls and calls the
	// open breaker spared the service.
	count := func(name string, labels map[string]string) float64 {
		mfs, err := prom.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		var sum float64
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
		metric:
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
						continue metric
					}
				}
				sum += m.GetCounter().GetValue()
			}
		}
		return sum
	}
	fallbacks := count("weir_async_fallbacks_total", map[string]string{"operator": "recommend"})
	failed := count("weir_async_calls_total", map[string]string{"operator": "recommend", "outcome": "error"})
	spared := count("weir_async_calls_total", map[string]string{"operator": "recommend", "outcome": "open"})
	ok := count("weir_async_calls_total", map[string]string{"operator": "recommend", "outcome": "ok"})
	t.Logf("metrics: %v fallbacks, %v calls failed, %v not made (breaker open), %v ok", fallbacks, failed, spared, ok)
	if fallbacks < 10 || failed < 2 || spared < 1 || ok < float64(len(up)) {
		t.Fatalf("the metrics do not show the outage: %v fallbacks, %v failed, %v spared, %v ok", fallbacks, failed, spared, ok)
	}
}
