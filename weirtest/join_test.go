package weirtest_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/weirtest"
)

type order struct {
	User   string `json:"user"`
	Amount int    `json:"amount"`
}

type profile struct {
	Tier string `json:"tier"`
}

// TestTableJoin joins orders, re-keyed by user through a repartition
// topic, with a table of user profiles read in the same stage: each order
// sees the profile's latest value, a tombstone deletes it.
func TestTableJoin(t *testing.T) {
	job := engine.NewJob("enrich")
	orders := connectors.KafkaSource(job, "orders", codec.JSON[order]())
	byUser := operators.KeyBy(orders, func(o order) string { return o.User })
	enriched := operators.JoinTable(byUser, "profiles", codec.JSON[profile](),
		func(user string, o order, p profile, found bool) (string, error) {
			if !found {
				p.Tier = "(none)"
			}
			if o.Amount < 0 {
				return "", errors.New("negative amount")
			}
			return fmt.Sprintf("%s %d %s", user, o.Amount, p.Tier), nil
		})
	out := weirtest.Capture(enriched)
	h := weirtest.New(t, job, weirtest.Partitions(3))
	at := time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC)
	send := func(topic, key string, v any) {
		t.Helper()
		var err error
		switch v := v.(type) {
		case order:
			err = weirtest.SendValue(h, topic, codec.JSON[order](), key, v, at)
		case profile:
			err = weirtest.SendValue(h, topic, codec.JSON[profile](), key, v, at)
		case nil:
			err = h.SendBytes(topic, []byte(key), nil, at)
		}
		if err != nil {
			t.Fatalf("send %s %s: %v", topic, key, err)
		}
	}
	expect := func(want ...string) {
		t.Helper()
		got := out.Take()
		if len(got) != len(want) {
			t.Fatalf("got %d outputs %v, want %v", len(got), got, want)
		}
		for i, r := range got {
			if r.Value != want[i] {
				t.Errorf("output %d = %q, want %q", i, r.Value, want[i])
			}
		}
	}
	// Orders are keyed by order id in their topic; the join is by user.
	send("orders", "o1", order{User: "ann", Amount: 10})
	expect("ann 10 (none)")
	send("profiles", "ann", profile{Tier: "gold"})
	send("profiles", "bob", profile{Tier: "silver"})
	send("orders", "o2", order{User: "ann", Amount: 20})
	send("orders", "o3", order{User: "bob", Amount: 5})
	expect("ann 20 gold", "bob 5 silver")
	send("profiles", "ann", profile{Tier: "platinum"})
	send("orders", "o4", order{User: "ann", Amount: 30})
	expect("ann 30 platinum")
	send("profiles", "ann", nil) // tombstone
	send("orders", "o5", order{User: "ann", Amount: 40})
	expect("ann 40 (none)")

	// The join function's error names the operator and the record.
	err := weirtest.SendValue(h, "orders", codec.JSON[order](), "o6", order{User: "bob", Amount: -1}, at)
	var re *engine.RecordError
	if !errors.As(err, &re) || re.Operator != "join:profiles" {
		t.Fatalf("join error = %v, want a RecordError in join:profiles", err)
	}
}
