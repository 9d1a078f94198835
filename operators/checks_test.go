package operators_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/internal/local"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/windowing"
)

// Mistakes that would make a window or a join silently never fire are
// errors when the job is built, before it reads anything.
func TestEventTimeOperatorsNeedWatermarks(t *testing.T) {
	type build func(job *engine.Job, plain, timed engine.KeyedStream[string, string])
	count := operators.Count[string]{}
	for _, tc := range []struct {
		name string
		b    build
		want string // "" for a valid job
	}{
		{"window without watermarks", func(_ *engine.Job, plain, _ engine.KeyedStream[string, string]) {
			operators.WindowAggregate(plain, "w", windowing.Tumbling(time.Minute), count, codec.JSON[int64]())
		}, "w: an event-time window needs watermarks"},
		{"window with watermarks", func(_ *engine.Job, _, timed engine.KeyedStream[string, string]) {
			operators.WindowAggregate(timed, "w", windowing.Tumbling(time.Minute), count, codec.JSON[int64]())
		}, ""},
		{"watermarks survive a repartition", func(_ *engine.Job, _, timed engine.KeyedStream[string, string]) {
			rekeyed := operators.KeyBy(timed.Stream, func(s string) string { return s })
			operators.WindowAggregate(rekeyed, "w", windowing.Sessions(time.Minute), count, codec.JSON[int64]())
		}, ""},
		{"global window on counts needs none", func(_ *engine.Job, plain, _ engine.KeyedStream[string, string]) {
			operators.WindowAggregate(plain, "w", windowing.Global(), count, codec.JSON[int64](), operators.WithTrigger(windowing.OnCount(3)))
		}, ""},
		{"global window every event time", func(_ *engine.Job, plain, _ engine.KeyedStream[string, string]) {
			operators.WindowAggregate(plain, "w", windowing.Global(), count, codec.JSON[int64](), operators.WithTrigger(windowing.EveryEventTime(time.Minute)))
		}, "w: an event-time trigger needs watermarks"},
		{"lateness on a global window", func(_ *engine.Job, _, timed engine.KeyedStream[string, string]) {
			operators.WindowAggregate(timed, "w", windowing.Global(), count, codec.JSON[int64](),
				operators.WithTrigger(windowing.OnCount(3)), operators.AllowedLateness(time.Minute))
		}, "w: allowed lateness does not apply to a global window"},
		{"processing-time end of a global window", func(_ *engine.Job, _, timed engine.KeyedStream[string, string]) {
			operators.WindowAggregate(timed, "w", windowing.Global(), count, codec.JSON[int64](), operators.WithTrigger(windowing.OnProcessingTime()))
		}, "w: OnProcessingTime fires at the window's end"},
		{"processing-time windows need no watermarks", func(_ *engine.Job, plain, _ engine.KeyedStream[string, string]) {
			operators.WindowAggregate(plain, "w", windowing.TumblingProcessingTime(time.Minute), count, codec.JSON[int64]())
		}, ""},
		{"event-time trigger on processing-time windows", func(_ *engine.Job, plain, _ engine.KeyedStream[string, string]) {
			operators.WindowAggregate(plain, "w", windowing.ProcessingTimeSessions(time.Minute), count, codec.JSON[int64](),
				operators.WithTrigger(windowing.EveryEventTime(time.Second)))
		}, "w: an event-time trigger on processing-time windows never fires"},
		{"lateness on processing-time windows", func(_ *engine.Job, plain, _ engine.KeyedStream[string, string]) {
			operators.WindowAggregate(plain, "w", windowing.SlidingProcessingTime(time.Minute, time.Second), count, codec.JSON[int64](),
				operators.AllowedLateness(time.Second))
		}, "w: allowed lateness applies to event-time windows only"},
		{"interval join without watermarks", func(_ *engine.Job, plain, timed engine.KeyedStream[string, string]) {
			operators.IntervalJoin(timed, plain, "j", -time.Second, time.Second, func(k, l, r string) (string, error) { return l + r, nil })
		}, "j: an interval join needs watermarks"},
		{"window join without watermarks", func(_ *engine.Job, plain, _ engine.KeyedStream[string, string]) {
			operators.WindowJoin(plain, plain, "j", windowing.Tumbling(time.Minute), func(k string, _ windowing.Window, l, r string) (string, error) { return l + r, nil })
		}, "j: a window join needs watermarks"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			job := engine.NewJob("checks")
			plain := operators.KeyByRecordKey(connectors.KafkaSource(job, "plain", codec.String()), codec.String())
			timed := operators.KeyByRecordKey(connectors.KafkaSource(job, "timed", codec.String(),
				connectors.WithWatermarks(windowing.RecordTimestamps[string](time.Second))), codec.String())
			tc.b(job, plain, timed)
			_, err := local.NewTask(context.Background(), job, 0, 0, local.Env{}) // validates the topology

			if tc.want == "" {
				if errors.Is(err, engine.ErrTopology) {
					t.Fatalf("a valid job was refused: %v", err)
				}
				return
			}
			if !errors.Is(err, engine.ErrTopology) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run returned %v, want an ErrTopology saying %q", err, tc.want)
			}
		})
	}
}
