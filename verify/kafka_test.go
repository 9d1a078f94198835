package verify

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/internal/kafkatest"
)

// txnClient returns a transactional producer that writes each record to
// the partition it names.
func txnClient(t *testing.T, brokers []string) *kgo.Client {
	t.Helper()
	return kafkatest.Client(t, brokers,
		kgo.TransactionalID(kafkatest.Name("verify-txn")),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	)
}

// inTxn writes recs in one transaction and commits or aborts it.
func inTxn(t *testing.T, cl *kgo.Client, commit bool, recs ...*kgo.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatalf("begin transaction: %v", err)
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("producing: %v", err)
	}
	if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
		t.Fatalf("ending transaction (commit %v): %v", commit, err)
	}
	waitStable(t, cl, recs...)
}

// waitStable waits until the last stable offset of each record's
// partition is past it: EndTxn can answer (transactions v2) before the
// markers are written, and until then a read_committed reader does not
// see the transaction's outcome.
func waitStable(t *testing.T, cl *kgo.Client, recs ...*kgo.Record) {
	t.Helper()
	adm := kadm.NewClient(cl)
	kafkatest.Eventually(t, 30*time.Second, "the transaction's markers", func() bool {
		for _, r := range recs {
			lso, err := adm.ListCommittedOffsets(context.Background(), r.Topic)
			if err != nil {
				return false
			}
			if o, ok := lso.Lookup(r.Topic, r.Partition); !ok || o.Offset <= r.Offset {
				return false
			}
		}
		return true
	})
}

// TestRealBrokerTransactions checks against a real broker that aborted
// and still-open transactions are invisible, that committed duplicates are
// reported, and that commit markers in the input are not records.
func TestRealBrokerTransactions(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	inTopic := kafkatest.CreateTopic(t, brokers, "verify-in", 1)
	outTopic := kafkatest.CreateTopic(t, brokers, "verify-out", 2)
	cl := txnClient(t, brokers)

	// Input in two transactions: records at 0, 1, 2 and 4, 5; commit
	// markers at 3 and 6.
	inTxn(t, cl, true, in(inTopic, 0, "a"), in(inTopic, 0, "b"), in(inTopic, 0, "c"))
	inTxn(t, cl, true, in(inTopic, 0, "d"), in(inTopic, 0, "e"))
	origins := []string{"/0/0", "/0/1", "/0/2", "/0/4", "/0/5"}
	var clean []*kgo.Record
	for i, o := range origins {
		clean = append(clean, out(outTopic, int32(i%2), string(rune('a'+i)), inTopic+o, "0", "0_0@1"))
	}
	inTxn(t, cl, true, clean...)
	// Records are not reused: producing stamps them (Context, Offset).
	dups := func() []*kgo.Record {
		return []*kgo.Record{
			out(outTopic, 1, "a", inTopic+"/0/0", "0", "0_0@2"),
			out(outTopic, 0, "b", inTopic+"/0/1", "0", "0_0@2"),
		}
	}
	inTxn(t, cl, false, dups()...)

	cfg := Config{Brokers: brokers, Output: []string{outTopic}, Input: []string{inTopic}, MaxExamples: 10}
	rep := run(t, cfg)
	if !rep.OK() || rep.Outputs[0].Records != 5 || rep.Inputs[0].Records != 5 {
		t.Fatalf("aborted duplicates: OK %v, outputs %+v, inputs %+v; want clean, 5 and 5", rep.OK(), rep.Outputs, rep.Inputs)
	}

	// An open transaction's duplicates lie beyond the last stable offset.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, dups()...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if rep := run(t, cfg); !rep.OK() || rep.Outputs[0].Records != 5 {
		t.Fatalf("open transaction: OK %v, outputs %+v; want clean, 5", rep.OK(), rep.Outputs)
	}
	if err := cl.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}

	// Committed, the duplicates count; an origin on a commit marker is a
	// phantom.
	commitMarker := out(outTopic, 0, "m", inTopic+"/0/3", "0", "0_0@3")
	inTxn(t, cl, true, append(dups(), commitMarker)...)
	rep = run(t, cfg)
	if rep.Duplicates != 2 || rep.Phantoms != 1 || rep.Violations() != 3 {
		t.Fatalf("committed: duplicates %d, phantoms %d, violations %d; want 2, 1, 3", rep.Duplicates, rep.Phantoms, rep.Violations())
	}
	if rep.Examples.Phantoms[0].Origin != inTopic+"/0/3" {
		t.Errorf("phantom example = %+v", rep.Examples.Phantoms[0])
	}
}

// TestRealBrokerAbortedTail checks the reader's end detection when the
// records just below the last stable offset belong to an aborted
// transaction whose abort marker lies beyond it: the reader waits for the
// transaction open at the snapshot, and ctx bounds the wait.
func TestRealBrokerAbortedTail(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.CreateTopic(t, brokers, "verify-tail", 1)
	a, b := txnClient(t, brokers), txnClient(t, brokers)

	inTxn(t, a, true, out(topic, 0, "k", "in/0/0", "0", "a@1")) // 0, marker at 1
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := b.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	bRecs := []*kgo.Record{out(topic, 0, "k", "in/0/0", "0", "b@1"), out(topic, 0, "k", "in/0/0", "0", "b@1")}
	if err := b.ProduceSync(ctx, bRecs...).FirstErr(); err != nil {
		t.Fatal(err) // 2, 3
	}
	if err := a.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := a.ProduceSync(ctx, out(topic, 0, "k", "in/0/1", "0", "a@2")).FirstErr(); err != nil {
		t.Fatal(err) // 4: the last stable offset stays here while a is open
	}
	if err := b.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err) // abort marker at 5
	}
	// EndTxn may answer before the marker is written: until it is, b's
	// records are open too, the last stable offset is 2 and the snapshot
	// below would end before them.
	waitStable(t, b, bRecs...)

	cfg := Config{Brokers: brokers, Output: []string{topic}}
	short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
	defer cancelShort()
	if _, err := Run(short, cfg); err == nil || !strings.Contains(err.Error(), "transaction") || !strings.Contains(err.Error(), topic+"/0") {
		t.Fatalf("Run with a short timeout: err = %v, want a timeout naming the partition and the open transaction", err)
	} else {
		t.Logf("Run with a short timeout: %v", err)
	}

	type result struct {
		rep *Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := Run(ctx, cfg)
		done <- result{rep, err}
	}()
	time.Sleep(500 * time.Millisecond)
	if err := a.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if res.err != nil {
		t.Fatalf("Run: %v", res.err)
	}
	if n := res.rep.Outputs[0].Records; !res.rep.OK() || n < 1 || n > 2 {
		t.Fatalf("OK %v, records %d; want clean, 1 (or 2 if the snapshot came after the commit)", res.rep.OK(), n)
	}
}
