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

// GeneratorStart is when the generated orders begin: a fixed day, so one
// seed always gives the same input and the same ledger.
var GeneratorStart = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

var carriers = []string{"DHL", "UPS", "FedEx", "La Poste"}

// generateEvents returns the events of n orders (keyed by order id) in the
// order the shop's services write them, by time: most orders are created,
// then paid (9 in 10) 30s-2h later, then shipped (3 in 4 of those) 1-30h
// later. One order in 20 breaks the state machine, in turn:
//
//   - shipped before paid (refused), then paid and shipped;
//   - created twice (the second refused), then paid and shipped;
//   - paid and shipped, never created (both refused);
//   - created, paid, shipped, then paid again (refused: closed);
//   - created, then "refunded" (refused: unknown type), then paid;
//   - created without a customer or amount (refused), then paid (refused:
//     the order does not exist);
//   - created, then a record that is not JSON (refused), then paid.
func generateEvents(n int, seed uint64) ([]*kgo.Record, error) {
	rng := rand.New(rand.NewPCG(seed, 0x1ED6E7))
	between := func(lo, hi time.Duration) time.Duration {
		return lo + time.Duration(rng.Int64N(int64((hi-lo)/time.Millisecond)+1))*time.Millisecond
	}
	type event struct {
		e   OrderEvent
		raw []byte // a record that is not an event, instead of e
	}
	var events []event
	for i := range n {
		id := fmt.Sprintf("o-%06d", i+1)
		created := GeneratorStart.Add(time.Duration(i) * 24 * time.Hour / time.Duration(n)).Add(between(0, time.Minute))
		add := func(typ string, at time.Time) OrderEvent {
			e := OrderEvent{Order: id, Type: typ, At: at.Truncate(time.Millisecond)}
			switch typ {
			case Created:
				e.Customer, e.Cents = fmt.Sprintf("cust-%04d", 1+rng.IntN(max(10, n/3))), 5_00+rng.Int64N(500_00)
			case Paid:
				e.Payment = fmt.Sprintf("pay-%08x", rng.Uint32())
			case Shipped:
				e.Carrier = carriers[rng.IntN(len(carriers))]
			}
			events = append(events, event{e: e})
			return e
		}
		paid := created.Add(between(30*time.Second, 2*time.Hour))
		shipped := paid.Add(between(time.Hour, 30*time.Hour))
		if i%20 != 10 {
			add(Created, created)
			if rng.IntN(10) < 9 {
				add(Paid, paid)
				if rng.IntN(4) < 3 {
					add(Shipped, shipped)
				}
			}
			continue
		}
		switch (i / 20) % 7 {
		case 0:
			add(Created, created)
			add(Shipped, created.Add(20*time.Minute))
			add(Paid, paid.Add(20*time.Minute))
			add(Shipped, shipped.Add(20*time.Minute))
		case 1:
			add(Created, created)
			add(Created, created.Add(5*time.Second))
			add(Paid, paid)
			add(Shipped, shipped)
		case 2:
			add(Paid, paid)
			add(Shipped, shipped)
		case 3:
			add(Created, created)
			add(Paid, paid)
			add(Shipped, shipped)
			add(Paid, shipped.Add(time.Hour))
		case 4:
			add(Created, created)
			add("refunded", created.Add(time.Minute))
			add(Paid, paid.Add(time.Minute))
		case 5:
			add(Created, created)
			events[len(events)-1].e.Customer, events[len(events)-1].e.Cents = "", 0
			add(Paid, paid)
		case 6:
			add(Created, created)
			at := created.Add(10 * time.Second).Truncate(time.Millisecond)
			events = append(events, event{e: OrderEvent{Order: id, At: at}, raw: fmt.Appendf(nil, `{"order":%q,"type":"paid","at":`, id)})
			add(Paid, paid)
		}
	}
	slices.SortStableFunc(events, func(a, b event) int { return a.e.At.Compare(b.e.At) })

	c := codec.JSON[OrderEvent]()
	recs := make([]*kgo.Record, len(events))
	for i, ev := range events {
		v := ev.raw
		if v == nil {
			var err error
			if v, err = c.Encode(ev.e); err != nil {
				return nil, err
			}
		}
		recs[i] = &kgo.Record{Key: []byte(ev.e.Order), Value: v, Timestamp: ev.e.At}
	}
	return recs, nil
}

// writeEvents creates the topics if they are missing and writes the
// events of n generated orders to input.
func writeEvents(brokers []string, input, output string, partitions, n int, seed uint64) error {
	if n <= 0 {
		return fmt.Errorf("--generate %d: want a positive number of orders", n)
	}
	recs, err := generateEvents(n, seed)
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
	fmt.Printf("wrote %d events of %d orders (seed %d) to %s\n", len(recs), n, seed, input)
	return nil
}

// createTopics creates the topics that do not exist yet. They keep their
// records forever (retention.ms=-1): the generated events are stamped with
// a fixed day, which time-based retention would soon delete.
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
