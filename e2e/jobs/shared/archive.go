package shared

import (
	"time"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/connectors/archive"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/operators"
)

// Archived is an event as the archive job keeps it.
type Archived struct {
	User string `json:"user" parquet:"user"`
	Seq  int64  `json:"seq" parquet:"seq"`
}

// BuildArchive adds the archive job to job: human events from in,
// archived to the S3 store the WEIR_S3_* variables name, under the prefix
// out, both as Parquet (archive "events", 300 records a file at most) and
// as JSON lines (archive "events-jsonl", 700), partitioned by the hour of
// the records' timestamps.
func BuildArchive(job *engine.Job, in, out string) {
	store, err := archive.S3FromEnv()
	if err != nil {
		job.TopologyError(err)
		return
	}
	events := connectors.KafkaSource(job, in, codec.JSON[Event]())
	humans := operators.Filter(events, func(e Event) bool { return !e.Bot })
	kept := operators.Map(humans, func(e Event) (Archived, error) { return Archived{User: e.User, Seq: int64(e.Seq)}, nil })
	archive.Sink(kept, "events", store, archive.Parquet[Archived](), archive.Prefix(out),
		archive.RollRecords(300), archive.RollInactivity(2*time.Second))
	archive.Sink(kept, "events-jsonl", store, archive.JSONLines(codec.JSON[Archived]()), archive.Prefix(out),
		archive.RollRecords(700), archive.RollInactivity(2*time.Second))
}
