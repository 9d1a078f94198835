package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/examples/internal/exampletest"
	"github.com/weirstream/weir/internal/kafkatest"
	"github.com/weirstream/weir/weirtest"
)

func at(t *testing.T, hms string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, "2026-12-01T"+hms+"Z")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestKnownAnswer runs the job on a fixed clickstream and checks the exact
// sessions, the late view and the dead letters.
func TestKnownAnswer(t *testing.T) {
	job := engine.NewJob("sessions")
	Build(job, "views", "sessions")
	h := weirtest.New(t, job)
	send := func(user, page, hms string) {
		t.Helper()
		v := PageView{User: user, Page: page, At: at(t, hms)}
		if err := weirtest.SendValue(h, "views", codec.JSON[PageView](), user, v, v.At); err != nil {
			t.Fatal(err)
		}
	}
	// bob: two sessions (09:00 and 09:30:40, more than 30 minutes apart),
	// until a view at 09:30, arriving 40s out of order, bridges them.
	send("bob", "/blog/weir-1-0", "09:00:00")
	send("bob", "/pricing", "09:30:40")
	send("bob", "/products/2", "09:30:00")
	// alice: /cart exactly 30 minutes after /products/1 is the same
	// session; the last view, 30 minutes and 1ms after /checkout, is not.
	send("alice", "/", "10:00:00")
	send("alice", "/products/1", "10:02:00")
	send("alice", "/cart", "10:32:00")
	send("alice", "", "10:35:00") // no page: a dead letter
	if err := h.SendBytes("views", []byte("alice"), []byte(`<img src="/pixel.gif">`), at(t, "10:36:00")); err != nil {
		t.Fatal(err) // not JSON: a dead letter
	}
	send("alice", "/checkout", "10:40:00")
	send("alice", "/", "11:10:00.001")
	send("carol", "/", "12:00:00")
	send("carol", "/about", "12:05:00")
	// Later than its session could be (the watermark is at 12:03:59.999,
	// the session would end at 11:29:59.999): late.
	send("carol", "/search", "11:00:00")
	if err := h.EndInput(); err != nil { // the end of the input: every open session ends
		t.Fatal(err)
	}
	if err := h.Checkpoint(); err != nil {
		t.Fatal(err)
	}

	want := []Session{
		{User: "alice", Start: at(t, "10:00:00"), End: at(t, "10:40:00"), DurationSec: 2400, Views: 4, DistinctPages: 4, EntryPage: "/", ExitPage: "/checkout"},
		{User: "alice", Start: at(t, "11:10:00.001"), End: at(t, "11:10:00.001"), DurationSec: 0, Views: 1, DistinctPages: 1, EntryPage: "/", ExitPage: "/"},
		{User: "bob", Start: at(t, "09:00:00"), End: at(t, "09:30:40"), DurationSec: 1840, Views: 3, DistinctPages: 3, EntryPage: "/blog/weir-1-0", ExitPage: "/pricing"},
		{User: "carol", Start: at(t, "12:00:00"), End: at(t, "12:05:00"), DurationSec: 300, Views: 2, DistinctPages: 2, EntryPage: "/", ExitPage: "/about"},
	}
	var got []Session
	for _, r := range weirtest.CommittedOutputs(h, "sessions", codec.JSON[Session]()) {
		if r.Key != r.Value.User || !r.Timestamp.Equal(r.Value.End.Add(Gap-time.Millisecond)) {
			t.Errorf("session %+v has key %q and timestamp %v: want its user and the last millisecond of its window", r.Value, r.Key, r.Timestamp)
		}
		got = append(got, r.Value)
	}
	sortSessions(got)
	exampletest.AssertJSON(t, "sessions", got, want)

	late := h.CommittedOutput("sessions-sessions-late")
	if len(late) != 1 || !strings.Contains(string(late[0].Value), `"/search"`) || exampletest.Headers(late[0])["weir.late.reason"] == "" {
		t.Errorf("late views: %v, want carol's /search, with a reason", late)
	}
	dead := h.CommittedOutput("sessions-dlq")
	if len(dead) != 2 {
		t.Fatalf("%d dead letters, want the view without a page and the record that is not JSON", len(dead))
	}
	for i, want := range []struct{ operator, class, message string }{
		{"validate", engine.ClassError, `invalid page view of user "alice" at 2026-12-01T10:35:00Z: no page`},
		{"source:views", engine.ClassDecode, "decoding value"},
	} {
		hd := exampletest.Headers(dead[i])
		if hd[engine.HeaderErrorOperator] != want.operator || hd[engine.HeaderErrorClass] != want.class ||
			!strings.Contains(hd[engine.HeaderErrorMessage], want.message) {
			t.Errorf("dead letter %q: headers %v, want operator %q, class %q and a message with %q",
				dead[i].Value, hd, want.operator, want.class, want.message)
		}
	}
}

func sortSessions(ss []Session) {
	slices.SortFunc(ss, func(a, b Session) int { return cmp.Or(strings.Compare(a.User, b.User), a.Start.Compare(b.Start)) })
}

// reference computes the sessions of the generated input in plain Go:
// per partition (murmur2 of the user, as the producer placed them), in
// the order sent, a view is late when its own session window, [at,
// at+Gap), ends at or before the partition's watermark (the latest view
// so far less OutOfOrderness and 1ms), which only the views planted late
// do; the other views of each user, sorted by time, split into sessions
// where two are more than Gap apart. It also counts the invalid records.
func reference(t *testing.T, recs []*kgo.Record, partitions int) (sessions []Session, late []PageView, invalid int) {
	t.Helper()
	part := engine.Partitioner().ForTopic("views")
	maxAt := map[int]time.Time{}
	byUser := map[string][]PageView{}
	for _, r := range recs {
		var v PageView
		if err := json.Unmarshal(r.Value, &v); err != nil {
			invalid++
			continue
		}
		p := part.Partition(r, partitions)
		m, seen := maxAt[p]
		if v.At.After(m) {
			maxAt[p] = v.At
		}
		if v.Page == "" {
			invalid++
			continue
		}
		if seen && !v.At.Add(Gap-time.Millisecond).After(m.Add(-OutOfOrderness-time.Millisecond)) {
			late = append(late, v)
			continue
		}
		byUser[string(r.Key)] = append(byUser[string(r.Key)], v)
	}
	for user, vs := range byUser {
		slices.SortStableFunc(vs, func(a, b PageView) int { return a.At.Compare(b.At) })
		start := 0
		for i := 1; i <= len(vs); i++ {
			if i < len(vs) && vs[i].At.Sub(vs[i-1].At) <= Gap {
				continue
			}
			group := vs[start:i]
			distinct := map[string]bool{}
			for _, v := range group {
				distinct[v.Page] = true
			}
			first, last := group[0], group[len(group)-1]
			sessions = append(sessions, Session{User: user, Start: first.At, End: last.At, DurationSec: last.At.Sub(first.At).Seconds(),
				Views: len(group), DistinctPages: len(distinct), EntryPage: first.Page, ExitPage: last.Page})
			start = i
		}
	}
	sortSessions(sessions)
	return sessions, late, invalid
}

// boundaries counts the pairs of consecutive views of a user exactly Gap
// apart and Gap+1ms apart, in the sessions' input.
func boundaries(recs []*kgo.Record) string {
	byUser := map[string][]time.Time{}
	for _, r := range recs {
		var v PageView
		if json.Unmarshal(r.Value, &v) == nil {
			byUser[v.User] = append(byUser[v.User], v.At)
		}
	}
	atGap, pastGap := 0, 0
	for _, ts := range byUser {
		slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
		for i := 1; i < len(ts); i++ {
			switch ts[i].Sub(ts[i-1]) {
			case Gap:
				atGap++
			case Gap + time.Millisecond:
				pastGap++
			}
		}
	}
	return fmt.Sprintf("%d pairs of views exactly %v apart, %d %v apart", atGap, Gap, pastGap, Gap+time.Millisecond)
}

// TestGeneratedInput runs the generator's input through the job in the
// harness, on three partitions, and checks it against the reference.
func TestGeneratedInput(t *testing.T) {
	const n = 4000
	recs, err := generateViews(n, 11)
	if err != nil {
		t.Fatal(err)
	}
	job := engine.NewJob("sessions")
	Build(job, "views", "sessions")
	h := weirtest.New(t, job, weirtest.Partitions(3))
	for _, r := range recs {
		if err := h.SendBytes("views", r.Key, r.Value, r.Timestamp); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.EndInput(); err != nil {
		t.Fatal(err)
	}
	if err := h.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	var got []Session
	for _, r := range weirtest.CommittedOutputs(h, "sessions", codec.JSON[Session]()) {
		got = append(got, r.Value)
	}
	sortSessions(got)
	want, late, invalid := reference(t, recs, 3)
	exampletest.AssertJSON(t, "sessions", got, want)
	if l, d := len(h.CommittedOutput("sessions-sessions-late")), len(h.CommittedOutput("sessions-dlq")); l != len(late) || d != invalid {
		t.Errorf("%d late views and %d dead letters, want %d and %d", l, d, len(late), invalid)
	}
	if len(late) != n/40/5 || invalid != 2*(n/500) {
		t.Errorf("the generator planted %d late views and %d invalid records, want %d and %d", len(late), invalid, n/40/5, 2*(n/500))
	}
	t.Logf("%d records: %d sessions, %d late views, %d invalid records; %s", len(recs), len(want), len(late), invalid, boundaries(recs))
}

// TestAgainstBroker runs the example as its user does, against the real
// broker: `sessions --generate`, then the job to the end of its input
// (--until end), and checks the sessions topic, the late-data topic and
// the dead-letter topic, read as a downstream consumer reads them,
// against the reference.
func TestAgainstBroker(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	bin := exampletest.Build(t)
	input, output, group := kafkatest.Name("sessions-views"), kafkatest.Name("sessions-out"), kafkatest.Name("sessions")
	exampletest.DeleteTopicsAtEnd(t, brokers, group, input, output)
	const n, seed, partitions = 1000, 5, 3
	exampletest.Run(t, time.Minute, bin, []string{"WEIR_BROKERS=" + strings.Join(brokers, ",")},
		"--generate", fmt.Sprint(n), "--seed", fmt.Sprint(seed), "--partitions", fmt.Sprint(partitions), "--input", input, "--output", output)
	exampletest.Run(t, 2*time.Minute, bin, exampletest.JobEnv(t, brokers, group), "--input", input, "--output", output)

	recs, err := generateViews(n, seed)
	if err != nil {
		t.Fatal(err)
	}
	want, late, invalid := reference(t, recs, partitions)
	var got []Session
	for _, r := range exampletest.ReadToEnd(t, brokers, output) {
		var s Session
		if err := json.Unmarshal(r.Value, &s); err != nil {
			t.Fatalf("session %q: %v", r.Value, err)
		}
		if string(r.Key) != s.User {
			t.Errorf("session %+v keyed %q", s, r.Key)
		}
		got = append(got, s)
	}
	sortSessions(got)
	exampletest.AssertJSON(t, "sessions", got, want)
	var gotLate []PageView
	for _, r := range exampletest.ReadToEnd(t, brokers, group+"-sessions-late") {
		var v PageView
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatalf("late view %q: %v", r.Value, err)
		}
		gotLate = append(gotLate, v)
	}
	sortViews := func(vs []PageView) {
		slices.SortFunc(vs, func(a, b PageView) int { return cmp.Or(strings.Compare(a.User, b.User), a.At.Compare(b.At)) })
	}
	sortViews(gotLate)
	sortViews(late)
	exampletest.AssertJSON(t, "late views", gotLate, late)
	if d := len(exampletest.ReadToEnd(t, brokers, group+"-dlq")); d != invalid {
		t.Errorf("%d dead letters, want %d", d, invalid)
	}
	t.Logf("%d sessions, %d late views, %d dead letters", len(got), len(gotLate), invalid)
}
