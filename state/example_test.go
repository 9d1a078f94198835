package state_test

import (
	"fmt"
	"time"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/state"
	"github.com/weirstream/weir/weirtest"
)

// last keeps each key's latest value, for a day.
type last struct{ v *state.Value[string] }

func (l *last) Open(r *state.Registry) error {
	// Declared once, shared by every task; an operation takes the
	// context, so state is always the current key's.
	l.v = state.NewValue(r, "last", codec.String(), state.WithTTL(24*time.Hour))
	return r.Err()
}

func (l *last) Process(c operators.Context[string], v string, out operators.Collector[string]) error {
	prev, ok, err := l.v.Get(c)
	if err != nil {
		return err
	}
	if ok {
		if err := out.Collect(prev + " -> " + v); err != nil {
			return err
		}
	}
	return l.v.Set(c, v)
}

func (l *last) OnTimer(operators.Context[string], time.Time, engine.TimeDomain, operators.Collector[string]) error {
	return nil
}

// Keyed state handles are declared in a Registry and used with a Scope:
// a process function's Context, or a harness's Scope to read a key's state
// from outside.
func ExampleNewValue() {
	job := engine.NewJob("changes")
	updates := operators.KeyByRecordKey(connectors.KafkaSource(job, "status", codec.String()), codec.String())
	connectors.KafkaSink(operators.Process(updates, "last-status", &last{}), "changes", codec.String())

	h, _ := weirtest.Start(job)
	defer h.Close()
	at := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, s := range []string{"placed", "paid", "shipped"} {
		_ = weirtest.SendValue(h, "status", codec.String(), "order-1", s, at)
	}
	for _, r := range weirtest.ReadOutputs(h, "changes", codec.String()) {
		fmt.Println(r.Key, r.Value)
	}
	reg := state.NewRegistry("last-status")
	v := state.NewValue(reg, "last", codec.String(), state.WithTTL(24*time.Hour))
	now, _, _ := v.Get(h.Scope(0, []byte("order-1")))
	fmt.Println("state:", now)
	// Output:
	// order-1 placed -> paid
	// order-1 paid -> shipped
	// state: shipped
}
