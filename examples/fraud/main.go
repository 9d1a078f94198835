// Command fraud is a Weir job that watches card charges for two classic
// signs of a stolen card, per card and in event time:
//
//   - test-then-big: a charge under $1 (a thief checking that the card
//     works) followed, at most 60 s later, by one over $500;
//   - velocity: more than 5 charges within any 60 s.
//
// Charges arrive keyed by merchant (the acquirer writes them as merchants
// send them), up to OutOfOrderness out of order. The job re-keys them by
// card, puts each card's charges back in event-time order with a keyed
// process function (a charge waits in state until the watermark passes
// it), and checks both rules exactly on the charges of the 60 s before
// each one: no window approximates "any 60 s". Each alert carries the
// charges that triggered it.
//
// Run it (WEIR_BROKERS, WEIR_GROUP and every other WEIR_* variable or
// flag configure it as any Weir job):
//
//	fraud --generate 2000      # writes 2000 charges to card-charges and exits
//	fraud --until end          # the job: alerts to fraud-alerts; stops at the end of the input
package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/state"
	"github.com/weirstream/weir/windowing"
)

const (
	// Span is how far back both rules look from a charge: the charges at
	// most Span before it (and it) are "within 60 s".
	Span = 60 * time.Second
	// TestChargeBelow and BigChargeAbove are the test-then-big rule's
	// amounts, in cents: under $1, then over $500.
	TestChargeBelow = 100
	BigChargeAbove  = 500_00
	// MaxCharges is the velocity rule's limit: more than MaxCharges charges
	// within Span is an alert.
	MaxCharges = 5
	// OutOfOrderness is how late a charge may arrive after a later one on
	// its partition: the watermark trails the latest charge by this much.
	// A charge later than that is dead-lettered (see Detector.Process).
	OutOfOrderness = 10 * time.Second
)

// Rule names, as alerts carry them.
const (
	RuleTestThenBig = "test-then-big"
	RuleVelocity    = "velocity"
)

// Charge is one card charge, as the payment processor writes it.
type Charge struct {
	ID       string    `json:"id"`
	Card     string    `json:"card"`
	Cents    int64     `json:"amount_cents"`
	Merchant string    `json:"merchant"`
	At       time.Time `json:"at"`
}

// Alert is the job's output: a rule a card broke, and the charges that
// broke it, in event-time order; the last one completed the pattern.
type Alert struct {
	ID       string    `json:"id"` // the completing charge's id and the rule: unique per alert
	Card     string    `json:"card"`
	Rule     string    `json:"rule"`
	Reason   string    `json:"reason"`
	At       time.Time `json:"at"` // the completing charge's time
	Evidence []Charge  `json:"evidence"`
}

// ErrInvalidCharge is what validate rejects: the charge is dead-lettered.
var ErrInvalidCharge = errors.New("invalid charge")

func validate(c Charge) (Charge, error) {
	switch {
	case c.ID == "":
		return c, fmt.Errorf("%w: no id", ErrInvalidCharge)
	case c.Card == "":
		return c, fmt.Errorf("%w %s: no card", ErrInvalidCharge, c.ID)
	case c.Cents <= 0:
		return c, fmt.Errorf("%w %s: amount %d cents is not positive", ErrInvalidCharge, c.ID, c.Cents)
	case c.At.IsZero():
		return c, fmt.Errorf("%w %s: no time", ErrInvalidCharge, c.ID)
	}
	return c, nil
}

// Detector is the keyed process function, keyed by card. Each charge
// waits in pending until the watermark passes its time (an event-time
// timer at that time), so that the charges of a card are checked in
// event-time order whatever order they arrived in; recent holds the
// checked charges of the last Span, which both rules look at.
type Detector struct {
	pending *state.List[Charge] // arrived, not yet checked (any order)
	recent  *state.List[Charge] // checked, at most Span before the latest, in event-time order
	burst   *state.Value[bool]  // a velocity alert is out and the card has stayed over the limit since
}

// Open declares the detector's state: once, shared by every task.
func (d *Detector) Open(r *state.Registry) error {
	d.pending = state.NewList(r, "pending", codec.JSON[Charge]())
	d.recent = state.NewList(r, "recent", codec.JSON[Charge]())
	d.burst = state.NewValue(r, "burst", codec.JSON[bool]())
	return nil
}

// ErrLateCharge is returned for a charge the watermark has already
// passed: the charges after it were checked without it, so it cannot be
// checked in order any more. The operator's error policy dead-letters it.
var ErrLateCharge = errors.New("late charge")

// Process holds a charge until the watermark passes it.
func (d *Detector) Process(c operators.Context[string], ch Charge, _ operators.Collector[Alert]) error {
	if wm := c.Watermark(); !ch.At.After(wm) {
		return fmt.Errorf("%w %s at %s: the watermark is at %s (more than %v out of order)",
			ErrLateCharge, ch.ID, ch.At.UTC().Format(time.RFC3339Nano), wm.UTC().Format(time.RFC3339Nano), OutOfOrderness)
	}
	if err := d.pending.Add(c, ch); err != nil {
		return err
	}
	c.Timers().RegisterEventTimeTimer(ch.At)
	return nil
}

// OnTimer runs when the watermark passes at: it checks the pending charges
// up to at, in event-time order, and forgets the charges that have left
// the span.
func (d *Detector) OnTimer(c operators.Context[string], at time.Time, _ engine.TimeDomain, out operators.Collector[Alert]) error {
	pending, err := d.pending.Get(c)
	if err != nil {
		return err
	}
	var due, later []Charge
	for _, ch := range pending {
		if ch.At.After(at) {
			later = append(later, ch)
		} else {
			due = append(due, ch)
		}
	}
	if len(due) > 0 {
		if err := d.pending.Update(c, later); err != nil {
			return err
		}
	}
	// Event-time order; charges of one millisecond by id, so that the
	// order does not depend on how their merchants' partitions interleaved.
	slices.SortFunc(due, func(a, b Charge) int { return cmp.Or(a.At.Compare(b.At), strings.Compare(a.ID, b.ID)) })

	recent, err := d.recent.Get(c)
	if err != nil {
		return err
	}
	burst, _, err := d.burst.Get(c)
	if err != nil {
		return err
	}
	for _, ch := range due {
		recent = append(withinSpan(recent, ch.At), ch)
		for _, a := range check(recent, &burst) {
			if err := operators.CollectAt(out, a, ch.At); err != nil {
				return err
			}
		}
		// The latest charge leaves the span at ch.At+Span: a timer then
		// lets a card that went quiet drop its state.
		c.Timers().RegisterEventTimeTimer(ch.At.Add(Span + time.Millisecond))
	}

	recent = withinSpan(recent, at)
	if len(recent) == 0 {
		d.burst.Clear(c)
		return d.recent.Clear(c)
	}
	if err := d.burst.Set(c, burst); err != nil {
		return err
	}
	return d.recent.Update(c, recent)
}

// withinSpan returns the charges of recent (in event-time order) at most
// Span before t.
func withinSpan(recent []Charge, t time.Time) []Charge {
	i := 0
	for i < len(recent) && t.Sub(recent[i].At) > Span {
		i++
	}
	return recent[i:]
}

// check applies both rules to the charges of the span ending with its
// last one, the charge being checked. burst says whether the card was
// already over the velocity limit: one alert per burst, not one per charge.
func check(span []Charge, burst *bool) []Alert {
	ch := span[len(span)-1]
	var alerts []Alert
	if ch.Cents > BigChargeAbove {
		var evidence []Charge
		for _, prev := range span[:len(span)-1] {
			if prev.Cents < TestChargeBelow && prev.At.Before(ch.At) {
				evidence = append(evidence, prev)
			}
		}
		if len(evidence) > 0 {
			alerts = append(alerts, Alert{
				ID: ch.ID + "/" + RuleTestThenBig, Card: ch.Card, Rule: RuleTestThenBig, At: ch.At,
				Reason: fmt.Sprintf("%s charged after %d charge(s) under %s in the %v before it",
					dollars(ch.Cents), len(evidence), dollars(TestChargeBelow), Span),
				Evidence: append(evidence, ch),
			})
		}
	}
	switch {
	case len(span) > MaxCharges && !*burst:
		*burst = true
		first := span[0]
		alerts = append(alerts, Alert{
			ID: ch.ID + "/" + RuleVelocity, Card: ch.Card, Rule: RuleVelocity, At: ch.At,
			Reason: fmt.Sprintf("%d charges in %v (more than %d within %v)",
				len(span), ch.At.Sub(first.At), MaxCharges, Span),
			Evidence: slices.Clone(span),
		})
	case len(span) <= MaxCharges:
		*burst = false
	}
	return alerts
}

func dollars(cents int64) string { return fmt.Sprintf("$%d.%02d", cents/100, cents%100) }

// Build adds the fraud job to job: charges from input, alerts to output.
func Build(job *engine.Job, input, output string) {
	wm := windowing.BoundedOutOfOrderness(OutOfOrderness, func(c Charge) time.Time { return c.At })
	// A record that is not a charge, or not a valid one, goes to the
	// dead-letter topic (<group>-dlq) with headers saying why; the job
	// goes on.
	charges := engine.OnError(connectors.KafkaSource(job, input, codec.JSON[Charge](), connectors.WithWatermarks(wm)), engine.DeadLetter)
	valid := engine.OnError(operators.Map(charges, validate).Named("validate"), engine.DeadLetter)
	byCard := operators.KeyBy(valid, func(c Charge) string { return c.Card }, operators.KeyByName("by-card"))
	alerts := engine.OnError(operators.Process(byCard, "detector", &Detector{}), engine.DeadLetter)
	connectors.KafkaSink(alerts, output, codec.JSON[Alert]())
}

func main() {
	job := engine.NewJob("fraud")
	input := flag.String("input", "card-charges", "topic the charges are read from (keyed by merchant)")
	output := flag.String("output", "fraud-alerts", "topic the alerts are written to (keyed by card)")
	generate := flag.Int("generate", 0, "write `N` generated charges to --input, creating --input and --output if missing, and exit")
	seed := flag.Uint64("seed", 1, "the generator's seed: one seed, one input")
	partitions := flag.Int("partitions", 4, "partitions of the topics --generate creates")
	job.RegisterFlags(flag.CommandLine)
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "fraud: unexpected argument %q (flags only; see -help)\n", flag.Arg(0))
		os.Exit(2)
	}
	if *generate != 0 {
		if err := writeCharges(job.Config().Brokers, *input, *output, *partitions, *generate, *seed); err != nil {
			fmt.Fprintln(os.Stderr, "fraud:", err)
			os.Exit(1)
		}
		return
	}
	Build(job, *input, *output)
	job.Main()
}
