package engine

// This file owns a guard on the transaction protocol of KIP-890 (Kafka's
// transaction.version 2, the default of Kafka 4): there a partition joins
// the broker's transaction with the first record produced to it, and every
// EndTxn, commit or abort, bumps the producer epoch. The torture test found
// franz-go ending an abort without sending EndTxn while records of the
// transaction were on the broker (its bookkeeping had them as not
// produced): the broker's transaction stayed open, the next transaction's
// records joined it at the same epoch, and its commit committed the
// records the abort was to drop, twice over with their replay. An abort
// that left the epoch where it was, after records were produced, is that
// case: the replica stops, and its restart, whose InitProducerId bumps the
// epoch, aborts the open transaction (Kubernetes restarts it; a torture
// test counts it as a restart).

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ErrAbortNotSent is the fatal error of an abort that did not reach the
// broker's transaction (see txncheck.go): the replica restarts to fence it.
var ErrAbortNotSent = errors.New("the transaction's abort was not sent to the broker while its records were (franz-go ended it without EndTxn); the replica stops so that its restart fences the open transaction (InitProducerId bumps the epoch and aborts it)")

// notingOutputs notes that tasks produced in the current transaction: a
// load per record, a store only for the first (no shared counter for the
// cores to pass around).
type notingOutputs struct {
	cl       *kgo.Client
	produced *atomic.Bool
}

func (c notingOutputs) Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	if !c.produced.Load() {
		c.produced.Store(true)
	}
	c.cl.Produce(ctx, r, promise)
}

// txnGuard is the runtime's view of its transactions, for the check
// above. Its fields are used under cpMu (begin and abort), produced from
// any task goroutine.
type txnGuard struct {
	// kip890 is whether the cluster runs transaction.version 2 or later.
	kip890 bool
	// epoch is the producer epoch when the transaction began; known says
	// it could be read.
	epoch int16
	known bool
	// produced says records were produced since the transaction began.
	produced atomic.Bool
}

// clusterUsesKIP890 reports whether the cluster's finalized
// transaction.version is 2 or more (KIP-890 part 2).
func clusterUsesKIP890(ctx context.Context, cl *kgo.Client) bool {
	req := kmsg.NewPtrApiVersionsRequest()
	req.ClientSoftwareName, req.ClientSoftwareVersion = "weir", "1"
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return false
	}
	for _, f := range resp.FinalizedFeatures {
		if f.Name == "transaction.version" && f.MaxVersionLevel >= 2 {
			return true
		}
	}
	return false
}

// beganTxn records where a transaction began.
func (rt *runtime) beganTxn() {
	ctx, cancel := context.WithTimeout(rt.runCtx, 5*time.Second)
	defer cancel()
	_, ep, err := rt.cl.ProducerID(ctx)
	rt.txn.epoch, rt.txn.known = ep, err == nil
	rt.txn.produced.Store(false)
}

// checkAbortSent returns ErrAbortNotSent if the abort that just returned
// left the epoch where the transaction began while records were produced
// in it.
func (rt *runtime) checkAbortSent(ctx context.Context) error {
	if !rt.txn.kip890 || !rt.txn.known || !rt.txn.produced.Load() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, ep, err := rt.cl.ProducerID(ctx)
	if err != nil || ep != rt.txn.epoch {
		return nil // a new epoch: the abort (or a recovery) ended it
	}
	return ErrAbortNotSent
}

// taskOutputs is what tasks produce through: exactly once, noted. It asks
// the configuration, not rt.sess: a task may start (its group joined)
// before the session's constructor has returned.
func (rt *runtime) taskOutputs(cl *kgo.Client) outputs {
	if !rt.exactlyOnce() {
		return cl
	}
	return notingOutputs{cl: cl, produced: &rt.txn.produced}
}
