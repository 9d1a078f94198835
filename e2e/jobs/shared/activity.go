package shared

import (
	"time"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/state"
	"github.com/weirstream/weir/windowing"
)

// Click is an input of the activity job. Its topic is keyed by page, not
// by user, so counting per user needs a repartition.
type Click struct {
	User string    `json:"user"`
	Page string    `json:"page"`
	At   time.Time `json:"at"`
}

// BucketCount is the activity job's output: a user's clicks in one
// 10-second event-time bucket.
type BucketCount struct {
	User   string    `json:"user"`
	Bucket time.Time `json:"bucket"`
	Count  int       `json:"count"`
}

// Bucket is the activity job's bucket length.
const Bucket = 10 * time.Second

// OutOfOrderness is how far behind the highest time seen a click may
// arrive and still count in its bucket.
const OutOfOrderness = 2 * time.Second

// BuildActivity adds the activity job to job: clicks from in, re-keyed by
// user through a repartition topic, counted per user and bucket in map
// state, each bucket written to out once the watermark passes its end.
func BuildActivity(job *engine.Job, in, out string) {
	wm := windowing.BoundedOutOfOrderness(OutOfOrderness, func(c Click) time.Time { return c.At })
	clicks := connectors.KafkaSource(job, in, codec.JSON[Click](), connectors.WithWatermarks(wm))
	byUser := operators.KeyBy(clicks, func(c Click) string { return c.User }, operators.KeyByName("by-user"))
	counts := operators.Process(byUser, "bucket-counts", &bucketCounts{})
	connectors.KafkaSink(counts, out, codec.JSON[BucketCount]())
}

type bucketCounts struct {
	counts *state.Map[int64, int] // by bucket start, Unix ms
}

func (b *bucketCounts) Open(r *state.Registry) error {
	b.counts = state.NewMap(r, "counts", codec.Key[int64](), codec.JSON[int]())
	return nil
}

func (b *bucketCounts) Process(c operators.Context[string], in Click, _ operators.Collector[BucketCount]) error {
	start := in.At.Truncate(Bucket)
	n, _, err := b.counts.Get(c, start.UnixMilli())
	if err != nil {
		return err
	}
	if err := b.counts.Put(c, start.UnixMilli(), n+1); err != nil {
		return err
	}
	c.Timers().RegisterEventTimeTimer(start.Add(Bucket - time.Millisecond))
	return nil
}

func (b *bucketCounts) OnTimer(c operators.Context[string], at time.Time, _ engine.TimeDomain, out operators.Collector[BucketCount]) error {
	start := at.Add(time.Millisecond - Bucket)
	n, ok, err := b.counts.Get(c, start.UnixMilli())
	if err != nil || !ok {
		return err
	}
	if err := b.counts.Delete(c, start.UnixMilli()); err != nil {
		return err
	}
	return out.Collect(BucketCount{User: c.Key(), Bucket: start.UTC(), Count: n})
}
