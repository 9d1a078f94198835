package shared

import (
	"slices"
	"time"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/windowing"
)

// SessionGap is the sessions job's inactivity gap: 30 seconds of event time
// standing in for the usual 30 minutes, so a test's clickstream spans
// hours, not weeks.
const SessionGap = 30 * time.Second

// SessionSummary is a session's aggregate: its clicks, the times of the
// earliest and latest one, and how many distinct pages they visited.
type SessionSummary struct {
	Clicks int       `json:"clicks"`
	First  time.Time `json:"first"`
	Last   time.Time `json:"last"`
	Pages  int       `json:"pages"`
}

// Session is the sessions job's output: a user's session [Start, End),
// End being the latest click plus SessionGap.
type Session = operators.Windowed[string, SessionSummary]

// SessionAcc is a session's accumulator. Pages is sorted and free of
// duplicates, so merging two sessions is a set union.
type SessionAcc struct {
	Clicks int       `json:"clicks"`
	First  time.Time `json:"first"`
	Last   time.Time `json:"last"`
	Pages  []string  `json:"pages,omitempty"`
}

// sessionSummary aggregates a session's clicks; Merge combines the
// accumulators of sessions that a click bridges.
type sessionSummary struct{}

func (sessionSummary) Zero() SessionAcc { return SessionAcc{} }

func (sessionSummary) Add(acc SessionAcc, c Click) SessionAcc {
	return sessionSummary{}.Merge(acc, SessionAcc{Clicks: 1, First: c.At, Last: c.At, Pages: []string{c.Page}})
}

func (sessionSummary) Merge(a, b SessionAcc) SessionAcc {
	switch {
	case a.Clicks == 0:
		b.Pages = slices.Clone(b.Pages)
		return b
	case b.Clicks == 0:
		a.Pages = slices.Clone(a.Pages)
		return a
	}
	out := SessionAcc{Clicks: a.Clicks + b.Clicks, First: a.First, Last: a.Last}
	if b.First.Before(out.First) {
		out.First = b.First
	}
	if b.Last.After(out.Last) {
		out.Last = b.Last
	}
	out.Pages = slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(a.Pages), b.Pages...))))
	return out
}

func (sessionSummary) Result(acc SessionAcc) SessionSummary {
	return SessionSummary{Clicks: acc.Clicks, First: acc.First.UTC(), Last: acc.Last.UTC(), Pages: len(acc.Pages)}
}

// BuildSessions adds the sessions job to job: clicks from in (keyed by
// page), their event time the click's At with OutOfOrderness, re-keyed by
// user through a repartition topic, aggregated per user session with gap
// SessionGap, each session written to out as a Session once the watermark
// passes its end.
func BuildSessions(job *engine.Job, in, out string) {
	wm := windowing.BoundedOutOfOrderness(OutOfOrderness, func(c Click) time.Time { return c.At })
	clicks := connectors.KafkaSource(job, in, codec.JSON[Click](), connectors.WithWatermarks(wm))
	byUser := operators.KeyBy(clicks, func(c Click) string { return c.User }, operators.KeyByName("by-user"))
	sessions := operators.WindowAggregate(byUser, "sessions", windowing.Sessions(SessionGap),
		sessionSummary{}, codec.JSON[SessionAcc]())
	connectors.KafkaSink(sessions, out, codec.JSON[Session]())
}
