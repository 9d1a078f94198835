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
	"github.com/weirstream/weir/windowing"
)

// Late records of an interval join are not dropped silently: the left
// side's go to its LeftLateOutput (Flink's sideOutputLeftLateData), the
// right side's, without a tag, to <group>-<operator>-late with a header
// naming the side.
func TestIntervalJoinLateRecords(t *testing.T) {
	job := engine.NewJob("joins")
	wm := windowing.RecordTimestamps[string](0)
	orders := operators.KeyByRecordKey(connectors.KafkaSource(job, "orders", codec.String(), connectors.WithWatermarks(wm)), codec.String())
	payments := operators.KeyByRecordKey(connectors.KafkaSource(job, "payments", codec.String(), connectors.WithWatermarks(wm)), codec.String())
	lateOrders := engine.NewOutputTag[string]("late-orders")
	paid := operators.IntervalJoin(orders, payments, "paid", 0, time.Minute,
		func(k, o, p string) (string, error) { return o + "+" + p, nil }, operators.LeftLateOutput(lateOrders))
	connectors.KafkaSink(paid, "paid", codec.String())
	connectors.KafkaSink(engine.SideOutput(paid, lateOrders), "late-orders", codec.String())
	h := weirtest.New(t, job)
	at := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	send := func(topic, key, v string, d time.Duration) {
		t.Helper()
		if err := weirtest.SendValue(h, topic, codec.String(), key, v, at.Add(d)); err != nil {
			t.Fatal(err)
		}
	}
	send("orders", "k", "o1", 0)
	send("payments", "k", "p1", 30*time.Second)
	send("orders", "k", "o2", 10*time.Minute)
	send("payments", "k", "p2", 10*time.Minute) // both inputs' watermarks are now past 12:00:30
	send("orders", "k", "o-late", time.Second)
	send("payments", "k", "p-late", 2*time.Second)
	values := func(topic string) string {
		var vs []string
		for _, r := range weirtest.ReadOutputs(h, topic, codec.String()) {
			vs = append(vs, r.Value)
		}
		return fmt.Sprint(vs)
	}
	if got := values("paid"); got != "[o1+p1 o2+p2]" {
		t.Errorf("joined %s, want [o1+p1 o2+p2]", got)
	}
	if got := values("late-orders"); got != "[o-late]" {
		t.Errorf("late orders %s, want [o-late]", got)
	}
	recs := h.ReadOutput("joins-paid-late")
	if len(recs) != 1 || string(recs[0].Value) != `"p-late"` {
		t.Fatalf("late-data topic holds %v, want the late payment", recs)
	}
	side := ""
	for _, hd := range recs[0].Headers {
		if hd.Key == operators.HeaderLateSide {
			side = string(hd.Value)
		}
	}
	if side != "right" {
		t.Errorf("late side header %q, want right", side)
	}
}
