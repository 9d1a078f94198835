package operators_test

import (
	"fmt"
	"strconv"
	"time"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/state"
	"github.com/weirstream/weir/weirtest"
	"github.com/weirstream/weir/windowing"
)

type pageView struct {
	User string    `json:"user"`
	At   time.Time `json:"at"`
}

var noon = time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)

// Views per user per minute, in event time: the window fires when the
// watermark passes its end, here when the 12:02 pageView arrives.
func ExampleWindowAggregate() {
	job := engine.NewJob("views")
	views := connectors.KafkaSource(job, "views", codec.JSON[pageView](),
		connectors.WithWatermarks(windowing.ForMonotonousTimestamps(func(v pageView) time.Time { return v.At })))
	byUser := operators.KeyBy(views, func(v pageView) string { return v.User })
	counts := operators.WindowAggregate(byUser, "views-per-minute", windowing.Tumbling(time.Minute),
		operators.Count[pageView]{}, codec.JSON[int64]())
	connectors.KafkaSink(counts, "counts", codec.JSON[operators.Windowed[string, int64]]())

	h, _ := weirtest.Start(job)
	defer h.Close()
	for _, v := range []pageView{{"ann", noon}, {"bob", noon.Add(10 * time.Second)}, {"ann", noon.Add(50 * time.Second)}, {"ann", noon.Add(2 * time.Minute)}} {
		_ = weirtest.SendValue(h, "views", codec.JSON[pageView](), v.User, v, v.At)
	}
	for _, r := range weirtest.ReadOutputs(h, "counts", codec.JSON[operators.Windowed[string, int64]]()) {
		fmt.Printf("%s %s-%s: %d\n", r.Value.Key, r.Value.Start.Format("15:04"), r.Value.End.Format("15:04"), r.Value.Value)
	}
	// Output:
	// ann 12:00-12:01: 2
	// bob 12:00-12:01: 1
}

// streak counts each user's views in a row, and says so when a user has
// been quiet for a minute of event time: keyed state and a timer.
type streak struct{ run *state.Value[run] }

type run struct {
	Views int       `json:"views"`
	Last  time.Time `json:"last"`
}

func (s *streak) Open(r *state.Registry) error {
	s.run = state.NewValue(r, "run", codec.JSON[run]())
	return nil
}

func (s *streak) Process(c operators.Context[string], v pageView, out operators.Collector[string]) error {
	r, _, err := s.run.Get(c)
	if err != nil {
		return err
	}
	if r.Views > 0 {
		c.Timers().DeleteEventTimeTimer(r.Last.Add(time.Minute))
	}
	c.Timers().RegisterEventTimeTimer(v.At.Add(time.Minute))
	return s.run.Set(c, run{Views: r.Views + 1, Last: v.At})
}

func (s *streak) OnTimer(c operators.Context[string], at time.Time, _ engine.TimeDomain, out operators.Collector[string]) error {
	r, _, err := s.run.Get(c)
	if err != nil {
		return err
	}
	s.run.Clear(c)
	return out.Collect(c.Key() + " viewed " + strconv.Itoa(r.Views) + " in a row")
}

// A keyed process function sees each record of its key with the key's
// state and timers, as Flink's KeyedProcessFunction.
func ExampleProcess() {
	job := engine.NewJob("streaks")
	views := connectors.KafkaSource(job, "views", codec.JSON[pageView](),
		connectors.WithWatermarks(windowing.ForMonotonousTimestamps(func(v pageView) time.Time { return v.At })))
	streaks := operators.Process(operators.KeyBy(views, func(v pageView) string { return v.User }), "streaks", &streak{})
	connectors.KafkaSink(streaks, "streaks", codec.String())

	h, _ := weirtest.Start(job)
	defer h.Close()
	for i, at := range []time.Duration{0, 20 * time.Second, 40 * time.Second, 5 * time.Minute} {
		v := pageView{User: "ann", At: noon.Add(at)}
		if i == 3 {
			v.User = "bob" // moves event time past ann's last minute
		}
		_ = weirtest.SendValue(h, "views", codec.JSON[pageView](), v.User, v, v.At)
	}
	for _, r := range weirtest.ReadOutputs(h, "streaks", codec.String()) {
		fmt.Println(r.Value, "at", r.Timestamp.UTC().Format("15:04:05"))
	}
	// Output:
	// ann viewed 3 in a row at 12:01:40
}

// A Map whose function fails sends the record to a side output instead of
// the error policy, with Invalid.
func ExampleInvalid() {
	job := engine.NewJob("parse")
	raw := connectors.KafkaSource(job, "amounts", codec.String())
	rejected := engine.NewOutputTag[string]("rejected")
	amounts := operators.Map(raw, strconv.Atoi, operators.Invalid(rejected))
	connectors.KafkaSink(amounts, "parsed", codec.JSON[int]())
	connectors.KafkaSink(engine.SideOutput(amounts, rejected), "rejected", codec.String())

	h, _ := weirtest.Start(job)
	defer h.Close()
	for _, s := range []string{"12", "x", "30"} {
		_ = weirtest.SendValue(h, "amounts", codec.String(), "k", s, noon)
	}
	fmt.Println(weirtest.ReadOutputs(h, "parsed", codec.JSON[int]()))
	fmt.Println(weirtest.ReadOutputs(h, "rejected", codec.String()))
	// Output:
	// [{k 12 2024-01-01 12:00:00 +0000 UTC 0} {k 30 2024-01-01 12:00:00 +0000 UTC 0}]
	// [{k x 2024-01-01 12:00:00 +0000 UTC 0}]
}
