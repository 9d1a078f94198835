package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/internal/kafkatest"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/state"
	"github.com/weirstream/weir/windowing"
)

// running emits each record's key with how many of its key came so far:
// state that only grows, unlike a window's. It takes delay per record.
type running struct {
	n     *state.Value[int64]
	delay time.Duration
}

func (r *running) Open(reg *state.Registry) error {
	r.n = state.NewValue(reg, "n", codec.JSON[int64]())
	return nil
}

func (r *running) Process(c operators.Context[string], _ string, out operators.Collector[string]) error {
	time.Sleep(r.delay)
	n, _, err := r.n.Get(c)
	if err != nil {
		return err
	}
	if err := r.n.Set(c, n+1); err != nil {
		return err
	}
	return out.Collect(fmt.Sprintf("%s=%d", c.Key(), n+1))
}

func (r *running) OnTimer(operators.Context[string], time.Time, engine.TimeDomain, operators.Collector[string]) error {
	return nil
}

// TestReprocessFromTheMiddleOfTheDay is the reprocessing recipe against
// the real broker: an hourly count per key over a day of events (re-keyed
// through a repartition topic, so both stages have state and event time),
// run to the end of its input; stopped; reset to noon; run again. From
// noon on, its windows must equal the first run's: it computed on empty
// state from the new offsets, not on the state it had at the end of the
// day (which would have counted the afternoon twice), on both stages and
// on the same state directory. The dry run changes nothing, a reset with
// the job running is refused, and bad arguments change nothing.
func TestReprocessFromTheMiddleOfTheDay(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	in := kafkatest.CreateTopic(t, brokers, "reprocess-in", 2)
	group := kafkatest.Name("reprocess")
	day := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	var input []*kgo.Record
	for m := 0; m < 24*60; m += 7 { // an event every 7 minutes, keys in turn
		key := fmt.Sprintf("k%d", m%5)
		input = append(input, &kgo.Record{Topic: in, Key: []byte(fmt.Sprintf("src%d", m%3)), Value: []byte(key), Timestamp: day.Add(time.Duration(m) * time.Minute)})
	}
	producer := kafkatest.Client(t, brokers)
	kafkatest.ProduceSync(t, producer, input...)
	dir := t.TempDir()

	run := func(out, totals string) []string {
		t.Helper()
		job := engine.NewJob("reprocess", engine.WithBrokers(brokers...), engine.WithGroup(group), engine.WithStateDir(dir),
			engine.WithMetricsAddr(""), engine.WithCheckpointInterval(100*time.Millisecond), engine.WithLogLevel("warn"),
			engine.WithUntil("end"))
		src := connectors.KafkaSource(job, in, codec.String(), connectors.WithWatermarks(windowing.RecordTimestamps[string](0)))
		byKey := operators.KeyBy(src, func(v string) string { return v }, operators.KeyByCodecs(codec.String(), codec.String()))
		connectors.KafkaSink(operators.WindowAggregate(byKey, "hourly", windowing.Tumbling(time.Hour),
			operators.Count[string]{}, codec.JSON[int64]()), out, codec.JSON[operators.Windowed[string, int64]]())
		connectors.KafkaSink(operators.Process(byKey, "running", &running{}), totals, codec.String())
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := job.Run(ctx); err != nil || ctx.Err() != nil {
			t.Fatalf("bounded run: %v (%v)", err, ctx.Err())
		}
		var got []string
		for _, r := range kafkatest.ReadAll(t, brokers, out, 1, 10*time.Second) {
			var w operators.Windowed[string, int64]
			if err := json.Unmarshal(r.Value, &w); err != nil {
				t.Fatal(err)
			}
			got = append(got, fmt.Sprintf("%s %s %d", w.Start.UTC().Format("15:04"), w.Key, w.Value))
		}
		slices.Sort(got)
		return got
	}
	first := run(kafkatest.CreateTopic(t, brokers, "reprocess-out", 1), kafkatest.CreateTopic(t, brokers, "reprocess-totals", 1))
	if len(first) != 24*5 {
		t.Fatalf("%d windows in the first run, want %d", len(first), 24*5)
	}

	describe := func() string {
		t.Helper()
		code, out, errOut := cli(t, "offsets", "describe", "--brokers", strings.Join(brokers, ","), "--group", group)
		if code != exitOK {
			t.Fatalf("describe: exit %d: %s", code, errOut)
		}
		return out
	}
	before := describe()
	t.Log(before)
	reset := []string{"offsets", "reset", "--brokers", strings.Join(brokers, ","), "--group", group, "--to-datetime", "2026-12-04T12:00:00Z"}
	code, plan, errOut := cli(t, reset...)
	if code != exitOK || !strings.Contains(plan, "Dry run: nothing changed") {
		t.Fatalf("dry run: exit %d:\n%s%s", code, plan, errOut)
	}
	t.Log(plan)
	if after := describe(); after != before {
		t.Fatalf("the dry run changed the offsets:\n%s\nthen\n%s", before, after)
	}
	for _, bad := range [][]string{
		{"offsets", "reset", "--group", group, "--to-latest", "--to-earliest"},
		{"offsets", "reset", "--group", group, "--to-datetime", "noon"},
		{"offsets", "reset", "--group", "no-such-group-" + group, "--to-earliest", "--execute"},
		{"offsets", "reset", "--group", group, "--topic", "no-such-topic", "--to-earliest", "--execute"},
		{"offsets", "reset", "--group", group, "--topic", in + ":7", "--to-earliest", "--execute"},
		{"offsets", "reset", "--group", group, "--to-offset", "100000", "--execute"},
	} {
		code, out, errOut := cli(t, append(bad, "--brokers", strings.Join(brokers, ","))...)
		if code != exitError {
			t.Errorf("%v: exit %d, want %d:\n%s", bad, code, exitError, out)
		}
		if strings.HasPrefix(bad[3], "no-such-group-") && !strings.Contains(errOut, "is unknown") {
			t.Errorf("unknown group: %q, want it called unknown", errOut)
		}
		t.Logf("%v: %s", bad[2:], strings.TrimSpace(errOut))
	}
	if after := describe(); after != before {
		t.Fatalf("a refused reset changed the offsets:\n%s\nthen\n%s", before, after)
	}

	// Refused while the job runs.
	job := engine.NewJob("reprocess", engine.WithBrokers(brokers...), engine.WithGroup(group), engine.WithStateDir(t.TempDir()),
		engine.WithMetricsAddr(""), engine.WithLogLevel("warn"))
	connectors.KafkaSink(connectors.KafkaSource(job, in, codec.String()), kafkatest.CreateTopic(t, brokers, "reprocess-live", 2), codec.String())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- job.Run(ctx) }()
	kafkatest.Eventually(t, time.Minute, "the job in the group", func() bool { return strings.Contains(describe(), "client ") })
	code, _, errOut = cli(t, append(reset, "--execute")...)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if code != exitError || !strings.Contains(errOut, "live members") {
		t.Fatalf("reset with a live member: exit %d: %s", code, errOut)
	}

	code, out, errOut := cli(t, append(reset, "--execute")...)
	if code != exitOK {
		t.Fatalf("reset: exit %d: %s%s", code, out, errOut)
	}
	t.Log(out)
	totals := kafkatest.CreateTopic(t, brokers, "reprocess-totals", 1)
	second := run(kafkatest.CreateTopic(t, brokers, "reprocess-out", 1), totals)
	var want []string
	for _, w := range first {
		if w >= "12:00" {
			want = append(want, w)
		}
	}
	if !slices.Equal(second, want) {
		t.Fatalf("after the reset to noon: %d windows\n%q\nwant the first run's from noon on (%d)\n%q", len(second), second, len(want), want)
	}
	// The running counts start again from empty state: as many as the
	// afternoon's records of each key, the first of each key 1.
	seen := map[string]bool{}
	for _, r := range kafkatest.ReadAll(t, brokers, totals, 1, 10*time.Second) {
		key, n, _ := strings.Cut(string(r.Value), "=")
		if !seen[key] && n != "1" {
			t.Fatalf("after the reset, the running count of %s starts at %s: state from before the reset", key, n)
		}
		seen[key] = true
	}
	if len(seen) != 5 {
		t.Fatalf("running counts for %d keys, want 5", len(seen))
	}
}
