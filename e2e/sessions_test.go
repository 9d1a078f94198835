package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/e2e/jobs/shared"
	"github.com/weirstream/weir/internal/kafkatest"
)

const trailerUser = "zz-trailer"

// clickstream is the sessions job's input: users clicking in bursts, the
// gaps between clicks drawn so that sessions both merge and split, many of
// them exactly at the session gap or a millisecond either side of it. The
// topic is keyed by page, so sessionizing per user needs a repartition.
// Records are shuffled inside the out-of-orderness bound (each is sent
// before any record more than the bound after it), so none is late; one
// trailer per partition an hour after the last click moves every
// watermark past every session. It returns the records in the order they
// are to be produced, and each user's clicks.
func clickstream(topic string, users int, partitions int32) ([]*kgo.Record, map[string][]shared.Click) {
	rng := rand.New(rand.NewPCG(30, 2024))
	base := time.Date(2024, 1, 1, 8, 0, 0, 0, time.UTC)
	gap := shared.SessionGap.Milliseconds()
	ms := func(n int64) time.Duration { return time.Duration(n) * time.Millisecond }
	type sortable struct {
		c   shared.Click
		key time.Time
	}
	var all []sortable
	byUser := map[string][]shared.Click{}
	var last time.Time
	for u := range users {
		user := fmt.Sprintf("user-%03d", u)
		at := base.Add(ms(rng.Int64N(10 * 60 * 1000)))
		for i := range 80 + rng.IntN(91) {
			if i > 0 {
				var d int64
				switch r := rng.IntN(100); {
				case r < 4:
					d = gap // touching windows: one session
				case r < 8:
					d = gap - 1
				case r < 12:
					d = gap + 1 // the first millisecond that splits
				case r < 16:
					d = gap - rng.Int64N(2000) // near the gap, often bridged out of order
				case r < 20:
					d = 0 // same millisecond
				case r < 36:
					d = gap + 1 + rng.Int64N(15*60*1000) // a break: a new session
				case r < 60:
					d = rng.Int64N(2000) // quick clicks, reordered in flight
				default:
					d = 1 + rng.Int64N(gap-1)
				}
				at = at.Add(ms(d))
			}
			c := shared.Click{User: user, Page: fmt.Sprintf("/page/%d", rng.IntN(40)), At: at}
			byUser[user] = append(byUser[user], c)
			// Send order: by time plus a jitter under the bound, so a click
			// is never sent after one more than the bound later than it.
			all = append(all, sortable{c: c, key: at.Add(ms(rng.Int64N(shared.OutOfOrderness.Milliseconds())))})
			if at.After(last) {
				last = at
			}
		}
	}
	slices.SortStableFunc(all, func(a, b sortable) int { return a.key.Compare(b.key) })
	recs := make([]*kgo.Record, 0, len(all)+int(partitions))
	for _, s := range all {
		b, _ := json.Marshal(s.c)
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(s.c.Page), Value: b, Timestamp: s.c.At,
			Partition: javaPartition([]byte(s.c.Page), partitions)})
	}
	for p := range partitions {
		at := last.Add(time.Hour)
		b, _ := json.Marshal(shared.Click{User: trailerUser, Page: "/", At: at})
		recs = append(recs, &kgo.Record{Topic: topic, Value: b, Timestamp: at, Partition: p})
	}
	return recs, byUser
}

// expectedSessions computes the sessions independently of Weir: sort each
// user's click times and split where the next click is more than the gap
// after the previous one (exactly the gap still touches: one session).
// The session's window is [first, last+gap). Keys are "user start-ms".
// It also counts the consecutive clicks exactly the gap apart (one
// session) and the gap plus 1ms apart (two).
func expectedSessions(byUser map[string][]shared.Click) (want map[string]shared.Session, atGap, pastGap int) {
	gap := shared.SessionGap
	want = map[string]shared.Session{}
	for user, cs := range byUser {
		cs = slices.Clone(cs)
		slices.SortStableFunc(cs, func(a, b shared.Click) int { return a.At.Compare(b.At) })
		flush := func(group []shared.Click) {
			pages := map[string]bool{}
			for _, c := range group {
				pages[c.Page] = true
			}
			first, last := group[0].At, group[len(group)-1].At
			want[sessionID(user, first)] = shared.Session{Key: user, Start: first, End: last.Add(gap),
				Value: shared.SessionSummary{Clicks: len(group), First: first, Last: last, Pages: len(pages)}}
		}
		start := 0
		for i := 1; i < len(cs); i++ {
			d := cs[i].At.Sub(cs[i-1].At)
			switch d {
			case gap:
				atGap++
			case gap + time.Millisecond:
				pastGap++
			}
			if d > gap {
				flush(cs[start:i])
				start = i
			}
		}
		flush(cs[start:])
	}
	return want, atGap, pastGap
}

func sessionID(user string, start time.Time) string {
	return fmt.Sprintf("%s %d", user, start.UnixMilli())
}

// checkClickOrder checks that the input is out of order, but only inside
// the bound, on every partition, and counts the clicks that, in the order
// they are sent, reach two sessions apart and bridge them, so the job has
// to merge two accumulators.
func checkClickOrder(t *testing.T, input []*kgo.Record) (reordered, bridges int) {
	t.Helper()
	maxAt := map[int32]time.Time{}
	open := map[string][][2]time.Time{} // per user: [first, last+gap] of its sessions so far
	for _, r := range input {
		var c shared.Click
		if err := json.Unmarshal(r.Value, &c); err != nil {
			t.Fatal(err)
		}
		if m, ok := maxAt[r.Partition]; ok {
			if !c.At.After(m.Add(-shared.OutOfOrderness)) {
				t.Fatalf("generator: click at %v on partition %d after %v: late", c.At, r.Partition, m)
			}
			if c.At.Before(m) {
				reordered++
			}
		}
		if c.At.After(maxAt[r.Partition]) {
			maxAt[r.Partition] = c.At
		}
		iv := [2]time.Time{c.At, c.At.Add(shared.SessionGap)}
		var rest [][2]time.Time
		touched := 0
		for _, s := range open[c.User] {
			if s[0].After(iv[1]) || s[1].Before(iv[0]) {
				rest = append(rest, s)
				continue
			}
			touched++
			if s[0].Before(iv[0]) {
				iv[0] = s[0]
			}
			if s[1].After(iv[1]) {
				iv[1] = s[1]
			}
		}
		if touched > 1 {
			bridges++
		}
		open[c.User] = append(rest, iv)
	}
	return reordered, bridges
}

// decodeSessions decodes the job's outputs by "user start-ms", checking
// each record's key, partition and timestamp, and counts duplicates,
// failing on a session reported twice with different contents.
func decodeSessions(t *testing.T, recs []*kgo.Record) (got map[string]shared.Session, dups int) {
	t.Helper()
	got = map[string]shared.Session{}
	for _, r := range recs {
		var s shared.Session
		if err := json.Unmarshal(r.Value, &s); err != nil {
			t.Fatalf("undecodable output %q: %v", r.Value, err)
		}
		if s.Key == trailerUser {
			t.Fatalf("the trailer's session was emitted, but no watermark passed it: %s", r.Value)
		}
		id := sessionID(s.Key, s.Start)
		if string(r.Key) != s.Key {
			t.Fatalf("session %s has record key %q", id, r.Key)
		}
		if p := javaPartition(r.Key, partitions); r.Partition != p {
			t.Fatalf("session %s in partition %d, murmur2 assigns %d", id, r.Partition, p)
		}
		if want := s.End.Add(-time.Millisecond); !r.Timestamp.Equal(want) {
			t.Fatalf("session %s has timestamp %v, want its last millisecond %v", id, r.Timestamp.UTC(), want)
		}
		if prev, ok := got[id]; ok {
			if !sameSession(prev, s) {
				t.Fatalf("session %s reported as %+v and %+v", id, prev, s)
			}
			dups++
			continue
		}
		got[id] = s
	}
	return got, dups
}

func sameSession(a, b shared.Session) bool {
	return a.Key == b.Key && a.Start.Equal(b.Start) && a.End.Equal(b.End) &&
		a.Value.Clicks == b.Value.Clicks && a.Value.First.Equal(b.Value.First) &&
		a.Value.Last.Equal(b.Value.Last) && a.Value.Pages == b.Value.Pages
}

// TestSessionsTwoReplicasMatchIndependentComputation runs the sessions job
// (per-user session windows with a 30s gap over clicks keyed by page,
// re-keyed by user through a repartition topic) as two processes in one
// consumer group against the real broker, over a generated clickstream of
// a few hours of event time, and checks the sessions it writes against
// sessions computed from the same clicks in plain Go: every one present
// once, with the same window, count, first and last click and distinct
// pages, and no other.
func TestSessionsTwoReplicasMatchIndependentComputation(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	in := kafkatest.CreateTopic(t, brokers, "session-clicks", partitions)
	out := kafkatest.CreateTopic(t, brokers, "sessions", partitions)
	group := kafkatest.Name("sessions")
	input, byUser := clickstream(in, 200, partitions)
	want, atGap, pastGap := expectedSessions(byUser)
	reordered, bridges := checkClickOrder(t, input)
	t.Logf("%d clicks of %d users (%d sent after a later one on their partition, %d bridging two sessions as sent); "+
		"%d expected sessions (%d pairs of clicks exactly the gap apart, %d the gap plus 1ms)",
		len(input)-int(partitions), len(byUser), reordered, bridges, len(want), atGap, pastGap)
	if bridges == 0 {
		t.Fatal("generator: no click bridges two sessions; Merge is not exercised")
	}

	rs := startReplicas(t, "sessions", brokers, group, in, out, 2)
	a, b := rs[0], rs[1]

	start := time.Now()
	producer := kafkatest.Client(t, brokers, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	kafkatest.ProduceSync(t, producer, input...)
	outputs := collect(t, brokers, out)
	// Wait for every session, or stop at the first wrong or unexpected
	// one: waiting longer cannot put that right.
	kafkatest.Eventually(t, 3*time.Minute, "every session from the replicas", func() bool {
		got, _ := decodeSessions(t, outputs.snapshot())
		missing, wrong, extra := compareSessions(got, want)
		return len(missing) == 0 || len(wrong)+len(extra) > 0
	})
	t.Logf("outputs settled %v after producing the input", time.Since(start).Round(time.Millisecond))

	for _, p := range []*process{a, b} {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []*process{a, b} {
		if code := p.wait(t, time.Minute); code != 0 {
			t.Fatalf("a replica exited %d after SIGTERM", code)
		}
	}

	// Everything the replicas committed before they stopped.
	got, dups := decodeSessions(t, outputs.snapshot())
	missing, wrong, extra := compareSessions(got, want)
	for i, id := range missing {
		if i == 5 {
			break
		}
		w := want[id]
		t.Errorf("session %s missing: want %+v", id, w)
	}
	for i, id := range wrong {
		if i == 5 {
			break
		}
		t.Errorf("session %s: got %+v, want %+v", id, got[id], want[id])
	}
	for i, id := range extra {
		if i == 5 {
			break
		}
		t.Errorf("unexpected session %s: %+v", id, got[id])
	}
	if dups > 0 {
		t.Errorf("%d sessions written twice in a run without failures", dups)
	}
	if len(missing)+len(wrong)+len(extra) > 0 {
		t.Fatalf("of %d sessions, %d missing (or not waited for after a wrong one), %d wrong; %d unexpected",
			len(want), len(missing), len(wrong), len(extra))
	}
	t.Logf("%d sessions, all as computed independently", len(got))
}

// compareSessions returns, sorted, the ids of the sessions missing from
// got, those in both but different, and those only in got.
func compareSessions(got, want map[string]shared.Session) (missing, wrong, extra []string) {
	for id, w := range want {
		if g, ok := got[id]; !ok {
			missing = append(missing, id)
		} else if !sameSession(g, w) {
			wrong = append(wrong, id)
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			extra = append(extra, id)
		}
	}
	slices.Sort(missing)
	slices.Sort(wrong)
	slices.Sort(extra)
	return missing, wrong, extra
}
