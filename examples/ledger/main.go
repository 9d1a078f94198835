// Command ledger is a Weir job that keeps each order's ledger entry as its
// events arrive, and enforces the order's state machine:
//
//	(new) --created--> created --paid--> paid --shipped--> shipped
//
// Order events arrive keyed by order id, so each order's events are in
// one partition, in the order they were written. A keyed process function
// keeps, per order, its ledger entry in value state. Each event that
// follows the state machine updates the entry and writes it to the output
// topic; one that breaks it (shipped before paid, created twice, anything
// after shipped, an unknown event type) is an error, and the operator's
// error policy, dead-letter, sends it to the dead-letter topic
// (<group>-dlq) with headers saying where it was read and why it was
// refused. The job goes on.
//
// Run it (WEIR_BROKERS, WEIR_GROUP and every other WEIR_* variable or
// flag configure it as any Weir job):
//
//	ledger --generate 1000      # writes the events of 1000 orders to order-events and exits
//	ledger --until end          # the job: entries to order-ledger; stops at the end of the input
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
	"github.com/weirstream/weir/state"
)

// Event types, in the order an order goes through them.
const (
	Created = "created"
	Paid    = "paid"
	Shipped = "shipped"
)

// lifecycle is the state machine: an order's status is the last event
// type it took, and it takes the next one only.
var lifecycle = []string{Created, Paid, Shipped}

// OrderEvent is what the shop's services write, keyed by order id.
type OrderEvent struct {
	Order    string    `json:"order"`
	Type     string    `json:"type"`
	At       time.Time `json:"at"`
	Customer string    `json:"customer,omitempty"`     // created
	Cents    int64     `json:"amount_cents,omitempty"` // created
	Payment  string    `json:"payment,omitempty"`      // paid: the payment's reference
	Carrier  string    `json:"carrier,omitempty"`      // shipped
}

// Entry is an order's ledger entry: the job's state per order, and its
// output, keyed by order id, after every event the order takes.
type Entry struct {
	Order     string    `json:"order"`
	Status    string    `json:"status"`
	Customer  string    `json:"customer"`
	Cents     int64     `json:"amount_cents"`
	CreatedAt time.Time `json:"created_at"`
	PaidAt    time.Time `json:"paid_at,omitzero"`
	Payment   string    `json:"payment,omitempty"`
	ShippedAt time.Time `json:"shipped_at,omitzero"`
	Carrier   string    `json:"carrier,omitempty"`
}

var (
	// ErrInvalidTransition is an event the order's state machine refuses.
	ErrInvalidTransition = errors.New("invalid transition")
	// ErrInvalidEvent is an event that is not one: unknown type, missing
	// fields, or under another order's key.
	ErrInvalidEvent = errors.New("invalid event")
)

// apply returns the entry after e, or why e does not apply to it. exists
// says whether the order has an entry yet.
func apply(entry Entry, exists bool, e OrderEvent) (Entry, error) {
	step := slices.Index(lifecycle, e.Type)
	if step < 0 {
		return entry, fmt.Errorf("%w for order %s: unknown event type %q (want one of %q)", ErrInvalidEvent, e.Order, e.Type, lifecycle)
	}
	status := -1 // the order does not exist yet
	if exists {
		status = slices.Index(lifecycle, entry.Status)
	}
	switch {
	case status == len(lifecycle)-1:
		return entry, fmt.Errorf("%w: order %s: %s after %s: the order is closed", ErrInvalidTransition, e.Order, e.Type, entry.Status)
	case step > status+1:
		return entry, fmt.Errorf("%w: order %s: %s before %s", ErrInvalidTransition, e.Order, e.Type, lifecycle[status+1])
	case step <= status:
		return entry, fmt.Errorf("%w: order %s: %s again: the order is already %s", ErrInvalidTransition, e.Order, e.Type, entry.Status)
	}
	switch e.Type {
	case Created:
		if e.Customer == "" || e.Cents <= 0 {
			return entry, fmt.Errorf("%w for order %s: created needs a customer and a positive amount, got %q and %d cents",
				ErrInvalidEvent, e.Order, e.Customer, e.Cents)
		}
		entry = Entry{Order: e.Order, Customer: e.Customer, Cents: e.Cents, CreatedAt: e.At}
	case Paid:
		entry.PaidAt, entry.Payment = e.At, e.Payment
	case Shipped:
		entry.ShippedAt, entry.Carrier = e.At, e.Carrier
	}
	entry.Status = e.Type
	return entry, nil
}

// Ledger is the keyed process function, keyed by order id.
type Ledger struct {
	// entries holds each order's entry. A shipped order keeps it, so that
	// a later event for it is refused; a shop would add
	// state.WithTTL(90*24*time.Hour) to forget orders a while after.
	entries *state.Value[Entry]
}

// Open declares the ledger's state: once, shared by every task.
func (l *Ledger) Open(r *state.Registry) error {
	l.entries = state.NewValue(r, "entries", codec.JSON[Entry]())
	return nil
}

// Process applies one event to its order. An error dead-letters the event
// and leaves the order as it was.
func (l *Ledger) Process(c operators.Context[string], e OrderEvent, out operators.Collector[Entry]) error {
	if e.Order != c.Key() {
		return fmt.Errorf("%w: an event of order %q under the record key %q", ErrInvalidEvent, e.Order, c.Key())
	}
	entry, exists, err := l.entries.Get(c)
	if err != nil {
		return err // the state store failed, not the event: the job stops, whatever the policy
	}
	entry, err = apply(entry, exists, e)
	if err != nil {
		return err
	}
	if err := l.entries.Set(c, entry); err != nil {
		return err
	}
	return out.Collect(entry)
}

// OnTimer is never called: the ledger sets no timers.
func (l *Ledger) OnTimer(operators.Context[string], time.Time, engine.TimeDomain, operators.Collector[Entry]) error {
	return nil
}

// Build adds the ledger job to job: order events from input, ledger
// entries to output, refused events to the dead-letter topic. It returns
// the process function, whose state handles a test can read.
func Build(job *engine.Job, input, output string) *Ledger {
	events := engine.OnError(connectors.KafkaSource(job, input, codec.JSON[OrderEvent]()), engine.DeadLetter)
	// Keyed by order id already: keying by the record key moves nothing.
	byOrder := operators.KeyByRecordKey(events, codec.Key[string]())
	ledger := &Ledger{}
	entries := engine.OnError(operators.Process(byOrder, "ledger", ledger), engine.DeadLetter)
	connectors.KafkaSink(entries, output, codec.JSON[Entry]())
	return ledger
}

func main() {
	job := engine.NewJob("ledger")
	input := flag.String("input", "order-events", "topic the order events are read from (keyed by order id)")
	output := flag.String("output", "order-ledger", "topic the ledger entries are written to (keyed by order id)")
	generate := flag.Int("generate", 0, "write the events of `N` generated orders to --input, creating --input and --output if missing, and exit")
	seed := flag.Uint64("seed", 1, "the generator's seed: one seed, one input")
	partitions := flag.Int("partitions", 4, "partitions of the topics --generate creates")
	job.RegisterFlags(flag.CommandLine)
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "ledger: unexpected argument %q (flags only; see -help)\n", flag.Arg(0))
		os.Exit(2)
	}
	if *generate != 0 {
		if err := writeEvents(job.Config().Brokers, *input, *output, *partitions, *generate, *seed); err != nil {
			fmt.Fprintln(os.Stderr, "ledger:", err)
			os.Exit(1)
		}
		return
	}
	Build(job, *input, *output)
	job.Main()
}
