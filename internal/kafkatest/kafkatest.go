// Package kafkatest gives tests a Kafka to run against: the real broker
// that `make test` starts (KAFKA_BROKERS), or franz-go's in-process kfake
// for fast tests where broker semantics do not matter. Every helper cleans
// up after itself.
package kafkatest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Brokers returns the real broker's addresses from KAFKA_BROKERS. Without
// it the test is skipped, unless WEIR_REQUIRE_KAFKA=1 (set by `make test`),
// in which case it fails: CI must never silently skip real-broker tests.
func Brokers(t testing.TB) []string {
	t.Helper()
	env := os.Getenv("KAFKA_BROKERS")
	if env == "" {
		if os.Getenv("WEIR_REQUIRE_KAFKA") == "1" {
			t.Fatal("KAFKA_BROKERS is not set but WEIR_REQUIRE_KAFKA=1: this test needs the real broker")
		}
		t.Skip("needs a real Kafka broker: run `make test`, or set KAFKA_BROKERS")
	}
	return strings.Split(env, ",")
}

// Fake starts an in-process kfake cluster with the given topics and
// returns its addresses; it is closed when the test ends.
func Fake(t testing.TB, partitions int32, topics ...string) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topics...))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// Name returns a fresh name with the given prefix, for topics and groups.
func Name(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// Client returns a plain client (no group) closed at the end of the test.
func Client(t testing.TB, brokers []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		t.Fatalf("kafka client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// CreateTopic creates a fresh topic with a unique name derived from prefix
// and deletes it at the end of the test.
func CreateTopic(t testing.TB, brokers []string, prefix string, partitions int32) string {
	t.Helper()
	name := Name(prefix)
	CreateNamedTopic(t, brokers, name, partitions)
	return name
}

// CreateNamedTopic creates topic name, named exactly (a job may derive it
// from another topic's name), and deletes it at the end of the test.
func CreateNamedTopic(t testing.TB, brokers []string, name string, partitions int32) {
	t.Helper()
	adm := kadm.NewClient(Client(t, brokers))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Tests write records with event times from the past; time-based
	// retention would delete them mid-test (the broker checks every 5
	// minutes, and rolls the active segment to delete it).
	resp, err := adm.CreateTopic(ctx, partitions, 1, map[string]*string{"retention.ms": kadm.StringPtr("-1")}, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("creating topic %s: %v", name, err)
	}
	// KRaft answers before every broker's metadata has the topic: a job
	// started at once could find it missing. Wait until metadata lists
	// it with its partitions.
	for {
		tds, err := adm.ListTopics(ctx, name)
		if td, ok := tds[name]; err == nil && ok && td.Err == nil && len(td.Partitions) == int(partitions) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("topic %s created, but not in the metadata after 30s", name)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() {
		if t.Failed() {
			return // kept, to look into
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = kadm.NewClient(Client(t, brokers)).DeleteTopics(ctx, name)
	})
}

// ProduceSync writes records and fails the test on any error.
func ProduceSync(t testing.TB, cl *kgo.Client, recs ...*kgo.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("producing: %v", err)
	}
}

// ReadAll reads topic from the start with read_committed until want
// records arrived or timeout passed, and returns what it read.
func ReadAll(t testing.TB, brokers []string, topic string, want int, timeout time.Duration) []*kgo.Record {
	t.Helper()
	return ReadAllSettled(t, brokers, topic, want, timeout, 0)
}

// ReadAllSettled reads topic from the start with read_committed until it
// has want records or timeout passes, then goes on reading for settle
// more (ReadAll does not): for a check
// that nothing beyond the records expected is there. A short timeout for
// the whole read (want+1 in 2s) fails under load before the consumer has
// fetched anything.
func ReadAllSettled(t testing.TB, brokers []string, topic string, want int, timeout, settle time.Duration) []*kgo.Record {
	t.Helper()
	cl := Client(t, brokers, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []*kgo.Record
	for len(out) < want && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	sctx, scancel := context.WithTimeout(context.Background(), settle)
	defer scancel()
	for sctx.Err() == nil {
		cl.PollFetches(sctx).EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

// CommittedOffsets returns the group's committed offsets for topic, by partition.
func CommittedOffsets(t testing.TB, brokers []string, group, topic string) map[int32]int64 {
	t.Helper()
	out, err := TryCommittedOffsets(t, brokers, group, topic)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TryCommittedOffsets is CommittedOffsets for polling: an error (the
// group coordinator of a broker just started, say) is returned, not fatal.
func TryCommittedOffsets(t testing.TB, brokers []string, group, topic string) (map[int32]int64, error) {
	t.Helper()
	adm := kadm.NewClient(Client(t, brokers))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return nil, fmt.Errorf("fetching offsets of %s: %w", group, err)
	}
	out := map[int32]int64{}
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil {
			out[o.Partition] = o.At
		}
	})
	return out, nil
}

// Eventually polls cond every 20ms until it holds or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Within(timeout, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// Within polls cond every 20ms until it holds (true) or timeout passes
// (false): for a test that gathers evidence before it fails.
func Within(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// FreeAddr returns a loopback address nothing listens on, for a server a
// test starts (a job's metrics, a Prometheus).
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
