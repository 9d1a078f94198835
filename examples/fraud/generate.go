package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/codec"
)

// GeneratorStart is when the generated charges begin (event time): a
// fixed day, so one seed always gives the same input and the same alerts.
var GeneratorStart = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

var merchants = []string{
	"Corner Grocery", "City Fuel", "Bean There Coffee", "MegaMart", "Book Nook", "Metro Transit",
	"Pixel Electronics", "Chez Paul", "QuickPharm", "StreamFlix", "Airline Direct", "Hardware Hub",
}

// Merchants thieves test stolen cards at.
var testMerchants = []string{"WEB*DONATE-A-DOLLAR", "APPSTORE*VERIFY", "PARKING-METER-22"}

// generateCharges returns n input records (keyed by merchant, as the
// processor writes them) in the order a producer sends them: ordinary
// charges of many cards over about n*4 seconds, with these planted among
// them, in turn, one scenario per 40 charges:
//
//   - a charge under $1 and one over $500 up to 60 s after it (an alert; at
//     times exactly 60 s after it, still one);
//   - the same, but the big charge 60.001-120 s later (no alert);
//   - 6-9 charges within 20-60 s (an alert), at times exactly 60 s from
//     first to sixth (still one);
//   - 6 charges spread over 61 s (no alert: never 6 within 60 s);
//
// and, once per 500 charges, a refund (a negative amount: dead-lettered)
// and a record that is not a charge (a decode error: dead-lettered).
// Records are sent up to OutOfOrderness out of event-time order, never
// more, so none is late.
func generateCharges(n int, seed uint64) ([]*kgo.Record, error) {
	rng := rand.New(rand.NewPCG(seed, 0xC4A26E))
	cards := make([]string, max(5, n/12))
	for i := range cards {
		cards[i] = fmt.Sprintf("card-%04d", i+1)
	}
	duration := time.Duration(n) * 4 * time.Second
	randTime := func() time.Time {
		return GeneratorStart.Add(time.Duration(rng.Int64N(int64(duration/time.Millisecond))) * time.Millisecond)
	}
	cents := func(lo, hi int64) int64 { return lo + rng.Int64N(hi-lo+1) }
	ms := func(lo, hi int64) time.Duration { return time.Duration(lo+rng.Int64N(hi-lo+1)) * time.Millisecond }
	ordinary := func(card string, at time.Time) Charge {
		amount := cents(150, 120_00) // mostly everyday purchases...
		switch r := rng.IntN(100); {
		case r < 3:
			amount = cents(500_01, 1800_00) // ...and now and then a big one, alone: no alert
		case r < 15:
			amount = cents(120_00, 450_00)
		}
		return Charge{Card: card, Cents: amount, Merchant: merchants[rng.IntN(len(merchants))], At: at}
	}

	var charges []Charge
	for scenario := 0; scenario < n/40; scenario++ {
		card, t := cards[rng.IntN(len(cards))], randTime()
		test := Charge{Card: card, Cents: cents(1, TestChargeBelow-1), Merchant: testMerchants[rng.IntN(len(testMerchants))], At: t}
		big := func(after time.Duration) Charge {
			return Charge{Card: card, Cents: cents(BigChargeAbove+1, 2500_00), Merchant: "Pixel Electronics", At: t.Add(after)}
		}
		burst := func(count int, span time.Duration) {
			for i := range count {
				at := t.Add(span * time.Duration(i) / time.Duration(count-1)).Truncate(time.Millisecond)
				charges = append(charges, Charge{Card: card, Cents: cents(5_00, 60_00), Merchant: merchants[rng.IntN(len(merchants))], At: at})
			}
		}
		switch scenario % 4 {
		case 0: // test charge, then a big one within the span
			after := ms(1000, Span.Milliseconds())
			if scenario%8 == 4 {
				after = Span
			}
			charges = append(charges, test, big(after))
		case 1: // test charge, big one too late
			charges = append(charges, test, big(ms(Span.Milliseconds()+1, 2*Span.Milliseconds())))
		case 2: // a burst
			span := ms(20_000, Span.Milliseconds())
			if scenario%8 == 6 {
				span = Span // first to last (the sixth) exactly the span apart: still an alert
				burst(MaxCharges+1, span)
				break
			}
			burst(MaxCharges+1+rng.IntN(4), span)
		case 3: // nearly a burst
			burst(MaxCharges+1, Span+time.Second)
		}
	}
	for len(charges) < n {
		charges = append(charges, ordinary(cards[rng.IntN(len(cards))], randTime()))
	}
	charges = charges[:n]
	slices.SortStableFunc(charges, func(a, b Charge) int { return a.At.Compare(b.At) })
	for i := range charges {
		charges[i].ID = fmt.Sprintf("ch-%06d", i+1)
	}

	// Send order: by time plus a random delay under the bound, so that no
	// charge is sent after one more than OutOfOrderness later than it.
	type sending struct {
		rec  *kgo.Record
		when time.Time
	}
	c := codec.JSON[Charge]()
	out := make([]sending, 0, n+2*(n/500+1))
	for _, ch := range charges {
		v, err := c.Encode(ch)
		if err != nil {
			return nil, err
		}
		delay := time.Duration(rng.Int64N(int64(OutOfOrderness)))
		out = append(out, sending{&kgo.Record{Key: []byte(ch.Merchant), Value: v, Timestamp: ch.At}, ch.At.Add(delay)})
	}
	for i := range n / 500 {
		at := charges[(2*i+1)*len(charges)/(2*(n/500)+1)].At
		refund, err := c.Encode(Charge{ID: fmt.Sprintf("rf-%06d", i+1), Card: cards[rng.IntN(len(cards))], Cents: -cents(5_00, 80_00), Merchant: "MegaMart", At: at})
		if err != nil {
			return nil, err
		}
		out = append(out,
			sending{&kgo.Record{Key: []byte("MegaMart"), Value: refund, Timestamp: at}, at},
			sending{&kgo.Record{Key: []byte("Book Nook"), Value: []byte(`{"id":"ch-??","amount_cents":"12.50"`), Timestamp: at}, at})
	}
	slices.SortStableFunc(out, func(a, b sending) int { return a.when.Compare(b.when) })
	recs := make([]*kgo.Record, len(out))
	for i, s := range out {
		recs[i] = s.rec
	}
	return recs, nil
}

// writeCharges creates the topics if they are missing and writes n
// generated charges to input.
func writeCharges(brokers []string, input, output string, partitions, n int, seed uint64) error {
	if n <= 0 {
		return fmt.Errorf("--generate %d: want a positive number of charges", n)
	}
	recs, err := generateCharges(n, seed)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := createTopics(ctx, cl, partitions, input, output); err != nil {
		return err
	}
	for _, r := range recs {
		r.Topic = input
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("writing to %s: %w", input, err)
	}
	fmt.Printf("wrote %d records (%d charges, seed %d) to %s\n", len(recs), n, seed, input)
	return nil
}

// createTopics creates the topics that do not exist yet. They keep their
// records forever (retention.ms=-1): the generated charges are stamped
// with a fixed day, which time-based retention would soon delete.
func createTopics(ctx context.Context, cl *kgo.Client, partitions int, topics ...string) error {
	if partitions <= 0 {
		return fmt.Errorf("--partitions %d: want a positive number", partitions)
	}
	resp, err := kadm.NewClient(cl).CreateTopics(ctx, int32(partitions), -1, map[string]*string{"retention.ms": kadm.StringPtr("-1")}, topics...)
	if err != nil {
		return fmt.Errorf("creating topics %v: %w", topics, err)
	}
	for _, r := range resp.Sorted() {
		switch {
		case r.Err == nil:
			fmt.Printf("created topic %s (%d partitions)\n", r.Topic, partitions)
		case errors.Is(r.Err, kerr.TopicAlreadyExists):
		default:
			return fmt.Errorf("creating topic %s: %w (%s)", r.Topic, r.Err, r.ErrMessage)
		}
	}
	return nil
}
