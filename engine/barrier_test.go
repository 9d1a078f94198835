package engine

import (
	"context"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/weirstream/weir/observe"
	"github.com/weirstream/weir/state"
)

// offsetProducer acknowledges every record at once with the next offset
// of its topic, as a broker would.
type offsetProducer struct {
	mu   sync.Mutex
	next map[string]int64
}

func (p *offsetProducer) Produce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	p.mu.Lock()
	r.Offset = p.next[r.Topic]
	p.next[r.Topic]++
	p.mu.Unlock()
	promise(r, nil)
}

// statefulTask returns a task of a job with one stateful operator "op",
// whose changelog is g-op-changelog, and the key of one of its state cells.
func statefulTask(t *testing.T) (*Task, []byte) {
	t.Helper()
	store, err := state.Open("", state.InMemory(state.NewMemFS()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	j := NewJob("cut")
	j.AddStatefulOperator("op", 0)
	j.resolveInternalTopics("g")
	task, err := newTask(taskEnv{
		ctx: context.Background(), log: zap.NewNop(), obs: observe.Nop{}, producer: &offsetProducer{next: map[string]int64{}},
		clock: systemClock{}, store: store,
	}, TaskID{Stage: 0, Partition: 0}, j)
	if err != nil {
		t.Fatal(err)
	}
	return task, []byte("\x02op\x01k")
}

// TestBarrierCutShortKeepsItsChangelogPosition: a checkpoint cut short
// while it takes barriers (SIGTERM, a task failing) releases the tasks it
// already holds without committing. Their changelog records stay in the
// open transaction, and the next checkpoint commits them: its metadata
// must name their position, even when the task wrote nothing since, or a
// task restored from it elsewhere stops before them and loses the updates.
func TestBarrierCutShortKeepsItsChangelogPosition(t *testing.T) {
	task, key := statefulTask(t)
	task.store.Set(key, []byte("v1"))
	cut := task.barrier() // its checkpoint never commits
	if err := cut.epoch.Wait(nil); err != nil {
		t.Fatal(err)
	}
	if got := cut.changelogNext()["g-op-changelog"]; got != 1 {
		t.Fatalf("the cut barrier's position is %d, want 1", got)
	}
	next := task.barrier() // the next checkpoint: no new writes
	if err := next.epoch.Wait(nil); err != nil {
		t.Fatal(err)
	}
	if got := next.changelogNext()["g-op-changelog"]; got != 1 {
		t.Fatalf("the next checkpoint commits changelog position %d, want 1: the cut barrier's record is lost to a restore", got)
	}
	if err := task.commitState(next.cp, next.changelogNext(), next.clAcks()); err != nil {
		t.Fatal(err)
	}
	task.store.Set(key, []byte("v2"))
	after := task.barrier()
	if err := after.epoch.Wait(nil); err != nil {
		t.Fatal(err)
	}
	if got := after.changelogNext()["g-op-changelog"]; got != 2 {
		t.Fatalf("after the commit, the position is %d, want 2", got)
	}
}

// heldProducer keeps every record's promise until release.
type heldProducer struct {
	mu      sync.Mutex
	records []*kgo.Record
	pending []func()
}

func (p *heldProducer) Produce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.records = append(p.records, r)
	p.pending = append(p.pending, func() { promise(r, nil) })
}

func (p *heldProducer) release() {
	p.mu.Lock()
	pending := p.pending
	p.pending = nil
	p.mu.Unlock()
	for _, f := range pending {
		f()
	}
}

// A checkpoint's changelog records are reused by a later checkpoint only
// once the producer has run every promise of them: a record the producer
// still holds must not change under it.
func TestChangelogRecordsReusedOnlyOncePromised(t *testing.T) {
	task, key := statefulTask(t)
	p := &heldProducer{}
	task.producer = p
	task.store.Set(key, []byte("v1"))
	first := task.barrier()
	task.store.Set(key, []byte("v2"))
	second := task.barrier() // the first's promises have not run
	if len(p.records) != 2 {
		t.Fatalf("%d changelog records, want 2", len(p.records))
	}
	if p.records[0] == p.records[1] {
		t.Fatal("the second checkpoint reused the record the producer still holds")
	}
	if got := string(p.records[0].Value); got != "v1" {
		t.Fatalf("the first checkpoint's record holds %q, want v1", got)
	}
	p.release()
	for _, s := range []snapshot{first, second} {
		if err := s.epoch.Wait(nil); err != nil {
			t.Fatal(err)
		}
	}
	task.store.Set(key, []byte("v3"))
	third := task.barrier()
	p.release()
	if err := third.epoch.Wait(nil); err != nil {
		t.Fatal(err)
	}
	if p.records[2] != p.records[1] {
		t.Error("with every promise run, the third checkpoint allocated its records anew; want the second's reused")
	}
	if got := string(p.records[2].Value); got != "v3" {
		t.Fatalf("the third checkpoint's record holds %q, want v3", got)
	}
}
