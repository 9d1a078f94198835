package engine

import (
	"context"
	"testing"

	"go.uber.org/zap"

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
