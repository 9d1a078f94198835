package engine

import (
	"context"
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/internal/kafkatest"
)

// TestAbortNotSentIsCaught: under KIP-890 every EndTxn bumps the producer
// epoch, so an abort that leaves the epoch where the transaction began,
// after records were produced in it, did not reach the broker (the
// torture test's seed 537252415): the replica must stop. An abort that
// bumped the epoch, a transaction that produced nothing, and a cluster on
// the first protocol (no bump to expect) are not that case.
func TestAbortNotSentIsCaught(t *testing.T) {
	brokers := kafkatest.Fake(t, 1, "out")
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID("guard"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	_, epoch, err := cl.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rt := &runtime{cl: cl, runCtx: ctx}
	for _, tc := range []struct {
		name     string
		kip890   bool
		epoch    int16
		produced bool
		want     error
	}{
		{"epoch unchanged after records", true, epoch, true, ErrAbortNotSent},
		{"epoch bumped", true, epoch - 1, true, nil},
		{"nothing produced", true, epoch, false, nil},
		{"first protocol", false, epoch, true, nil},
	} {
		rt.txn.kip890, rt.txn.epoch, rt.txn.known = tc.kip890, tc.epoch, true
		rt.txn.produced.Store(tc.produced)
		if err := rt.checkAbortSent(ctx); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// beganTxn reads the epoch and starts afresh; what tasks produce
	// through taskOutputs is noted.
	rt.cfg.Guarantee = ExactlyOnce
	rt.beganTxn()
	if !rt.txn.known || rt.txn.epoch != epoch || rt.txn.produced.Load() {
		t.Fatalf("after beganTxn: %+v", &rt.txn)
	}
	out := rt.taskOutputs(cl)
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	out.Produce(ctx, &kgo.Record{Topic: "out", Value: []byte("x")}, func(_ *kgo.Record, err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !rt.txn.produced.Load() {
		t.Fatal("the record produced through taskOutputs was not noted")
	}
}

// TestKafka4UsesKIP890: the test broker (Kafka 4.4, formatted with its
// defaults) runs transaction.version 2, so the guard above is armed there.
func TestKafka4UsesKIP890(t *testing.T) {
	cl := kafkatest.Client(t, kafkatest.Brokers(t))
	if !clusterUsesKIP890(context.Background(), cl) {
		t.Fatal("the broker's finalized features do not name transaction.version 2")
	}
}
