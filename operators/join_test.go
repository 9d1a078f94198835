package operators_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/weirtest"
)

// A regular join pairs each record with every record of its key the other
// side kept, whichever came first, until the TTL drops them; state and
// its timers survive a crash.
func TestRegularJoin(t *testing.T) {
	job := engine.NewJob("regular")
	clicks := operators.KeyByRecordKey(connectors.KafkaSource(job, "clicks", codec.String()), codec.String())
	buys := operators.KeyByRecordKey(connectors.KafkaSource(job, "buys", codec.String()), codec.String())
	pairs := operators.Join(clicks, buys, "pairs", func(k, c, b string) (string, error) { return k + ":" + c + "+" + b, nil },
		operators.JoinTTL(time.Minute))
	connectors.KafkaSink(pairs, "pairs", codec.String())
	h := weirtest.New(t, job, weirtest.Partitions(2))
	noon := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	send := func(topic, key, v string, at time.Duration) {
		t.Helper()
		if err := weirtest.SendValue(h, topic, codec.String(), key, v, noon.Add(at)); err != nil {
			t.Fatal(err)
		}
	}
	read := func() string {
		var vs []string
		for _, r := range weirtest.ReadOutputs(h, "pairs", codec.String()) {
			vs = append(vs, fmt.Sprintf("%s@%s", r.Value, r.Timestamp.UTC().Format("04:05")))
		}
		return fmt.Sprint(vs)
	}
	send("clicks", "a", "c1", 0)
	send("buys", "b", "x", time.Second) // another key: nothing
	send("buys", "a", "b1", 10*time.Second)
	if got := read(); got != "[a:c1+b1@00:10]" {
		t.Fatalf("pairs %s, want a:c1+b1 at the later time", got)
	}
	if err := h.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	send("clicks", "a", "c2", 5*time.Second)
	if got := read(); got != "[a:c2+b1@00:10]" {
		t.Fatalf("pairs %s, want a:c2+b1", got)
	}
	if err := h.Crash(); err != nil { // c2 is replayed, from the restored state
		t.Fatal(err)
	}
	if got := read(); got != "[a:c2+b1@00:10]" {
		t.Fatalf("the replay paired %s, want a:c2+b1 again", got)
	}
	if err := h.AdvanceTime(2 * time.Minute); err != nil { // the TTL drops everything
		t.Fatal(err)
	}
	send("buys", "a", "b2", 20*time.Second)
	if got := read(); got != "[]" {
		t.Fatalf("pairs %s after the TTL, want none", got)
	}
	send("clicks", "a", "c3", 30*time.Second)
	if got := read(); got != "[a:c3+b2@00:30]" {
		t.Fatalf("pairs %s, want a:c3+b2", got)
	}
}
