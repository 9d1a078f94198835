package nexmark

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/internal/local"
	"github.com/weirstream/weir/state"
)

// pipeline runs a query's job in the engine's own tasks (internal/local),
// one per stage, all of partition 0, in the caller's goroutine: the
// benchmarks' harness. Unlike weirtest it keeps nothing it need not: input
// batches go in as a fetch would hand them, repartition records go to the
// next stage in memory after each batch, outputs are counted (and kept
// only when asked), and tasks tick once per batch, as a running task ticks
// on a timer rather than per record.
type pipeline struct {
	tasks []local.Task // by stage
	clock *manualClock
	// reads is the stage reading each repartition topic.
	reads   map[string]int
	offsets map[string]int64
	queue   []*kgo.Record
	out     string
	outputs int
	// keep, when set, gets every output value.
	keep         func(value []byte)
	checkpointID int64
}

// manualClock is processing time that moves only when set.
type manualClock struct{ now time.Time }

func (c *manualClock) Now() time.Time { return c.now }

const sourceTopic = "nexmark"

func newPipeline(q Query) (*pipeline, error) {
	store, err := state.Open("", state.InMemory(state.NewMemFS()))
	if err != nil {
		return nil, err
	}
	return newPipelineOn(q, store)
}

// newPipelineOn is newPipeline over the given store.
func newPipelineOn(q Query, store *state.Store) (*pipeline, error) {
	job := engine.NewJob("bench-" + q.Name)
	q.Build(job, sourceTopic, "out")
	top := local.Prepare(job, 1)
	p := &pipeline{clock: &manualClock{now: BaseTime}, reads: map[string]int{}, offsets: map[string]int64{}, out: "out"}
	for _, t := range top.Internal {
		if stage, ok := top.StageOf(t); ok {
			p.reads[t] = stage
		}
	}
	for stage := range top.Stages {
		lt, err := local.NewTask(context.Background(), job, stage, 0,
			local.Env{Producer: p, Clock: p.clock, Store: store})
		if err != nil {
			return nil, fmt.Errorf("%s: building stage %d: %w", q.Name, stage, err)
		}
		p.tasks = append(p.tasks, lt)
	}
	return p, nil
}

// Produce implements local.Producer: repartition records are queued for
// their stage, outputs counted, anything else (changelogs) dropped; all
// acknowledged at once.
func (p *pipeline) Produce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	switch {
	case p.reads[r.Topic] > 0:
		r.Partition = 0
		p.queue = append(p.queue, r)
	case r.Topic == p.out:
		p.outputs++
		if p.keep != nil {
			p.keep(r.Value)
		}
	}
	promise(r, nil)
}

// process runs one batch of source records through every stage.
func (p *pipeline) process(batch []*kgo.Record) error {
	for _, r := range batch {
		r.Offset = p.offsets[sourceTopic]
		p.offsets[sourceTopic]++
	}
	if err := p.tasks[0].Process(sourceTopic, batch); err != nil {
		return err
	}
	return p.settle()
}

// settle delivers queued repartition records, a run of one topic at a
// time, and ticks every task, until nothing moves.
func (p *pipeline) settle() error {
	for {
		for len(p.queue) > 0 {
			q := p.queue
			p.queue = nil
			for len(q) > 0 {
				topic := q[0].Topic
				n := 1
				for n < len(q) && q[n].Topic == topic {
					n++
				}
				for _, r := range q[:n] {
					r.Offset = p.offsets[topic]
					p.offsets[topic]++
				}
				if err := p.tasks[p.reads[topic]].Process(topic, q[:n]); err != nil {
					return err
				}
				q = q[n:]
			}
		}
		for _, t := range p.tasks {
			if err := t.Tick(); err != nil {
				return err
			}
		}
		if len(p.queue) == 0 {
			return nil
		}
	}
}

// checkpoint checkpoints every task, as a running job does every
// checkpoint interval: state changes go to the changelog, the cache is
// committed.
func (p *pipeline) checkpoint() error {
	p.checkpointID++
	for _, t := range p.tasks {
		if err := t.Checkpoint(p.checkpointID); err != nil {
			return err
		}
	}
	return nil
}

// finish moves the watermark and the clock past every window.
func (p *pipeline) finish() error {
	if err := p.tasks[0].AdvanceWatermark(endOfTime); err != nil {
		return err
	}
	if err := p.settle(); err != nil {
		return err
	}
	p.clock.now = p.clock.now.Add(2 * Q12Window)
	return p.settle()
}

// records makes the source records of evs, in batches of batchSize.
func records(evs []Event, batchSize int) [][]*kgo.Record {
	var batches [][]*kgo.Record
	for chunk := range slices.Chunk(evs, batchSize) {
		batch := make([]*kgo.Record, len(chunk))
		for i, e := range chunk {
			batch[i] = &kgo.Record{Topic: sourceTopic, Value: AppendEvent(make([]byte, 0, 256), e), Timestamp: e.Time()}
		}
		batches = append(batches, batch)
	}
	return batches
}

// run processes batches, with processing time at each batch's last event
// time, and a checkpoint every checkpointEvery events; it returns the
// processing time each event was processed at.
func (p *pipeline) run(batches [][]*kgo.Record) ([]time.Time, error) {
	var now []time.Time
	since := 0
	for _, b := range batches {
		p.clock.now = b[len(b)-1].Timestamp
		if err := p.process(b); err != nil {
			return nil, err
		}
		for range b {
			now = append(now, p.clock.now)
		}
		if since += len(b); since >= checkpointEvery {
			since = 0
			if err := p.checkpoint(); err != nil {
				return nil, err
			}
		}
	}
	return now, nil
}

const (
	// batchSize is how many source records go in per Process call, about
	// what a fetch of a partition hands a task.
	batchSize = 500
	// checkpointEvery is how many events pass between two checkpoints:
	// a second of events at the default rate, the engine's default
	// checkpoint interval.
	checkpointEvery = 10_000
)

// TestPipelineMatchesReference checks the benchmarks' harness: through it,
// every query gives what its reference does, so the benchmarks time the
// right work.
func TestPipelineMatchesReference(t *testing.T) {
	evs := generate(testConfig, testEvents)
	for _, q := range Queries {
		t.Run(q.Name, func(t *testing.T) {
			got, want := pipelineAndReference(t, q, evs, 100)
			if !slices.Equal(got, want) {
				t.Fatal(diff(got, want))
			}
		})
	}
}

// q11 merges a bidder's bids of one instant in each task before keying
// them by bidder: at 5,000 events per second of event time the hot bidder
// bids several times in a millisecond, so merges happen in every batch,
// and the sessions and counts are still the reference's, bid by bid.
func TestQ11MergesABiddersBidsOfAnInstant(t *testing.T) {
	q, err := QueryByName("q11")
	if err != nil {
		t.Fatal(err)
	}
	got, want := pipelineAndReference(t, q, generate(Config{Seed: 7, EventsPerSecond: 5000}, 40_000), batchSize)
	if len(want) < 10 {
		t.Fatalf("the reference has %d sessions: the test checks little", len(want))
	}
	if !slices.Equal(got, want) {
		t.Fatal(diff(got, want))
	}
}

// pipelineAndReference runs evs through q's pipeline in batches of batch
// records, and returns its outputs and its reference's, canonical.
func pipelineAndReference(t *testing.T, q Query, evs []Event, batch int) (got, want []string) {
	t.Helper()
	p, err := newPipeline(q)
	if err != nil {
		t.Fatal(err)
	}
	var values [][]byte
	p.keep = func(v []byte) { values = append(values, v) }
	now, err := p.run(records(evs, batch))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.finish(); err != nil {
		t.Fatal(err)
	}
	return canonical(t, decodeOutputs(t, q.Name, values)), canonical(t, references[q.Name](evs, now))
}
