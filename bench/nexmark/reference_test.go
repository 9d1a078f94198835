package nexmark

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/weirtest"
)

// The cross-check: each query runs through the engine (weirtest: every
// stage, repartition, state, timers and watermarks of a real job, without
// a broker) and through a plain Go computation of the query's definition
// over the same events, and the two outputs must be the same multiset.
// The plain computations share nothing with the jobs but the model and
// the result types.

// testConfig spreads a few thousand events over about a minute of event
// time, so that every window kind fires several times.
var testConfig = Config{Seed: 42, EventsPerSecond: 100}

const (
	testEvents = 5000
	// testClockStep is the processing time between two events (query 12):
	// 5000 events take 50 seconds, five windows.
	testClockStep = 10 * time.Millisecond
)

// reference is a query's plain Go computation over its events. now[i] is
// the processing time at which event i reaches the query (query 12).
type reference func(evs []Event, now []time.Time) []any

var references = map[string]reference{
	"q0": refQ0, "q1": refQ1, "q2": refQ2, "q3": refQ3, "q5": refQ5,
	"q7": refQ7, "q8": refQ8, "q11": refQ11, "q12": refQ12,
}

// results are what each query's outputs decode to, for the comparison.
var results = map[string]func() any{
	"q0": func() any { return new(Bid) }, "q1": func() any { return new(Bid) },
	"q2": func() any { return new(Q2Result) }, "q3": func() any { return new(Q3Result) },
	"q5": func() any { return new(Q5Result) }, "q7": func() any { return new(Q7Result) },
	"q8": func() any { return new(Q8Result) }, "q11": func() any { return new(Q11Result) },
	"q12": func() any { return new(Q12Result) },
}

func bidsOf(evs []Event) []Bid {
	var bs []Bid
	for _, e := range evs {
		if e.Bid != nil {
			bs = append(bs, *e.Bid)
		}
	}
	return bs
}

func refQ0(evs []Event, _ []time.Time) []any {
	var out []any
	for _, b := range bidsOf(evs) {
		out = append(out, b)
	}
	return out
}

func refQ1(evs []Event, _ []time.Time) []any {
	var out []any
	for _, b := range bidsOf(evs) {
		b.Price = int64(float64(b.Price) * 0.908) // SQL's 0.908 * price, its integer part
		out = append(out, b)
	}
	return out
}

func refQ2(evs []Event, _ []time.Time) []any {
	var out []any
	for _, b := range bidsOf(evs) {
		if b.Auction%123 == 0 {
			out = append(out, Q2Result{Auction: b.Auction, Price: b.Price})
		}
	}
	return out
}

func refQ3(evs []Event, _ []time.Time) []any {
	persons := map[int64]Person{}
	for _, e := range evs {
		if p := e.Person; p != nil && (p.State == "OR" || p.State == "ID" || p.State == "CA") {
			persons[p.ID] = *p
		}
	}
	var out []any
	for _, e := range evs {
		if a := e.Auction; a != nil && a.Category == 10 {
			if p, ok := persons[a.Seller]; ok {
				out = append(out, Q3Result{Name: p.Name, City: p.City, State: p.State, ID: a.ID})
			}
		}
	}
	return out
}

// floorTo is the start of the period-long interval, aligned to the
// epoch, that ms is in.
func floorTo(ms, period int64) int64 { return ms - ((ms%period)+period)%period }

func refQ5(evs []Event, _ []time.Time) []any {
	type windowAuction struct{ start, auction int64 }
	counts := map[windowAuction]int64{}
	for _, b := range bidsOf(evs) {
		ts := int64(b.DateTime)
		for s := floorTo(ts, 2000); s > ts-10000; s -= 2000 {
			counts[windowAuction{s, b.Auction}]++
		}
	}
	most := map[int64]int64{}
	for k, n := range counts {
		most[k.start] = max(most[k.start], n)
	}
	var out []any
	for k, n := range counts {
		if n == most[k.start] {
			out = append(out, Q5Result{Auction: k.auction, Num: n})
		}
	}
	return out
}

func refQ7(evs []Event, _ []time.Time) []any {
	bids := bidsOf(evs)
	highest := map[int64]int64{}
	for _, b := range bids {
		w := floorTo(int64(b.DateTime), 10000)
		highest[w] = max(highest[w], b.Price)
	}
	var out []any
	for _, b := range bids {
		if b.Price == highest[floorTo(int64(b.DateTime), 10000)] {
			out = append(out, Q7Result{Auction: b.Auction, Bidder: b.Bidder, Price: b.Price, DateTime: b.DateTime, Extra: b.Extra})
		}
	}
	return out
}

func refQ8(evs []Event, _ []time.Time) []any {
	type personWindow struct{ id, start int64 }
	sold := map[personWindow]bool{}
	for _, e := range evs {
		if a := e.Auction; a != nil {
			sold[personWindow{a.Seller, floorTo(int64(a.DateTime), 10000)}] = true
		}
	}
	var out []any
	for _, e := range evs {
		if p := e.Person; p != nil {
			w := floorTo(int64(p.DateTime), 10000)
			if sold[personWindow{p.ID, w}] {
				out = append(out, Q8Result{ID: p.ID, Name: p.Name, Stime: DateTime(w)})
			}
		}
	}
	return out
}

func refQ11(evs []Event, _ []time.Time) []any {
	times := map[int64][]int64{}
	for _, b := range bidsOf(evs) {
		times[b.Bidder] = append(times[b.Bidder], int64(b.DateTime))
	}
	const gap = 10000
	var out []any
	for bidder, ts := range times {
		slices.Sort(ts)
		start, n := ts[0], int64(0)
		for i, t := range ts {
			if i > 0 && t-ts[i-1] > gap { // windows [t, t+gap) that touch merge
				out = append(out, Q11Result{Bidder: bidder, BidCount: n, Starttime: DateTime(start), Endtime: DateTime(ts[i-1] + gap)})
				start, n = t, 0
			}
			n++
		}
		out = append(out, Q11Result{Bidder: bidder, BidCount: n, Starttime: DateTime(start), Endtime: DateTime(ts[len(ts)-1] + gap)})
	}
	return out
}

func refQ12(evs []Event, now []time.Time) []any {
	type bidderWindow struct{ bidder, start int64 }
	counts := map[bidderWindow]int64{}
	for i, e := range evs {
		if e.Bid != nil {
			counts[bidderWindow{e.Bid.Bidder, floorTo(now[i].UnixMilli(), 10000)}]++
		}
	}
	var out []any
	for k, n := range counts {
		out = append(out, Q11Result{Bidder: k.bidder, BidCount: n, Starttime: DateTime(k.start), Endtime: DateTime(k.start + 10000)})
	}
	return out
}

// canonical returns each value's JSON, sorted: a multiset to compare.
func canonical(t testing.TB, vs []any) []string {
	t.Helper()
	out := make([]string, len(vs))
	for i, v := range vs {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = string(b)
	}
	slices.Sort(out)
	return out
}

// decodeOutputs decodes a query's output values into its result type.
func decodeOutputs(t testing.TB, query string, values [][]byte) []any {
	t.Helper()
	out := make([]any, len(values))
	for i, b := range values {
		v := results[query]()
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s output %s: %v", query, b, err)
		}
		out[i] = v
	}
	return out
}

// generate returns the first n events of cfg.
func generate(cfg Config, n int) []Event {
	g := NewGenerator(cfg)
	evs := make([]Event, n)
	for i := range evs {
		evs[i] = g.Next()
	}
	return evs
}

// endOfTime is a watermark past every window of the tests.
var endOfTime = BaseTime.Add(365 * 24 * time.Hour)

// runHarness runs query q over evs in weirtest with the given partition
// count, events spread round robin as WriteTopic's round-robin producer
// spreads them, a checkpoint every 1000 events, processing time moving
// testClockStep before each event; then the watermark and the clock move
// past every window. It returns the output values and, per event, the
// processing time it was sent at.
func runHarness(t *testing.T, q Query, evs []Event, partitions int32) ([][]byte, []time.Time) {
	job := engine.NewJob("nexmark-" + q.Name)
	q.Build(job, "nexmark", "out")
	h := weirtest.New(t, job, weirtest.Partitions(partitions))
	now := make([]time.Time, len(evs))
	for i, e := range evs {
		h.Clock().Advance(testClockStep)
		now[i] = h.Clock().Now()
		if err := h.SendBytesTo("nexmark", int32(i)%partitions, nil, AppendEvent(nil, e), e.Time()); err != nil {
			t.Fatalf("%s, event %d: %v", q.Name, i, err)
		}
		if i%1000 == 999 {
			if err := h.Checkpoint(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := h.AdvanceWatermark(endOfTime); err != nil {
		t.Fatal(err)
	}
	if err := h.AdvanceTime(2 * Q12Window); err != nil {
		t.Fatal(err)
	}
	var values [][]byte
	for _, r := range h.ReadOutput("out") {
		values = append(values, r.Value)
	}
	return values, now
}

// diff describes how two sorted multisets differ, briefly.
func diff(got, want []string) string {
	var missing, extra []string
	i, j := 0, 0
	for i < len(got) || j < len(want) {
		switch {
		case j == len(want) || (i < len(got) && got[i] < want[j]):
			extra = append(extra, got[i])
			i++
		case i == len(got) || want[j] < got[i]:
			missing = append(missing, want[j])
			j++
		default:
			i++
			j++
		}
	}
	clip := func(s []string) []string { return s[:min(len(s), 5)] }
	return fmt.Sprintf("got %d outputs, want %d; %d missing, e.g. %v; %d unexpected, e.g. %v",
		len(got), len(want), len(missing), clip(missing), len(extra), clip(extra))
}

// TestQueriesMatchReference runs every query through the engine, with one
// partition and with three, against its plain Go reference.
func TestQueriesMatchReference(t *testing.T) {
	evs := generate(testConfig, testEvents)
	for _, q := range Queries {
		for _, partitions := range []int32{1, 3} {
			t.Run(fmt.Sprintf("%s/partitions=%d", q.Name, partitions), func(t *testing.T) {
				values, now := runHarness(t, q, evs, partitions)
				want := canonical(t, references[q.Name](evs, now))
				if len(want) == 0 {
					t.Fatalf("the reference has no output: the test checks nothing")
				}
				got := canonical(t, decodeOutputs(t, q.Name, values))
				if !slices.Equal(got, want) {
					t.Fatal(diff(got, want))
				}
				t.Logf("%d outputs", len(got))
			})
		}
	}
}

func TestQueryByName(t *testing.T) {
	for _, q := range Queries {
		got, err := QueryByName(q.Name)
		if err != nil || got.Name != q.Name {
			t.Errorf("QueryByName(%q) = %v, %v", q.Name, got.Name, err)
		}
		if references[q.Name] == nil {
			t.Errorf("%s has no reference computation", q.Name)
		}
	}
	if _, err := QueryByName("q4"); err == nil {
		t.Error("q4: no error")
	}
}

// TestQ3AuctionBeforePerson covers what the generator never does: an
// auction that comes before its seller. The join holds it until the
// seller comes, and joins later auctions at once.
func TestQ3AuctionBeforePerson(t *testing.T) {
	at := DateTimeOf(BaseTime)
	evs := []Event{
		{Type: AuctionEvent, Auction: &Auction{ID: 1, Seller: 7, Category: 10, DateTime: at}},
		{Type: AuctionEvent, Auction: &Auction{ID: 2, Seller: 7, Category: 11, DateTime: at}}, // another category
		{Type: AuctionEvent, Auction: &Auction{ID: 3, Seller: 8, Category: 10, DateTime: at}}, // a seller in WA
		{Type: AuctionEvent, Auction: &Auction{ID: 4, Seller: 7, Category: 10, DateTime: at + 1}},
		{Type: PersonEvent, Person: &Person{ID: 7, Name: "Ann", City: "Bend", State: "OR", DateTime: at + 2}},
		{Type: PersonEvent, Person: &Person{ID: 8, Name: "Bob", City: "Kent", State: "WA", DateTime: at + 2}},
		{Type: AuctionEvent, Auction: &Auction{ID: 5, Seller: 7, Category: 10, DateTime: at + 3}},
	}
	q, err := QueryByName("q3")
	if err != nil {
		t.Fatal(err)
	}
	values, _ := runHarness(t, q, evs, 2)
	got := canonical(t, decodeOutputs(t, "q3", values))
	want := canonical(t, []any{
		Q3Result{Name: "Ann", City: "Bend", State: "OR", ID: 1},
		Q3Result{Name: "Ann", City: "Bend", State: "OR", ID: 4},
		Q3Result{Name: "Ann", City: "Bend", State: "OR", ID: 5},
	})
	if !slices.Equal(got, want) {
		t.Fatal(diff(got, want))
	}
}

// TestQ8SellerOutOfOrder covers auctions of one seller that reach the
// distinct stage out of time order, as they do from two partitions: one
// of the next window between two of the person's window. The person is
// reported once for the window (the Flink cross-check found Weir's q8
// reporting such persons twice when it remembered only the last window).
func TestQ8SellerOutOfOrder(t *testing.T) {
	at := DateTimeOf(BaseTime)
	evs := []Event{ // round robin over 2 partitions: p0, p1, p0, p1
		{Type: AuctionEvent, Auction: &Auction{ID: 1, Seller: 7, DateTime: at + 1000}},   // p0, window 0
		{Type: PersonEvent, Person: &Person{ID: 7, Name: "Ann", DateTime: at + 500}},     // p1, window 0
		{Type: AuctionEvent, Auction: &Auction{ID: 2, Seller: 7, DateTime: at + 11_000}}, // p0, window 1
		{Type: AuctionEvent, Auction: &Auction{ID: 3, Seller: 7, DateTime: at + 2000}},   // p1, window 0 again
	}
	q, err := QueryByName("q8")
	if err != nil {
		t.Fatal(err)
	}
	values, _ := runHarness(t, q, evs, 2)
	got := canonical(t, decodeOutputs(t, "q8", values))
	want := canonical(t, []any{Q8Result{ID: 7, Name: "Ann", Stime: at}})
	if !slices.Equal(got, want) {
		t.Fatal(diff(got, want))
	}
}

// TestQ3StampsTheLaterSide: a result is stamped with the later of the
// person's and the auction's time, whichever came first.
func TestQ3StampsTheLaterSide(t *testing.T) {
	at := DateTimeOf(BaseTime)
	evs := []Event{
		{Type: AuctionEvent, Auction: &Auction{ID: 1, Seller: 7, Category: 10, DateTime: at + 25}},
		{Type: PersonEvent, Person: &Person{ID: 7, Name: "Ann", City: "Bend", State: "OR", DateTime: at}},
		{Type: AuctionEvent, Auction: &Auction{ID: 2, Seller: 7, Category: 10, DateTime: at + 40}},
	}
	q, err := QueryByName("q3")
	if err != nil {
		t.Fatal(err)
	}
	job := engine.NewJob("nexmark-q3")
	q.Build(job, "nexmark", "out")
	h := weirtest.New(t, job, weirtest.Partitions(1))
	for _, e := range evs {
		if err := h.SendBytesTo("nexmark", 0, nil, AppendEvent(nil, e), e.Time()); err != nil {
			t.Fatal(err)
		}
	}
	stamps := map[int64]time.Time{}
	for _, r := range h.ReadOutput("out") {
		v, err := decodeQ3(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		stamps[v.ID] = r.Timestamp
	}
	if !stamps[1].Equal((at + 25).Time()) || !stamps[2].Equal((at + 40).Time()) {
		t.Fatalf("result times %v; want auction 1 at +25ms (its own, later than the person's), auction 2 at +40ms", stamps)
	}
}

func decodeQ3(b []byte) (Q3Result, error) {
	var r Q3Result
	return r, json.Unmarshal(b, &r)
}
