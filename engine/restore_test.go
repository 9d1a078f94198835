package engine

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/weirstream/weir/internal/kafkatest"

	"github.com/weirstream/weir/observe"
	"github.com/weirstream/weir/state"
)

// TestRestoreDiscardsUncommittedWrites: a task that starts again in the
// same process (its partitions given back at a rebalance, or after an
// abort) finds in the store's cache the writes of its previous run, whose
// transaction was aborted. It must start from the committed state. A
// zombie test caught the runtime reading them: totals ran ahead of the
// offsets they were resumed from.
func TestRestoreDiscardsUncommittedWrites(t *testing.T) {
	store, err := state.Open("", state.InMemory(state.NewMemFS()))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	j := NewJob("restore")
	j.AddStatefulOperator("op", 0)
	j.resolveInternalTopics("g")
	rt := newRuntime(j, zap.NewNop(), observe.Nop{})
	rt.store = store
	id := TaskID{Stage: 0, Partition: 3}
	ts := store.Task(state.TaskID{Stage: 0, Partition: 3})
	key := []byte("\x02op\x01k")
	ts.Set(key, []byte("committed"))
	ts.Flush()
	positions := map[string]int64{"g-op-changelog": 7}
	if err := ts.CommitPending(4, positions); err != nil {
		t.Fatal(err)
	}
	ts.Set(key, []byte("aborted, dirty"))
	ts.Flush()
	ts.Set(key, []byte("aborted, pending"))

	got, err := rt.restoreState(context.Background(), nil, id, commitMeta{cp: 4, changelog: positions}, true)
	if err != nil {
		t.Fatal(err)
	}
	if got["g-op-changelog"] != 7 {
		t.Fatalf("positions %v", got)
	}
	if v, ok, err := ts.Get(key); err != nil || !ok || string(v) != "committed" {
		t.Fatalf("the restarted task reads %q (%v, %v), want the committed value", v, ok, err)
	}
}

// TestStaleLocalStateRestoresInFull: a task comes back to a replica whose
// local state of it is older than its changelog's tombstone retention (it
// ran elsewhere meanwhile). Compaction may have removed tombstones of keys
// deleted since, so catching up from the local position would keep those
// keys (and their timers: windows that fire twice). The store must be
// dropped and the changelog read whole; a store behind by less than the
// retention still catches up from where it is.
func TestStaleLocalStateRestoresInFull(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	group := kafkatest.Name("stale")
	topic := group + "-op-changelog"
	cl := kafkatest.Client(t, brokers)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	adm := kadm.NewClient(cl)
	resp, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{
		"cleanup.policy": kadm.StringPtr("compact"), "delete.retention.ms": kadm.StringPtr("3600000"),
	}, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = adm.DeleteTopics(context.Background(), topic) })
	key := func(k string) []byte { return []byte("\x02op\x01" + k) }
	// The changelog as compaction left it: k1 and k2, and no trace of
	// "gone", deleted after the local store last saw the task.
	kafkatest.ProduceSync(t, cl,
		&kgo.Record{Topic: topic, Key: key("k1"), Value: []byte("v1")},
		&kgo.Record{Topic: topic, Key: key("k2"), Value: []byte("v2")})

	for _, tc := range []struct {
		name   string
		behind time.Duration
		full   bool
	}{{"behind by less than the retention", 10 * time.Minute, false}, {"behind by more", 2 * time.Hour, true}} {
		t.Run(tc.name, func(t *testing.T) {
			store, err := state.Open("", state.InMemory(state.NewMemFS()), state.WithClock(func() time.Time { return time.Now().Add(-tc.behind) }))
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			j := NewJob("stale", WithBrokers(brokers...), WithGroup(group))
			j.AddStatefulOperator("op", 0)
			j.resolveInternalTopics(group)
			rt := newRuntime(j, zap.NewNop(), observe.Nop{})
			rt.store = store
			ts := store.Task(state.TaskID{Stage: 0, Partition: 0})
			ts.Set(key("gone"), []byte("x"))
			ts.Flush()
			if err := ts.CommitPending(4, map[string]int64{topic: 1}); err != nil {
				t.Fatal(err)
			}
			got, err := rt.restoreState(ctx, cl, TaskID{Stage: 0, Partition: 0}, commitMeta{cp: 9, changelog: map[string]int64{topic: 2}}, true)
			if err != nil {
				t.Fatal(err)
			}
			if got[topic] != 2 {
				t.Fatalf("positions %v", got)
			}
			has := func(k string) bool {
				_, ok, err := ts.Get(key(k))
				if err != nil {
					t.Fatal(err)
				}
				return ok
			}
			if tc.full && (has("gone") || !has("k1") || !has("k2")) {
				t.Fatalf("gone %v, k1 %v, k2 %v: want the changelog read whole, and the stale key gone", has("gone"), has("k1"), has("k2"))
			}
			if !tc.full && (!has("gone") || has("k1") || !has("k2")) {
				t.Fatalf("gone %v, k1 %v, k2 %v: want the changelog read from the local position", has("gone"), has("k1"), has("k2"))
			}
		})
	}
}

// TestRestoreEndsWhereTheChangelogHasNothingLeft: the committed position
// names the offset after the last changelog record of the checkpoint, but
// that record may be gone (a tombstone compaction removed after its
// retention; here, records of an aborted transaction, which a committed
// reader never sees either). The restore must end at the committed end of
// what is there, not wait for a record that will never come.
func TestRestoreEndsWhereTheChangelogHasNothingLeft(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	group := kafkatest.Name("gone")
	topic := group + "-op-changelog"
	kafkatest.CreateNamedTopic(t, brokers, topic, 1)
	key := func(k string) []byte { return []byte("\x02op\x01" + k) }
	cl := kafkatest.Client(t, brokers)
	kafkatest.ProduceSync(t, cl,
		&kgo.Record{Topic: topic, Key: key("k1"), Value: []byte("v1")},
		&kgo.Record{Topic: topic, Key: key("k2"), Value: []byte("v2")})
	txn := kafkatest.Client(t, brokers, kgo.TransactionalID(group+"-txn"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"k3", "k4", "k5"} {
		if err := txn.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: key(k), Value: []byte("aborted")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := txn.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}

	store, err := state.Open("", state.InMemory(state.NewMemFS()))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	j := NewJob("gone", WithBrokers(brokers...), WithGroup(group))
	j.AddStatefulOperator("op", 0)
	j.resolveInternalTopics(group)
	rt := newRuntime(j, zap.NewNop(), observe.Nop{})
	rt.store = store
	got, err := rt.restoreState(ctx, cl, TaskID{Stage: 0, Partition: 0}, commitMeta{cp: 3, changelog: map[string]int64{topic: 5}}, true)
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	ts := store.Task(state.TaskID{Stage: 0, Partition: 0})
	for k, want := range map[string]bool{"k1": true, "k2": true, "k3": false} {
		if _, ok, err := ts.Get(key(k)); err != nil || ok != want {
			t.Errorf("%s present %v (%v), want %v", k, ok, err, want)
		}
	}
	if got[topic] != 5 {
		t.Fatalf("positions %v", got)
	}
}

// TestRestoreWaitsForTheStableEnd: a changelog whose last stable offset
// is below the committed position (a broker just restarted, or a
// transaction still open) is not one with nothing left: the records
// below the target are coming, and the restore must wait for them rather
// than end without them.
func TestRestoreWaitsForTheStableEnd(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	group := kafkatest.Name("unstable")
	topic := group + "-op-changelog"
	kafkatest.CreateNamedTopic(t, brokers, topic, 1)
	key := func(k string) []byte { return []byte("\x02op\x01" + k) }
	cl := kafkatest.Client(t, brokers)
	kafkatest.ProduceSync(t, cl, &kgo.Record{Topic: topic, Key: key("k1"), Value: []byte("v1")})
	txn := kafkatest.Client(t, brokers, kgo.TransactionalID(group+"-txn"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := txn.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: key("k2"), Value: []byte("v2")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	store, err := state.Open("", state.InMemory(state.NewMemFS()))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	j := NewJob("unstable", WithBrokers(brokers...), WithGroup(group))
	j.AddStatefulOperator("op", 0)
	j.resolveInternalTopics(group)
	rt := newRuntime(j, zap.NewNop(), observe.Nop{})
	rt.store = store
	done := make(chan error, 1)
	go func() {
		_, err := rt.restoreState(ctx, cl, TaskID{Stage: 0, Partition: 0}, commitMeta{cp: 3, changelog: map[string]int64{topic: 2}}, true)
		done <- err
	}()
	// Longer than the restore's quiet poll: it asks, and must keep waiting.
	select {
	case err := <-done:
		t.Fatalf("the restore ended (%v) while its last record was not yet stable", err)
	case <-time.After(3 * restoreQuietPoll):
	}
	if err := txn.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ts := store.Task(state.TaskID{Stage: 0, Partition: 0})
	for _, k := range []string{"k1", "k2"} {
		if _, ok, err := ts.Get(key(k)); err != nil || !ok {
			t.Errorf("%s missing (%v)", k, err)
		}
	}
}

// TestLocalStateBehindTheChangelogStartIsDropped: records below a
// changelog's log start offset are gone (deleted: a reset of the job's
// state by `weir offsets reset`, or a retention). A local store behind it
// cannot catch up, since what it misses includes deletions; reading on
// from the log start would keep keys the state no longer has. It must be
// dropped and the changelog read from its start.
func TestLocalStateBehindTheChangelogStartIsDropped(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	group := kafkatest.Name("behind")
	topic := group + "-op-changelog"
	kafkatest.CreateNamedTopic(t, brokers, topic, 1)
	key := func(k string) []byte { return []byte("\x02op\x01" + k) }
	cl := kafkatest.Client(t, brokers)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kafkatest.ProduceSync(t, cl,
		&kgo.Record{Topic: topic, Key: key("old"), Value: []byte("1")},
		&kgo.Record{Topic: topic, Key: key("old"), Value: nil}) // deleted, and the tombstone deleted below
	adm := kadm.NewClient(cl)
	resp, err := adm.DeleteRecords(ctx, kadm.Offsets{topic: {0: {Topic: topic, Partition: 0, At: 2}}})
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	kafkatest.ProduceSync(t, cl, &kgo.Record{Topic: topic, Key: key("new"), Value: []byte("2")})

	store, err := state.Open("", state.InMemory(state.NewMemFS()))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	j := NewJob("behind", WithBrokers(brokers...), WithGroup(group))
	j.AddStatefulOperator("op", 0)
	j.resolveInternalTopics(group)
	rt := newRuntime(j, zap.NewNop(), observe.Nop{})
	rt.store = store
	ts := store.Task(state.TaskID{Stage: 0, Partition: 0})
	ts.Set(key("old"), []byte("1")) // the local store saw only the first record
	ts.Flush()
	if err := ts.CommitPending(1, map[string]int64{topic: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.restoreState(ctx, cl, TaskID{Stage: 0, Partition: 0}, commitMeta{cp: 2, changelog: map[string]int64{topic: 3}}, true); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]bool{"old": false, "new": true} {
		if _, ok, err := ts.Get(key(k)); err != nil || ok != want {
			t.Errorf("%s present %v (%v), want %v", k, ok, err, want)
		}
	}
}

// TestLocalStateAtTheChangelogStartIsDropped: weir offsets reset deletes a
// job's changelog records up to their end, where a cleanly stopped
// replica's local store stands. That store is the state from before the
// reset and must go, though its position equals the committed one.
func TestLocalStateAtTheChangelogStartIsDropped(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	group := kafkatest.Name("atstart")
	topic := group + "-op-changelog"
	kafkatest.CreateNamedTopic(t, brokers, topic, 1)
	key := []byte("\x02op\x01k")
	cl := kafkatest.Client(t, brokers)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kafkatest.ProduceSync(t, cl, &kgo.Record{Topic: topic, Key: key, Value: []byte("before the reset")})
	resp, err := kadm.NewClient(cl).DeleteRecords(ctx, kadm.Offsets{topic: {0: {Topic: topic, Partition: 0, At: 1}}})
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	store, err := state.Open("", state.InMemory(state.NewMemFS()))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	j := NewJob("atstart", WithBrokers(brokers...), WithGroup(group))
	j.AddStatefulOperator("op", 0)
	j.resolveInternalTopics(group)
	rt := newRuntime(j, zap.NewNop(), observe.Nop{})
	rt.store = store
	ts := store.Task(state.TaskID{Stage: 0, Partition: 0})
	ts.Set(key, []byte("before the reset"))
	ts.Flush()
	if err := ts.CommitPending(1, map[string]int64{topic: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.restoreState(ctx, cl, TaskID{Stage: 0, Partition: 0}, commitMeta{cp: 2, changelog: map[string]int64{topic: 1}}, true); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := ts.Get(key); err != nil || ok {
		t.Fatalf("the state from before the reset is still there: %q (%v)", v, err)
	}
}
