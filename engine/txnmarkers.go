package engine

// This file owns a check of the transaction protocol's other end: that an
// abort's markers landed on every partition the aborted transaction wrote.
//
// The broker writes a transaction's markers to the partitions its
// coordinator knows the transaction wrote. A partition it does not know
// of gets none: the records stay open (a "hanging transaction", KIP-664),
// and since a marker ends whatever the producer id has open on the
// partition, the commit of the producer's next transaction there makes
// them visible. The torture test saw exactly that once, after the broker
// was SIGKILLed while a transaction was open (issue 10): records of an
// aborted transaction committed with a later one, their replay beside
// them. Whatever lost the partition's registration, the records can be
// found before the producer writes again: once the coordinator has
// finished the abort, no partition may show this producer id with an open
// transaction. If one does, the replica writes the abort marker itself, as
// kafka-transactions.sh abort does (WriteTxnMarkers; it needs the
// ClusterAction permission), and says so at error level. Where it cannot,
// it stops, naming the partition: committing on would make the records
// visible.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"go.uber.org/zap"
)

// ErrHangingTransaction is the fatal error of records this replica's
// producer left open that it could not abort.
var ErrHangingTransaction = errors.New("records of an ended transaction of this replica are still open on a partition (no marker reached them)")

// writtenTopics are the topics the job's transactions write: sinks, the
// dead-letter topic, repartition and changelog topics.
func (rt *runtime) writtenTopics() []string {
	ts := map[string]bool{}
	for t := range rt.job.sinks {
		ts[t] = true
	}
	for _, it := range rt.job.internal {
		ts[it.name] = true
	}
	for _, it := range rt.job.changelogs {
		ts[it.name] = true
	}
	return slices.Sorted(maps.Keys(ts))
}

// closeHangingRecords waits until the coordinator has finished the
// transaction that ended last (its markers written), then aborts what
// producer id pid still has open on the topics the job writes. It returns
// the partitions it closed. Call it only while nothing produces: between
// an abort (or the producer's initialization) and the next transaction.
func closeHangingRecords(ctx context.Context, adm *kadm.Client, txnID string, pid int64, topics []string, settle time.Duration) ([]string, error) {
	if len(topics) == 0 {
		return nil, nil
	}
	// The markers of the abort go out after EndTxn answers: until the
	// coordinator says Complete, an open transaction may be one whose
	// marker is on its way.
	deadline := time.Now().Add(settle)
	for {
		ds, err := adm.DescribeTransactions(ctx, txnID)
		if err != nil {
			return nil, fmt.Errorf("describing transaction %s: %w", txnID, err)
		}
		d, ok := ds[txnID]
		if !ok {
			return nil, fmt.Errorf("describing transaction %s: not in the answer", txnID)
		}
		if d.Err != nil {
			return nil, fmt.Errorf("describing transaction %s: %w", txnID, d.Err)
		}
		if !strings.HasPrefix(d.State, "Prepare") {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("transaction %s still %s after %v", txnID, d.State, settle)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	described, err := adm.DescribeProducers(ctx, topicsSet(topics))
	if err != nil {
		return nil, fmt.Errorf("describing the producers of %v: %w", topics, err)
	}
	var closed []string
	var markers []kadm.TxnMarkers
	for _, p := range described.SortedPartitions() {
		if errors.Is(p.Err, kerr.UnknownTopicOrPartition) {
			continue // not created yet: nothing written to it
		}
		if p.Err != nil {
			return nil, fmt.Errorf("describing the producers of %s[%d]: %w", p.Topic, p.Partition, p.Err)
		}
		for _, b := range p.ActiveProducers {
			if b.ProducerID != pid || b.CurrentTxnStartOffset < 0 {
				continue
			}
			closed = append(closed, fmt.Sprintf("%s[%d] from offset %d (epoch %d)", b.Topic, b.Partition, b.CurrentTxnStartOffset, b.ProducerEpoch))
			markers = append(markers, kadm.TxnMarkers{
				ProducerID: pid, ProducerEpoch: b.ProducerEpoch, CoordinatorEpoch: b.CoordinatorEpoch,
				Topics: kadm.TopicsSet{b.Topic: {b.Partition: struct{}{}}},
			})
		}
	}
	if len(markers) == 0 {
		return nil, nil
	}
	resp, err := adm.WriteTxnMarkers(ctx, markers...)
	if err == nil {
		resp.EachPartition(func(p kadm.TxnMarkersPartitionResponse) {
			if p.Err != nil && err == nil {
				err = fmt.Errorf("%s[%d]: %w", p.Topic, p.Partition, p.Err)
			}
		})
	}
	if err != nil {
		return closed, fmt.Errorf("%w: %s; writing their abort marker failed (%w): abort them by hand before restarting, e.g. kafka-transactions.sh --bootstrap-server ... abort --topic T --partition P --start-offset OFFSET",
			ErrHangingTransaction, strings.Join(closed, ", "), err)
	}
	return closed, nil
}

func topicsSet(topics []string) kadm.TopicsSet {
	s := kadm.TopicsSet{}
	for _, t := range topics {
		s.Add(t)
	}
	return s
}

// closeHanging runs closeHangingRecords for this replica's producer,
// retrying what a broker away makes fail, and logs what it closed.
func (rt *runtime) closeHanging(ctx context.Context, after string) error {
	if rt.sess == nil {
		return nil
	}
	var closed []string
	err := rt.retry(ctx, "checking that the transaction's markers landed", 30*time.Second, notHanging, func(ctx context.Context) error {
		pid, _, err := rt.cl.ProducerID(ctx)
		if err != nil {
			return err
		}
		closed, err = closeHangingRecords(ctx, kadm.NewClient(rt.cl), rt.txnID, pid, rt.writtenTopics(), rt.cfg.TransactionTimeout)
		return err
	})
	if !errors.Is(err, ErrHangingTransaction) && isAuthErr(err) {
		// DescribeTransactions and DescribeProducers need Describe on the
		// transactional id and Read on the topics the job writes.
		rt.log.Warn("cannot check that the transaction's markers landed: not authorized (grant Describe on the transactional id and Read on the topics the job writes)",
			zap.String("after", after), zap.Error(err))
		return nil
	}
	if len(closed) > 0 && err == nil {
		rt.obs.HangingRecordsAborted(len(closed))
		rt.log.Error("records of an ended transaction were still open (their abort marker never came); aborted them by writing the marker",
			zap.String("after", after), zap.Strings("partitions", closed))
	}
	return err
}

func isAuthErr(err error) bool {
	return errors.Is(err, kerr.TopicAuthorizationFailed) || errors.Is(err, kerr.TransactionalIDAuthorizationFailed) ||
		errors.Is(err, kerr.ClusterAuthorizationFailed)
}

// notHanging: retry anything but the hanging records that could not be
// aborted, and what notFinal calls final.
func notHanging(err error) bool {
	return !errors.Is(err, ErrHangingTransaction) && notFinal(err)
}
