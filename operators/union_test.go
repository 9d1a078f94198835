package operators_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/internal/local"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/weirtest"
	"github.com/weirstream/weir/windowing"
)

// Clicks from two topics, unioned, counted per user and minute: every
// record of both inputs counts once, and the union's watermark is the
// least of its inputs' (the window fires only when both passed its end).
func TestUnionFeedsOneWindow(t *testing.T) {
	job := engine.NewJob("union")
	wm := windowing.RecordTimestamps[string](0)
	web := connectors.KafkaSource(job, "web", codec.String(), connectors.WithWatermarks(wm))
	app := connectors.KafkaSource(job, "app", codec.String(), connectors.WithWatermarks(wm))
	all := operators.Union(web, app)
	if !all.EventTime() {
		t.Fatal("a union of watermarked inputs has no event time")
	}
	counts := operators.WindowAggregate(operators.KeyByRecordKey(all, codec.String()), "per-minute",
		windowing.Tumbling(time.Minute), operators.Count[string]{}, codec.JSON[int64]())
	connectors.KafkaSink(counts, "counts", codec.JSON[operators.Windowed[string, int64]]())
	h := weirtest.New(t, job)
	at := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	send := func(topic, user string, d time.Duration) {
		t.Helper()
		if err := weirtest.SendValue(h, topic, codec.String(), user, "click", at.Add(d)); err != nil {
			t.Fatal(err)
		}
	}
	send("web", "ann", 10*time.Second)
	send("app", "ann", 20*time.Second)
	send("app", "bob", 30*time.Second)
	send("web", "ann", 70*time.Second) // web's watermark passes the minute; app's holds it
	if got := weirtest.ReadOutputs(h, "counts", codec.JSON[operators.Windowed[string, int64]]()); len(got) != 0 {
		t.Fatalf("fired %v before every input passed the window's end", got)
	}
	send("app", "bob", 65*time.Second)
	var got []string
	for _, r := range weirtest.ReadOutputs(h, "counts", codec.JSON[operators.Windowed[string, int64]]()) {
		got = append(got, fmt.Sprintf("%s=%d", r.Value.Key, r.Value.Value))
	}
	if fmt.Sprint(got) != "[ann=2 bob=1]" {
		t.Errorf("counts %v, want [ann=2 bob=1]", got)
	}
}

func TestUnionChecks(t *testing.T) {
	job := engine.NewJob("union-checks")
	timed := connectors.KafkaSource(job, "timed", codec.String(), connectors.WithWatermarks(windowing.RecordTimestamps[string](0)))
	plain := connectors.KafkaSource(job, "plain", codec.String())
	if u := operators.Union(timed, plain); u.EventTime() {
		t.Error("a union with an input without watermarks has event time")
	}
	rekeyed := operators.KeyBy(plain, func(s string) string { return s })
	operators.Union(timed, rekeyed.Stream)
	_, err := local.NewTask(context.Background(), job, 0, 0, local.Env{})
	if !errors.Is(err, engine.ErrTopology) || !strings.Contains(err.Error(), "a union reads one stage") {
		t.Fatalf("got %v, want a topology error about the stages", err)
	}
}
