package engine

import (
	"context"
	"encoding/binary"
	"hash/crc32"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/weirstream/weir/internal/kafkatest"
)

// TestHangingRecordsOfAnAbortAreClosed makes, on the real broker, the
// state the torture test once ended in (issue 10): records of a
// transaction on a partition its coordinator does not know the
// transaction wrote, so that its abort leaves them open. Without the
// check, the producer's next commit makes them visible; with it, they are
// aborted before the producer writes again.
//
// Kafka 4 keeps a producer from writing to a partition its transaction
// has not registered (KIP-890), so the test turns that verification off
// for its run and writes the records with a produce request of the older
// protocol, which registers nothing.
func TestHangingRecordsOfAnAbortAreClosed(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	adm := kadm.NewClient(kafkatest.Client(t, brokers))
	setVerification(t, ctx, adm, kadm.SetConfig, "false")
	t.Cleanup(func() { setVerification(t, context.Background(), adm, kadm.DeleteConfig, "true") })

	for _, check := range []bool{false, true} {
		name := map[bool]string{false: "without the check the next commit shows them", true: "with the check they stay aborted"}[check]
		t.Run(name, func(t *testing.T) {
			topic := kafkatest.CreateTopic(t, brokers, "hanging", 2)
			txnID := kafkatest.Name("hanging-txn")
			cl := kafkatest.Client(t, brokers, kgo.TransactionalID(txnID), kgo.DefaultProduceTopic(topic),
				kgo.RecordPartitioner(kgo.ManualPartitioner()))

			// A transaction writes partition 0 as usual, and partition 1
			// behind its coordinator's back.
			if err := cl.BeginTransaction(); err != nil {
				t.Fatal(err)
			}
			kafkatest.ProduceSync(t, cl, &kgo.Record{Partition: 0, Value: []byte("aborted-0")})
			pid, epoch, err := cl.ProducerID(ctx)
			if err != nil {
				t.Fatal(err)
			}
			produceUnregistered(t, ctx, brokers, txnID, topic, 1, pid, epoch, "stray-1", "stray-2")
			if err := cl.EndTransaction(ctx, kgo.TryAbort); err != nil {
				t.Fatal(err)
			}

			if check {
				closed, err := closeHangingRecords(ctx, adm, txnID, pid, []string{topic}, 30*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				if len(closed) != 1 || !strings.HasPrefix(closed[0], topic+"[1] from offset 0") {
					t.Fatalf("closed %q, want %s[1] from offset 0", closed, topic)
				}
				// Nothing left: a second look finds nothing to close.
				if again, err := closeHangingRecords(ctx, adm, txnID, pid, []string{topic}, 30*time.Second); err != nil || len(again) != 0 {
					t.Fatalf("second check: closed %q, err %v", again, err)
				}
			}

			// The producer's next transaction writes partition 1 and commits.
			if err := cl.BeginTransaction(); err != nil {
				t.Fatal(err)
			}
			kafkatest.ProduceSync(t, cl, &kgo.Record{Partition: 1, Value: []byte("committed-1")})
			if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
				t.Fatal(err)
			}
			want := []string{"committed-1"}
			if !check {
				want = []string{"committed-1", "stray-1", "stray-2"}
			}
			var got []string
			for _, r := range kafkatest.ReadAllSettled(t, brokers, topic, len(want), 20*time.Second, time.Second) {
				got = append(got, string(r.Value))
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("read committed %q, want %q", got, want)
			}
		})
	}
}

// setVerification sets (or deletes, back to its default) the brokers'
// transaction.partition.verification.enable, and waits until it is v.
func setVerification(t *testing.T, ctx context.Context, adm *kadm.Client, op kadm.IncrementalOp, v string) {
	t.Helper()
	resp, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Op: op, Name: "transaction.partition.verification.enable", Value: &v}})
	if err == nil {
		for _, r := range resp {
			if r.Err != nil {
				err = r.Err
			}
		}
	}
	if err != nil {
		t.Fatalf("setting transaction.partition.verification.enable=%s: %v", v, err)
	}
	// Dynamic configs reach the broker's request path asynchronously.
	kafkatest.Eventually(t, 10*time.Second, "the broker config applied", func() bool {
		rs, err := adm.DescribeBrokerConfigs(ctx)
		if err != nil {
			return false
		}
		// The cluster-wide dynamic configs: a deleted one is not listed.
		for _, r := range rs {
			for _, c := range r.Configs {
				if c.Key == "transaction.partition.verification.enable" {
					return c.Value != nil && *c.Value == v
				}
			}
		}
		return op == kadm.DeleteConfig
	})
}

// produceUnregistered writes values to topic's partition as transactional
// records of producer pid at epoch, with a produce request of version 11,
// which does not add the partition to the transaction (KIP-890 part 2
// adds it from version 12 on).
func produceUnregistered(t *testing.T, ctx context.Context, brokers []string, txnID, topic string, partition int32, pid int64, epoch int16, values ...string) {
	t.Helper()
	var recs []byte
	for i, v := range values {
		r := kmsg.Record{OffsetDelta: int32(i), Value: []byte(v)}
		r.Length = int32(len(r.AppendTo(nil)) - 1) // the rest, after a one-byte zero length
		recs = r.AppendTo(recs)
	}
	now := time.Now().UnixMilli()
	b := kmsg.RecordBatch{
		PartitionLeaderEpoch: -1, Magic: 2, Attributes: 0x10, // transactional
		LastOffsetDelta: int32(len(values) - 1), FirstTimestamp: now, MaxTimestamp: now,
		ProducerID: pid, ProducerEpoch: epoch, FirstSequence: 0, NumRecords: int32(len(values)), Records: recs,
	}
	raw := b.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[8:], uint32(len(raw)-12))                                          // length: after offset and length
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli))) // from attributes on

	v := kversion.Stable()
	v.SetMaxKeyVersion(int16(kmsg.Produce), 11)
	cl := kafkatest.Client(t, brokers, kgo.MaxVersions(v))
	req := kmsg.NewPtrProduceRequest()
	req.TransactionID, req.Acks, req.TimeoutMillis = &txnID, -1, 10_000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition, rp.Records = partition, raw
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)

	meta, err := kadm.NewClient(cl).Metadata(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	leader := meta.Topics[topic].Partitions[partition].Leader
	resp, err := req.RequestWith(ctx, cl.Broker(int(leader)))
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("producing unregistered records: error code %d", code)
	}
}
