package shared

import (
	"time"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/state"
	"github.com/weirstream/weir/windowing"
)

// Order is an input of the torture job, on OrdersTopic: a customer's
// order, every order of a customer in one partition.
type Order struct {
	ID       int64     `json:"id"`
	Customer string    `json:"customer"`
	Amount   int64     `json:"amount"`
	At       time.Time `json:"at"`
}

// Shipment is the torture job's other input, on ShipmentsTopic, whose last
// partition gets no records: only its idleness lets the watermark advance.
type Shipment struct {
	ID       int64     `json:"id"`
	Customer string    `json:"customer"`
	At       time.Time `json:"at"`
}

// Match is an output of the torture job's interval join: an order and a
// shipment of one customer at most TortureJoinBound apart.
type Match struct {
	Customer string `json:"customer"`
	Order    int64  `json:"order"`
	Shipment int64  `json:"shipment"`
}

// OrderWindow is a customer's order count in one tumbling event-time window.
type OrderWindow struct {
	Customer string    `json:"customer"`
	Start    time.Time `json:"start"`
	Count    int64     `json:"count"`
}

// OrderTotal is the torture job's running total: after a customer's N-th
// order, the sum of the first N amounts; Streak counts the customer's
// orders since the TTL state last expired (1 when it had).
type OrderTotal struct {
	Customer string `json:"customer"`
	N        int64  `json:"n"`
	Total    int64  `json:"total"`
	Streak   int64  `json:"streak"`
}

const (
	// TortureWindow is the length of the torture job's tumbling windows.
	TortureWindow = 10 * time.Second
	// TortureOutOfOrderness is the bound of both inputs' watermarks.
	TortureOutOfOrderness = 20 * time.Second
	// TortureIdleness is how long a shipments partition without records
	// waits before it stops holding the watermark back.
	TortureIdleness = 2 * time.Second
	// TortureJoinBound is the interval join's bound on either side.
	TortureJoinBound = time.Second
	// TortureEarly is the period of the shipment windows' processing-time
	// trigger.
	TortureEarly = 300 * time.Millisecond
	// TortureStreakTTL is how long a customer's streak lives unwritten.
	TortureStreakTTL = 1500 * time.Millisecond
)

// OrdersTopic is the torture job's orders input, named after JOB_INPUT.
func OrdersTopic(in string) string { return in + "-orders" }

// ShipmentsTopic is the torture job's shipments input.
func ShipmentsTopic(in string) string { return in + "-shipments" }

// MatchesTopic is where the torture job writes its join's Matches, named
// after JOB_OUTPUT.
func MatchesTopic(out string) string { return out + "-matches" }

// OrderWindowsTopic is where the torture job writes its OrderWindows.
func OrderWindowsTopic(out string) string { return out + "-windows" }

// PartialsTopic is where the torture job writes the partial shipment
// counts of its processing-time trigger.
func PartialsTopic(out string) string { return out + "-partials" }

// TotalsTopic is where the torture job writes its OrderTotals.
func TotalsTopic(out string) string { return out + "-totals" }

// BuildTorture adds the torture job to job, the one the randomized fault
// test runs: orders and shipments, both keyed by customer into one stage
// (KeyByBoth: two repartition topics), where
//   - an interval join pairs each order with the customer's shipments at
//     most TortureJoinBound away (MatchesTopic);
//   - orders are counted per customer in tumbling event-time windows
//     (OrderWindowsTopic);
//   - shipments are counted per customer in the same windows with a
//     purging processing-time trigger firing every TortureEarly, so each
//     window comes out in partial counts that add up to its count
//     (PartialsTopic, Windowed[string, int64]);
//   - a keyed process function keeps each customer's running total (value
//     state) and a streak in TTL state (TotalsTopic).
func BuildTorture(job *engine.Job, in, out string) {
	owm := windowing.BoundedOutOfOrderness(TortureOutOfOrderness, func(o Order) time.Time { return o.At })
	swm := windowing.BoundedOutOfOrderness(TortureOutOfOrderness, func(s Shipment) time.Time { return s.At }).WithIdleness(TortureIdleness)
	orders := connectors.KafkaSource(job, OrdersTopic(in), codec.JSON[Order](), connectors.WithWatermarks(owm))
	shipments := connectors.KafkaSource(job, ShipmentsTopic(in), codec.JSON[Shipment](), connectors.WithWatermarks(swm))
	byCustomer, shipmentsByCustomer := operators.KeyByBoth(orders, func(o Order) string { return o.Customer },
		shipments, func(s Shipment) string { return s.Customer }, "by-customer")

	matches := operators.IntervalJoin(byCustomer, shipmentsByCustomer, "match", -TortureJoinBound, TortureJoinBound,
		func(c string, o Order, s Shipment) (Match, error) {
			return Match{Customer: c, Order: o.ID, Shipment: s.ID}, nil
		})
	connectors.KafkaSink(matches, MatchesTopic(out), codec.JSON[Match]())

	counts := operators.WindowAggregate(byCustomer, "order-counts", windowing.Tumbling(TortureWindow), operators.Count[Order]{}, codec.JSON[int64]())
	windows := operators.Map(counts, func(w operators.Windowed[string, int64]) (OrderWindow, error) {
		return OrderWindow{Customer: w.Key, Start: w.Start, Count: w.Value}, nil
	})
	connectors.KafkaSink(windows, OrderWindowsTopic(out), codec.JSON[OrderWindow]())

	partials := operators.WindowAggregate(shipmentsByCustomer, "shipment-partials", windowing.Tumbling(TortureWindow),
		operators.Count[Shipment]{}, codec.JSON[int64](),
		operators.WithTrigger(windowing.EveryProcessingTime(TortureEarly).Purging()))
	connectors.KafkaSink(partials, PartialsTopic(out), codec.JSON[operators.Windowed[string, int64]]())

	totals := operators.Process(byCustomer, "totals", &tortureTotals{})
	connectors.KafkaSink(totals, TotalsTopic(out), codec.JSON[OrderTotal]())
}

type tortureTotals struct {
	total  *state.Value[OrderTotal]
	streak *state.Value[int64]
}

func (r *tortureTotals) Open(reg *state.Registry) error {
	r.total = state.NewValue(reg, "total", codec.JSON[OrderTotal]())
	r.streak = state.NewValue(reg, "streak", codec.JSON[int64](), state.WithTTL(TortureStreakTTL))
	return nil
}

func (r *tortureTotals) Process(c operators.Context[string], o Order, out operators.Collector[OrderTotal]) error {
	t, _, err := r.total.Get(c)
	if err != nil {
		return err
	}
	streak, _, err := r.streak.Get(c) // 0 when expired or never set
	if err != nil {
		return err
	}
	t.Customer, t.N, t.Total, t.Streak = o.Customer, t.N+1, t.Total+o.Amount, streak+1
	if err := r.total.Set(c, t); err != nil {
		return err
	}
	if err := r.streak.Set(c, t.Streak); err != nil {
		return err
	}
	return out.Collect(t)
}

func (r *tortureTotals) OnTimer(operators.Context[string], time.Time, engine.TimeDomain, operators.Collector[OrderTotal]) error {
	return nil
}
