// Command sessions is a Weir job that cuts each user's page views into
// sessions: a session ends when the user has viewed nothing for Gap
// (30 minutes) of event time. For each session it writes the user, the
// first and last view, the duration, the number of views and of distinct
// pages, and the pages the user entered and left by.
//
// Page views arrive keyed by user, up to OutOfOrderness out of order.
// The job is a session-window aggregate (operators.WindowAggregate with
// windowing.Sessions): it keeps one small accumulator per open session,
// never the views, merges two sessions when a late-arriving view bridges
// them, and emits a session once the watermark passes its end. A view
// later than that goes to the late-data topic <group>-sessions-late.
//
// Run it (WEIR_BROKERS, WEIR_GROUP and every other WEIR_* variable or
// flag configure it as any Weir job):
//
//	sessions --generate 5000    # writes 5000 page views to page-views and exits
//	sessions --until end        # the job: sessions to user-sessions; stops at the end of the input
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/windowing"
)

const (
	// Gap is the inactivity that ends a session. Two views exactly Gap
	// apart are one session (their windows touch, and touching session
	// windows merge); Gap plus a millisecond apart, two.
	Gap = 30 * time.Minute
	// OutOfOrderness is how late a view may arrive after a later one of
	// its partition: the watermark trails the latest view by this much.
	OutOfOrderness = time.Minute
)

// PageView is what the site's collector writes, keyed by user.
type PageView struct {
	User string    `json:"user"`
	Page string    `json:"page"`
	At   time.Time `json:"at"`
}

// Session is the job's output, keyed by user.
type Session struct {
	User          string    `json:"user"`
	Start         time.Time `json:"start"` // the first view
	End           time.Time `json:"end"`   // the last view
	DurationSec   float64   `json:"duration_s"`
	Views         int       `json:"views"`
	DistinctPages int       `json:"distinct_pages"`
	EntryPage     string    `json:"entry_page"` // the first view's page
	ExitPage      string    `json:"exit_page"`  // the last view's page
}

// Summary is what is kept of a session while it is open: its state, one
// per user and session. Pages is sorted and free of duplicates.
type Summary struct {
	Views   int       `json:"views"`
	FirstAt time.Time `json:"first"`
	LastAt  time.Time `json:"last"`
	Entry   string    `json:"entry"`
	Exit    string    `json:"exit"`
	Pages   []string  `json:"pages"`
}

// summarize is the session aggregate: Add folds a view into a session,
// Merge joins two sessions a view bridged. Views of the same millisecond
// order by page, so that a session's entry and exit pages do not depend on
// the order its views arrived in.
type summarize struct{}

func (summarize) Zero() Summary { return Summary{} }

func (s summarize) Add(acc Summary, v PageView) Summary {
	return s.Merge(acc, Summary{Views: 1, FirstAt: v.At, LastAt: v.At, Entry: v.Page, Exit: v.Page, Pages: []string{v.Page}})
}

func (summarize) Merge(a, b Summary) Summary {
	if a.Views == 0 {
		b.Pages = slices.Clone(b.Pages)
		return b
	}
	if b.Views == 0 {
		a.Pages = slices.Clone(a.Pages)
		return a
	}
	out := Summary{Views: a.Views + b.Views, FirstAt: a.FirstAt, Entry: a.Entry, LastAt: a.LastAt, Exit: a.Exit}
	if b.FirstAt.Before(out.FirstAt) || b.FirstAt.Equal(out.FirstAt) && b.Entry < out.Entry {
		out.FirstAt, out.Entry = b.FirstAt, b.Entry
	}
	if b.LastAt.After(out.LastAt) || b.LastAt.Equal(out.LastAt) && b.Exit > out.Exit {
		out.LastAt, out.Exit = b.LastAt, b.Exit
	}
	out.Pages = slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(a.Pages), b.Pages...))))
	return out
}

func (summarize) Result(acc Summary) Summary { return acc }

// toSession turns a session window's summary into the output record.
func toSession(w operators.Windowed[string, Summary]) (Session, error) {
	s := w.Value
	return Session{
		User: w.Key, Start: s.FirstAt.UTC(), End: s.LastAt.UTC(), DurationSec: s.LastAt.Sub(s.FirstAt).Seconds(),
		Views: s.Views, DistinctPages: len(s.Pages), EntryPage: s.Entry, ExitPage: s.Exit,
	}, nil
}

// ErrInvalidView is what validate rejects: the view is dead-lettered.
var ErrInvalidView = errors.New("invalid page view")

func validate(v PageView) (PageView, error) {
	switch {
	case v.Page == "":
		return v, fmt.Errorf("%w of user %q at %s: no page", ErrInvalidView, v.User, v.At.Format(time.RFC3339Nano))
	case v.At.IsZero():
		return v, fmt.Errorf("%w of user %q on %s: no time", ErrInvalidView, v.User, v.Page)
	}
	return v, nil
}

// Build adds the sessions job to job: page views from input, sessions to
// output.
func Build(job *engine.Job, input, output string) {
	wm := windowing.BoundedOutOfOrderness(OutOfOrderness, func(v PageView) time.Time { return v.At })
	// A record that is not a page view, or not a valid one, goes to the
	// dead-letter topic (<group>-dlq) with headers saying why.
	views := engine.OnError(connectors.KafkaSource(job, input, codec.JSON[PageView](), connectors.WithWatermarks(wm)), engine.DeadLetter)
	valid := engine.OnError(operators.Map(views, validate).Named("validate"), engine.DeadLetter)
	// The topic is keyed by user: its partitions already hold each user's
	// views together, so keying by the record key moves nothing.
	byUser := operators.KeyByRecordKey(valid, codec.Key[string]())
	windows := operators.WindowAggregate(byUser, "sessions", windowing.Sessions(Gap), summarize{}, codec.JSON[Summary]())
	connectors.KafkaSink(operators.Map(windows, toSession).Named("to-session"), output, codec.JSON[Session]())
}

func main() {
	job := engine.NewJob("sessions")
	input := flag.String("input", "page-views", "topic the page views are read from (keyed by user)")
	output := flag.String("output", "user-sessions", "topic the sessions are written to (keyed by user)")
	generate := flag.Int("generate", 0, "write `N` generated page views to --input, creating --input and --output if missing, and exit")
	seed := flag.Uint64("seed", 1, "the generator's seed: one seed, one input")
	partitions := flag.Int("partitions", 4, "partitions of the topics --generate creates")
	job.RegisterFlags(flag.CommandLine)
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "sessions: unexpected argument %q (flags only; see -help)\n", flag.Arg(0))
		os.Exit(2)
	}
	if *generate != 0 {
		if err := writeViews(job.Config().Brokers, *input, *output, *partitions, *generate, *seed); err != nil {
			fmt.Fprintln(os.Stderr, "sessions:", err)
			os.Exit(1)
		}
		return
	}
	Build(job, *input, *output)
	job.Main()
}
