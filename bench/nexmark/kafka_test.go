package nexmark

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestWriteTopic writes events to an in-process broker (kfake) and reads
// them back: every event once, its JSON as value, no key, its dateTime as
// timestamp, and each partition in event-time order.
func TestWriteTopic(t *testing.T) {
	const n, topic = 1000, "nexmark"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := Config{Seed: 9}
	w, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := WriteTopic(ctx, w, topic, n, cfg); err != nil {
		t.Fatal(err)
	}

	r, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	want := map[string]int{}
	for _, b := range encodeN(t, cfg, n) {
		want[string(b)]++
	}
	last := map[int32]time.Time{}
	partitions := map[int32]bool{}
	for got := 0; got < n; {
		fs := r.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("after %d records: %v", got, err)
		}
		for _, rec := range fs.Records() {
			got++
			if rec.Key != nil {
				t.Errorf("record with key %q", rec.Key)
			}
			e, err := DecodeEvent(rec.Value)
			if err != nil {
				t.Fatal(err)
			}
			if !rec.Timestamp.Equal(e.Time()) {
				t.Errorf("record at %v carries an event at %v", rec.Timestamp, e.Time())
			}
			if rec.Timestamp.Before(last[rec.Partition]) {
				t.Errorf("partition %d goes back in time: %v after %v", rec.Partition, rec.Timestamp, last[rec.Partition])
			}
			last[rec.Partition] = rec.Timestamp
			partitions[rec.Partition] = true
			if want[string(rec.Value)] == 0 {
				t.Fatalf("unexpected or repeated record %s", rec.Value)
			}
			want[string(rec.Value)]--
		}
	}
	if len(partitions) != 3 {
		t.Errorf("records in partitions %v, want all 3 (round robin)", partitions)
	}
	// Nothing more.
	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancelShort()
	if fs := r.PollFetches(short); len(fs.Records()) > 0 {
		t.Errorf("%d records more than the %d written", len(fs.Records()), n)
	}

	if err := WriteTopic(ctx, w, topic, 1, Config{EventsPerSecond: -1}); err == nil {
		t.Error("invalid config: no error")
	}
	canceled, cancelNow := context.WithCancel(ctx)
	cancelNow()
	if err := WriteTopic(canceled, w, topic, 10, cfg); err == nil {
		t.Error("canceled context: no error")
	}
}
