package connectors_test

import (
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/weirtest"
	"github.com/weirstream/weir/windowing"
)

type payment struct {
	Account string    `json:"account"`
	Cents   int64     `json:"cents"`
	At      time.Time `json:"at"`
}

// A source decodes each record with its codec and, with WithWatermarks,
// gives the stream event time; a sink encodes, and by default writes each
// output under its input's key and at its event time. WithKey and
// WithHeaders choose them from the value.
func ExampleKafkaSink() {
	job := engine.NewJob("payments")
	payments := connectors.KafkaSource(job, "payments", codec.JSON[payment](),
		connectors.WithWatermarks(windowing.BoundedOutOfOrderness(5*time.Second, func(p payment) time.Time { return p.At })))
	connectors.KafkaSink(payments, "payments-by-account", codec.JSON[payment](),
		connectors.WithKey(func(p payment) []byte { return []byte(p.Account) }),
		connectors.WithHeaders(func(p payment) []kgo.RecordHeader {
			return []kgo.RecordHeader{{Key: "currency", Value: []byte("EUR")}}
		}))

	h, _ := weirtest.Start(job)
	defer h.Close()
	at := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	_ = weirtest.SendValue(h, "payments", codec.JSON[payment](), "p-1", payment{Account: "acc-7", Cents: 1250, At: at}, at.Add(time.Hour))
	for _, r := range h.ReadOutput("payments-by-account") {
		fmt.Println(string(r.Key), string(r.Value), r.Timestamp.UTC().Format(time.Kitchen), r.Headers[0].Key)
	}
	// Output:
	// acc-7 {"account":"acc-7","cents":1250,"at":"2024-01-01T12:00:00Z"} 12:00PM currency
}
