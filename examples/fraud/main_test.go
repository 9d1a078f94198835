package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/examples/internal/exampletest"
	"github.com/weirstream/weir/internal/kafkatest"
	"github.com/weirstream/weir/weirtest"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// after is t0 plus a duration written as Go writes them ("60.001s").
func after(t *testing.T, d string) time.Time {
	t.Helper()
	dd, err := time.ParseDuration(d)
	if err != nil {
		t.Fatal(err)
	}
	return t0.Add(dd)
}

// TestKnownAnswer runs the job on a fixed set of charges, each rule's
// boundary on both sides, sent out of order within the bound, and checks
// the exact alerts and dead letters.
func TestKnownAnswer(t *testing.T) {
	type sent struct {
		ch    Charge
		delay string // sent this long after its event time: out of order, within the bound
	}
	c := func(id, card string, cents int64, merchant, at string) Charge {
		return Charge{ID: id, Card: card, Cents: cents, Merchant: merchant, At: after(t, at)}
	}
	input := []sent{
		// card-A: two test charges, then a big one exactly 60s after the
		// first: both are evidence. The second big one is 65s after the
		// last test charge: no alert.
		{c("A-1", "card-A", 50, "APPSTORE*VERIFY", "0s"), "0s"},
		{c("A-2", "card-A", 12_00, "Corner Grocery", "10s"), "0s"},
		{c("A-3", "card-A", 75, "PARKING-METER-22", "30s"), "0s"},
		{c("A-4", "card-A", 899_00, "Pixel Electronics", "60s"), "0s"},
		{c("A-5", "card-A", 1500_00, "Airline Direct", "95s"), "0s"},
		// card-B: the big charge 60.001s after the test charge: no alert.
		{c("B-1", "card-B", 99, "WEB*DONATE-A-DOLLAR", "0s"), "0s"},
		{c("B-2", "card-B", 650_00, "Pixel Electronics", "60.001s"), "0s"},
		// card-C: 6 charges in 59.9s, arriving out of order: an alert at
		// the sixth. The seventh is still in the burst: no second alert.
		{c("C-1", "card-C", 20_00, "City Fuel", "0.5s"), "8s"},
		{c("C-2", "card-C", 21_00, "MegaMart", "8s"), "0s"},
		{c("C-3", "card-C", 22_00, "Book Nook", "16s"), "9s"},
		{c("C-4", "card-C", 23_00, "QuickPharm", "24s"), "0s"},
		{c("C-5", "card-C", 24_00, "Chez Paul", "40s"), "0s"},
		{c("C-6", "card-C", 25_00, "Metro Transit", "60.4s"), "1s"},
		{c("C-7", "card-C", 26_00, "StreamFlix", "61s"), "0s"},
		// card-D: 6 charges over 60.001s: never 6 within 60s, no alert
		// (sliding windows of 1s slides would have found 6).
		{c("D-1", "card-D", 5_00, "Bean There Coffee", "0s"), "0s"},
		{c("D-2", "card-D", 5_00, "Bean There Coffee", "12s"), "0s"},
		{c("D-3", "card-D", 5_00, "Bean There Coffee", "24s"), "0s"},
		{c("D-4", "card-D", 5_00, "Bean There Coffee", "36s"), "0s"},
		{c("D-5", "card-D", 5_00, "Bean There Coffee", "48s"), "0s"},
		{c("D-6", "card-D", 5_00, "Bean There Coffee", "60.001s"), "0s"},
	}
	slices.SortStableFunc(input, func(a, b sent) int {
		return a.ch.At.Add(mustDuration(t, a.delay)).Compare(b.ch.At.Add(mustDuration(t, b.delay)))
	})

	job := engine.NewJob("fraud")
	Build(job, "charges", "alerts")
	h := weirtest.New(t, job)
	for _, s := range input {
		if err := weirtest.SendValue(h, "charges", codec.JSON[Charge](), s.ch.Merchant, s.ch, s.ch.At); err != nil {
			t.Fatal(err)
		}
	}
	// Bad input: a refund (not a charge), a record that is not JSON, and
	// a charge that arrives after the watermark (now 95s-10s-1ms) passed
	// its time.
	refund := c("R-1", "card-B", -19_99, "MegaMart", "70s")
	late := c("L-1", "card-B", 30_00, "City Fuel", "40s")
	if err := weirtest.SendValue(h, "charges", codec.JSON[Charge](), refund.Merchant, refund, refund.At); err != nil {
		t.Fatal(err)
	}
	if err := h.SendBytes("charges", []byte("Book Nook"), []byte(`{"id":"X-1","amount_cents":"12.50"`), after(t, "80s")); err != nil {
		t.Fatal(err)
	}
	if err := weirtest.SendValue(h, "charges", codec.JSON[Charge](), late.Merchant, late, late.At); err != nil {
		t.Fatal(err)
	}
	if err := h.EndInput(); err != nil { // the end of the input: every pending charge is checked
		t.Fatal(err)
	}
	if err := h.Checkpoint(); err != nil {
		t.Fatal(err)
	}

	byID := map[string]Charge{}
	for _, s := range input {
		byID[s.ch.ID] = s.ch
	}
	evidence := func(ids ...string) []Charge {
		var out []Charge
		for _, id := range ids {
			out = append(out, byID[id])
		}
		return out
	}
	want := []Alert{
		{ID: "A-4/test-then-big", Card: "card-A", Rule: RuleTestThenBig, At: after(t, "60s"),
			Reason:   "$899.00 charged after 2 charge(s) under $1.00 in the 1m0s before it",
			Evidence: evidence("A-1", "A-3", "A-4")},
		{ID: "C-6/velocity", Card: "card-C", Rule: RuleVelocity, At: after(t, "60.4s"),
			Reason:   "6 charges in 59.9s (more than 5 within 1m0s)",
			Evidence: evidence("C-1", "C-2", "C-3", "C-4", "C-5", "C-6")},
	}
	var got []Alert
	for _, r := range weirtest.CommittedOutputs(h, "alerts", codec.JSON[Alert]()) {
		if r.Key != r.Value.Card || !r.Timestamp.Equal(r.Value.At) {
			t.Errorf("alert %s has key %q and timestamp %v: want its card and time", r.Value.ID, r.Key, r.Timestamp)
		}
		got = append(got, r.Value)
	}
	exampletest.AssertJSON(t, "alerts", got, want)

	type deadLetter struct{ Value, Operator, Class, Message string }
	var dead []deadLetter
	for _, r := range h.CommittedOutput("fraud-dlq") {
		hd := exampletest.Headers(r)
		dead = append(dead, deadLetter{string(r.Value), hd[engine.HeaderErrorOperator], hd[engine.HeaderErrorClass], hd[engine.HeaderErrorMessage]})
	}
	if len(dead) != 3 {
		t.Fatalf("dead letters: %+v, want the refund, the record that is not JSON and the late charge", dead)
	}
	checkDead := func(d deadLetter, operator, class, message string) {
		t.Helper()
		if d.Operator != operator || d.Class != class || !strings.Contains(d.Message, message) {
			t.Errorf("dead letter %s: operator %q, class %q, message %q; want %q, %q, a message with %q",
				d.Value, d.Operator, d.Class, d.Message, operator, class, message)
		}
	}
	checkDead(dead[0], "validate", engine.ClassError, "invalid charge R-1: amount -1999 cents is not positive")
	checkDead(dead[1], "source:charges", engine.ClassDecode, "")
	checkDead(dead[2], "detector", engine.ClassError, "late charge L-1 at 2026-12-01T10:00:40Z: the watermark is at 2026-12-01T10:01:24.999Z")
}

func mustDuration(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// reference computes the alerts of the generated input in plain Go, from
// the definitions: per card, in event-time order (ties by id), the span of
// a charge is it and the charges at most Span before it; a test-then-big
// alert is a charge over $500 with a charge under $1 strictly before it in
// its span; a velocity alert is a charge whose span holds more than
// MaxCharges when the span of the card's previous charge did not. It also
// counts the records that are not valid charges.
func reference(t *testing.T, in [][]byte) (alerts []Alert, invalid int) {
	t.Helper()
	byCard := map[string][]Charge{}
	for _, v := range in {
		var ch Charge
		if err := json.Unmarshal(v, &ch); err != nil || ch.Cents <= 0 {
			invalid++
			continue
		}
		byCard[ch.Card] = append(byCard[ch.Card], ch)
	}
	for _, chs := range byCard {
		slices.SortFunc(chs, func(a, b Charge) int { return cmp.Or(a.At.Compare(b.At), strings.Compare(a.ID, b.ID)) })
		spanOf := func(i int) []Charge {
			j := i
			for j > 0 && chs[i].At.Sub(chs[j-1].At) <= Span {
				j--
			}
			return chs[j : i+1]
		}
		for i, ch := range chs {
			span := spanOf(i)
			var tests []Charge
			for _, p := range span {
				if p.Cents < TestChargeBelow && p.At.Before(ch.At) {
					tests = append(tests, p)
				}
			}
			if ch.Cents > BigChargeAbove && len(tests) > 0 {
				alerts = append(alerts, Alert{ID: ch.ID + "/" + RuleTestThenBig, Card: ch.Card, Rule: RuleTestThenBig, At: ch.At,
					Evidence: append(tests, ch)})
			}
			if len(span) > MaxCharges && (i == 0 || len(spanOf(i-1)) <= MaxCharges) {
				alerts = append(alerts, Alert{ID: ch.ID + "/" + RuleVelocity, Card: ch.Card, Rule: RuleVelocity, At: ch.At,
					Evidence: slices.Clone(span)})
			}
		}
	}
	sortAlerts(alerts)
	return alerts, invalid
}

func sortAlerts(as []Alert) {
	slices.SortFunc(as, func(a, b Alert) int { return strings.Compare(a.ID, b.ID) })
}

// withoutReasons drops the reasons, which the reference does not write.
func withoutReasons(as []Alert) []Alert {
	out := slices.Clone(as)
	for i := range out {
		out[i].Reason = ""
	}
	return out
}

// summary counts alerts by rule, and those whose pattern sits exactly on
// the span's boundary (first evidence exactly Span before the last).
func summary(as []Alert) string {
	n := map[string]int{}
	for _, a := range as {
		n[a.Rule]++
		if a.At.Sub(a.Evidence[0].At) == Span {
			n[a.Rule+" exactly 60s"]++
		}
	}
	return fmt.Sprint(n)
}

// TestGeneratedInput runs the generator's input through the job in the
// harness, on three partitions, and checks every alert against the
// reference: the generator plants every case it says it does.
func TestGeneratedInput(t *testing.T) {
	recs, err := generateCharges(2000, 7)
	if err != nil {
		t.Fatal(err)
	}
	job := engine.NewJob("fraud")
	Build(job, "charges", "alerts")
	h := weirtest.New(t, job, weirtest.Partitions(3))
	var values [][]byte
	for _, r := range recs {
		if err := h.SendBytes("charges", r.Key, r.Value, r.Timestamp); err != nil {
			t.Fatal(err)
		}
		values = append(values, r.Value)
	}
	if err := h.EndInput(); err != nil {
		t.Fatal(err)
	}
	if err := h.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	var got []Alert
	for _, r := range weirtest.CommittedOutputs(h, "alerts", codec.JSON[Alert]()) {
		got = append(got, r.Value)
	}
	sortAlerts(got)
	want, invalid := reference(t, values)
	exampletest.AssertJSON(t, "alerts", withoutReasons(got), want)
	if n := len(h.CommittedOutput("fraud-dlq")); n != invalid || invalid != 2*(2000/500) {
		t.Errorf("%d dead letters, %d invalid records: want %d", n, invalid, 2*(2000/500))
	}
	s := summary(want)
	for _, c := range []string{RuleTestThenBig, RuleVelocity, RuleTestThenBig + " exactly 60s", RuleVelocity + " exactly 60s"} {
		if !strings.Contains(s, c+":") {
			t.Errorf("the generator planted no %q: %s", c, s)
		}
	}
	t.Logf("%d records: %s", len(recs), s)
}

// TestAgainstBroker runs the example as its user does, against the real
// broker: `fraud --generate`, then the job to the end of its input
// (--until end), and checks the alerts topic and the dead-letter topic,
// read as a downstream consumer reads them, against the reference.
func TestAgainstBroker(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	bin := exampletest.Build(t)
	input, output, group := kafkatest.Name("fraud-charges"), kafkatest.Name("fraud-alerts"), kafkatest.Name("fraud")
	exampletest.DeleteTopicsAtEnd(t, brokers, group, input, output)
	const n, seed = 600, 3
	exampletest.Run(t, time.Minute, bin, []string{"WEIR_BROKERS=" + strings.Join(brokers, ",")},
		"--generate", fmt.Sprint(n), "--seed", fmt.Sprint(seed), "--partitions", "3", "--input", input, "--output", output)
	exampletest.Run(t, 2*time.Minute, bin, exampletest.JobEnv(t, brokers, group), "--input", input, "--output", output)

	recs, err := generateCharges(n, seed)
	if err != nil {
		t.Fatal(err)
	}
	var values [][]byte
	for _, r := range recs {
		values = append(values, r.Value)
	}
	want, invalid := reference(t, values)

	var got []Alert
	for _, r := range exampletest.ReadToEnd(t, brokers, output) {
		var a Alert
		if err := json.Unmarshal(r.Value, &a); err != nil {
			t.Fatalf("alert %q: %v", r.Value, err)
		}
		if string(r.Key) != a.Card {
			t.Errorf("alert %s keyed %q", a.ID, r.Key)
		}
		got = append(got, a)
	}
	sortAlerts(got)
	exampletest.AssertJSON(t, "alerts", withoutReasons(got), want)
	dead := exampletest.ReadToEnd(t, brokers, group+"-dlq")
	classes := map[string]int{}
	for _, r := range dead {
		classes[exampletest.Headers(r)[engine.HeaderErrorClass]]++
	}
	if len(dead) != invalid || classes[engine.ClassDecode] != n/500 || classes[engine.ClassError] != n/500 {
		t.Errorf("dead letters by class %v, want %d of each (%d invalid records)", classes, n/500, invalid)
	}
	t.Logf("%d alerts (%s), %d dead letters", len(got), summary(want), len(dead))
}
