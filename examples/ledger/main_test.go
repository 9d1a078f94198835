package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
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

var t0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

func minutes(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }

// TestKnownAnswer runs the job on fixed order events and checks the exact
// ledger entries and dead letters, with the headers that say why.
func TestKnownAnswer(t *testing.T) {
	job := engine.NewJob("ledger")
	ledger := Build(job, "orders", "ledger")
	h := weirtest.New(t, job)
	created := func(order string, m int) OrderEvent {
		return OrderEvent{Order: order, Type: Created, At: minutes(m), Customer: "cust-" + order, Cents: 42_00}
	}
	paid := func(order string, m int) OrderEvent {
		return OrderEvent{Order: order, Type: Paid, At: minutes(m), Payment: "pay-" + order}
	}
	shipped := func(order string, m int) OrderEvent {
		return OrderEvent{Order: order, Type: Shipped, At: minutes(m), Carrier: "UPS"}
	}
	input := []OrderEvent{
		created("o-1", 0), paid("o-1", 1), shipped("o-1", 2), // by the book
		created("o-2", 3), shipped("o-2", 4), paid("o-2", 5), shipped("o-2", 6), // shipped before paid: refused, then fine
		created("o-3", 7), created("o-3", 8), // created twice
		paid("o-4", 9),                                                              // never created
		created("o-5", 10), paid("o-5", 11), shipped("o-5", 12), shipped("o-5", 13), // anything after shipped
		created("o-6", 14), {Order: "o-6", Type: "refunded", At: minutes(15)}, // unknown type
		{Order: "o-7", Type: Created, At: minutes(16)}, // created without customer or amount
	}
	for _, e := range input {
		if err := weirtest.SendValue(h, "orders", codec.JSON[OrderEvent](), e.Order, e, e.At); err != nil {
			t.Fatal(err)
		}
	}
	mismatched := created("o-9", 17)
	if err := weirtest.SendValue(h, "orders", codec.JSON[OrderEvent](), "o-8", mismatched, mismatched.At); err != nil {
		t.Fatal(err)
	}
	if err := h.SendBytes("orders", []byte("o-1"), []byte(`{"order":"o-1","type":"paid","at":`), minutes(18)); err != nil {
		t.Fatal(err)
	}
	if err := h.Checkpoint(); err != nil {
		t.Fatal(err)
	}

	entry := func(order, status string, c, p, s int) Entry {
		e := Entry{Order: order, Status: status, Customer: "cust-" + order, Cents: 42_00, CreatedAt: minutes(c)}
		if p >= 0 {
			e.PaidAt, e.Payment = minutes(p), "pay-"+order
		}
		if s >= 0 {
			e.ShippedAt, e.Carrier = minutes(s), "UPS"
		}
		return e
	}
	want := []Entry{
		entry("o-1", Created, 0, -1, -1), entry("o-1", Paid, 0, 1, -1), entry("o-1", Shipped, 0, 1, 2),
		entry("o-2", Created, 3, -1, -1), entry("o-2", Paid, 3, 5, -1), entry("o-2", Shipped, 3, 5, 6),
		entry("o-3", Created, 7, -1, -1),
		entry("o-5", Created, 10, -1, -1), entry("o-5", Paid, 10, 11, -1), entry("o-5", Shipped, 10, 11, 12),
		entry("o-6", Created, 14, -1, -1),
	}
	var got []Entry
	for _, r := range weirtest.CommittedOutputs(h, "ledger", codec.JSON[Entry]()) {
		if r.Key != r.Value.Order {
			t.Errorf("entry %+v under key %q", r.Value, r.Key)
		}
		got = append(got, r.Value)
	}
	exampletest.AssertJSON(t, "entries", got, want)

	// Each dead letter is the event as it was read, plus headers: where it
	// was read (topic, partition, offset), which operator refused it, and why.
	type deadLetter struct {
		Key, Offset, Operator, Class, Message string
	}
	wantDead := []deadLetter{
		{"o-2", "4", "ledger", engine.ClassError, "invalid transition: order o-2: shipped before paid"},
		{"o-3", "8", "ledger", engine.ClassError, "invalid transition: order o-3: created again: the order is already created"},
		{"o-4", "9", "ledger", engine.ClassError, "invalid transition: order o-4: paid before created"},
		{"o-5", "13", "ledger", engine.ClassError, "invalid transition: order o-5: shipped after shipped: the order is closed"},
		{"o-6", "15", "ledger", engine.ClassError, `invalid event for order o-6: unknown event type "refunded" (want one of ["created" "paid" "shipped"])`},
		{"o-7", "16", "ledger", engine.ClassError, `invalid event for order o-7: created needs a customer and a positive amount, got "" and 0 cents`},
		{"o-8", "17", "ledger", engine.ClassError, `invalid event: an event of order "o-9" under the record key "o-8"`},
		{"o-1", "18", "source:orders", engine.ClassDecode, "decoding value: json: unexpected end of JSON input"},
	}
	var gotDead []deadLetter
	for _, r := range h.CommittedOutput("ledger-dlq") {
		hd := exampletest.Headers(r)
		if hd[engine.HeaderErrorTopic] != "orders" || hd[engine.HeaderErrorPartition] != "0" {
			t.Errorf("dead letter %s read from %s/%s, want orders/0", r.Value, hd[engine.HeaderErrorTopic], hd[engine.HeaderErrorPartition])
		}
		gotDead = append(gotDead, deadLetter{string(r.Key), hd[engine.HeaderErrorOffset], hd[engine.HeaderErrorOperator],
			hd[engine.HeaderErrorClass], hd[engine.HeaderErrorMessage]})
	}
	exampletest.AssertJSON(t, "dead letters", gotDead, wantDead)

	// The state is the last good entry: o-2 shipped, o-3 created once.
	entries := ledger.entries
	for order, want := range map[string]string{"o-2": Shipped, "o-3": Created, "o-5": Shipped, "o-6": Created} {
		e, ok, err := entries.Get(h.Scope(0, []byte(order)))
		if err != nil || !ok || e.Status != want {
			t.Errorf("state of %s: %+v, %v, %v; want status %s", order, e, ok, err, want)
		}
	}
	for _, order := range []string{"o-4", "o-7", "o-8", "o-9"} {
		if _, ok, _ := entries.Get(h.Scope(0, []byte(order))); ok {
			t.Errorf("order %s has state; its only events were refused", order)
		}
	}
}

// refused is a dead letter as the tests compare them: the event's bytes
// and why it was refused, by the words of the reason.
type refused struct {
	Value, Why string
}

// reference runs the state machine over the generated events in plain Go,
// in the order written (each order's events are in one partition, in
// order), and returns the entries and the refused events, each grouped by
// order and in order within it.
func reference(recs []*kgo.Record) (entries []Entry, dead []refused) {
	step := map[string]int{Created: 1, Paid: 2, Shipped: 3}
	at := map[string]int{} // order -> steps taken; 0: none yet
	current := map[string]Entry{}
	for _, r := range recs {
		var e OrderEvent
		if err := json.Unmarshal(r.Value, &e); err != nil {
			dead = append(dead, refused{string(r.Value), "decoding value"})
			continue
		}
		s, known := step[e.Type]
		why := ""
		switch cur := at[e.Order]; {
		case !known:
			why = "unknown event type"
		case cur == 3:
			why = "after shipped: the order is closed"
		case s > cur+1:
			why = " before "
		case s <= cur:
			why = " again: "
		case s == 1 && (e.Customer == "" || e.Cents <= 0):
			why = "created needs a customer and a positive amount"
		}
		if why != "" {
			dead = append(dead, refused{string(r.Value), why})
			continue
		}
		at[e.Order] = s
		en := current[e.Order]
		switch s {
		case 1:
			en = Entry{Order: e.Order, Customer: e.Customer, Cents: e.Cents, CreatedAt: e.At}
		case 2:
			en.PaidAt, en.Payment = e.At, e.Payment
		case 3:
			en.ShippedAt, en.Carrier = e.At, e.Carrier
		}
		en.Status = e.Type
		current[e.Order] = en
		entries = append(entries, en)
	}
	slices.SortStableFunc(entries, func(a, b Entry) int { return strings.Compare(a.Order, b.Order) })
	slices.SortStableFunc(dead, func(a, b refused) int { return strings.Compare(orderOf(a.Value), orderOf(b.Value)) })
	return entries, dead
}

// orderOf is the order id in an event's bytes, even one that is not JSON.
func orderOf(v string) string {
	_, rest, _ := strings.Cut(v, `"order":"`)
	id, _, _ := strings.Cut(rest, `"`)
	return id
}

// checkDeadLetters checks dead letters against what reference returns:
// the same events, each refused for a reason with the words expected.
func checkDeadLetters(t *testing.T, recs []*kgo.Record, want []refused) {
	t.Helper()
	var got []refused
	for _, r := range recs {
		got = append(got, refused{string(r.Value), exampletest.Headers(r)[engine.HeaderErrorMessage]})
	}
	slices.SortStableFunc(got, func(a, b refused) int { return strings.Compare(orderOf(a.Value), orderOf(b.Value)) })
	if len(got) != len(want) {
		t.Errorf("%d dead letters, want %d", len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if got[i].Value != want[i].Value || !strings.Contains(got[i].Why, want[i].Why) {
			t.Errorf("dead letter %d: %q refused with %q; want %q, refused with a reason with %q", i, got[i].Value, got[i].Why, want[i].Value, want[i].Why)
		}
	}
}

// TestGeneratedInput runs the generator's events through the job in the
// harness, on three partitions, and checks them against the reference.
func TestGeneratedInput(t *testing.T) {
	const n = 1400
	recs, err := generateEvents(n, 9)
	if err != nil {
		t.Fatal(err)
	}
	job := engine.NewJob("ledger")
	Build(job, "orders", "ledger")
	h := weirtest.New(t, job, weirtest.Partitions(3))
	for _, r := range recs {
		if err := h.SendBytes("orders", r.Key, r.Value, r.Timestamp); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	var got []Entry
	for _, r := range weirtest.CommittedOutputs(h, "ledger", codec.JSON[Entry]()) {
		got = append(got, r.Value)
	}
	slices.SortStableFunc(got, func(a, b Entry) int { return strings.Compare(a.Order, b.Order) })
	want, dead := reference(recs)
	exampletest.AssertJSON(t, "entries", got, want)
	checkDeadLetters(t, h.CommittedOutput("ledger-dlq"), dead)
	// n/20 orders break the machine, 7 ways in turn; two ways refuse two events.
	if planted := n / 20; len(dead) != planted+2*(planted/7) {
		t.Errorf("the generator planted %d refused events, want %d", len(dead), planted+2*(planted/7))
	}
	t.Logf("%d events: %d entries, %d dead letters", len(recs), len(want), len(dead))
}

// TestAgainstBroker runs the example as its user does, against the real
// broker: `ledger --generate`, then the job to the end of its input
// (--until end), and checks the ledger topic and the dead-letter topic,
// read as a downstream consumer reads them, against the reference.
func TestAgainstBroker(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	bin := exampletest.Build(t)
	input, output, group := kafkatest.Name("ledger-events"), kafkatest.Name("ledger-out"), kafkatest.Name("ledger")
	exampletest.DeleteTopicsAtEnd(t, brokers, group, input, output)
	const n, seed = 700, 4
	exampletest.Run(t, time.Minute, bin, []string{"WEIR_BROKERS=" + strings.Join(brokers, ",")},
		"--generate", strconv.Itoa(n), "--seed", fmt.Sprint(seed), "--partitions", "3", "--input", input, "--output", output)
	exampletest.Run(t, 2*time.Minute, bin, exampletest.JobEnv(t, brokers, group), "--input", input, "--output", output)

	recs, err := generateEvents(n, seed)
	if err != nil {
		t.Fatal(err)
	}
	want, dead := reference(recs)
	var got []Entry
	for _, r := range exampletest.ReadToEnd(t, brokers, output) {
		var e Entry
		if err := json.Unmarshal(r.Value, &e); err != nil {
			t.Fatalf("entry %q: %v", r.Value, err)
		}
		if string(r.Key) != e.Order {
			t.Errorf("entry %+v keyed %q", e, r.Key)
		}
		got = append(got, e)
	}
	slices.SortStableFunc(got, func(a, b Entry) int { return strings.Compare(a.Order, b.Order) })
	exampletest.AssertJSON(t, "entries", got, want)
	dlq := exampletest.ReadToEnd(t, brokers, group+"-dlq")
	for _, r := range dlq {
		if hd := exampletest.Headers(r); hd[engine.HeaderErrorTopic] != input || hd[engine.HeaderErrorOffset] == "" {
			t.Errorf("dead letter %s: headers %v, want it read from %s at an offset", r.Value, hd, input)
		}
	}
	checkDeadLetters(t, dlq, dead)
	t.Logf("%d entries, %d dead letters", len(got), len(dlq))
}
