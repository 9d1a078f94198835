// Package shared holds the record types of the end-to-end test jobs, so the
// tests and the job binaries agree on the wire format.
package shared

import (
	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/operators"
)

// Event is an input record: a user's Seq-th event.
type Event struct {
	User string `json:"user"`
	Seq  int    `json:"seq"`
	Bot  bool   `json:"bot,omitempty"`
}

// Tagged is the stateless job's output for a human event.
type Tagged struct {
	User string `json:"user"`
	Seq  int    `json:"seq"`
	Tag  string `json:"tag"`
}

// Tag is the stateless job's map function.
func Tag(e Event) (Tagged, error) { return Tagged{User: e.User, Seq: e.Seq, Tag: "human"}, nil }

// BuildStateless adds the stateless job to job: events from in, bots
// dropped, the rest tagged, written to out under their input keys.
func BuildStateless(job *engine.Job, in, out string) {
	events := connectors.KafkaSource(job, in, codec.JSON[Event]())
	humans := operators.Filter(events, func(e Event) bool { return !e.Bot })
	connectors.KafkaSink(operators.Map(humans, Tag), out, codec.JSON[Tagged]())
}
