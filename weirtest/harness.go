// Package weirtest runs a Weir job without a broker, for the job's own
// tests: what Kafka Streams' TopologyTestDriver and Flink's operator test
// harnesses are to theirs. Records pushed in go through every stage of the
// job in the caller's goroutine, repartition topics are in memory, state
// is in an in-memory store, and processing time is a clock the test moves.
//
// It runs the engine's own tasks, so operators, state, timers and
// watermarks behave as in a running job; what it leaves out is Kafka:
// consumer groups, transactions and the network. Checkpoint and Crash
// (recovery.go) stand for the exactly-once protocol: what a checkpoint
// commits survives a crash, the rest is replayed.
package weirtest

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/internal/local"
	"github.com/weirstream/weir/state"
)

// Clock is a processing-time clock that moves only when told.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Opt configures a Harness.
type Opt func(*config)

type config struct {
	partitions  int32
	start       time.Time
	timerMemory int64
	stateMemory int64
}

// Partitions sets how many partitions every stage has. Default: 1.
func Partitions(n int32) Opt { return func(c *config) { c.partitions = n } }

// TimerMemory bounds the bytes of timers each task keeps in memory, as a
// replica's memory budget does (1/32 of Config.MemoryLimit, the default):
// past it, the later timers wait in the state store and are read back as
// they come due. TimerMemory(1) keeps about one timer per operator in
// memory, to test that a job behaves the same when its timers do not fit.
func TimerMemory(bytes int64) Opt { return func(c *config) { c.timerMemory = bytes } }

// StateMemory bounds the bytes of typed state (window accumulators,
// session lists, window-join buffers) each task's operators keep in
// memory beside the store's caches, as a replica's share of its memory
// limit does: StateMemory(1) writes every change through to the store at
// once, as a job far past its budget would.
func StateMemory(bytes int64) Opt { return func(c *config) { c.stateMemory = bytes } }

// StartTime sets the processing-time clock's start. Default: 2024-01-01
// 00:00 UTC, so runs repeat exactly.
func StartTime(t time.Time) Opt { return func(c *config) { c.start = t } }

// Harness drives one job. It is not safe for concurrent use.
type Harness struct {
	tb    failer
	job   *engine.Job
	top   local.Topology
	clock *Clock
	store *state.Store
	tasks map[engine.TaskID]local.Task
	// timerMemory is each task's bound on timers in memory (TimerMemory),
	// stateMemory its bound on typed state (StateMemory).
	timerMemory, stateMemory int64
	// ids are the tasks' ids in (stage, partition) order: the order the
	// harness ticks and checkpoints them in, so runs repeat exactly.
	ids []engine.TaskID

	internal map[string]bool
	// offsets is, per input topic and partition, the offset of the next
	// record delivered.
	offsets map[string]map[int32]int64
	// outputs holds what the job wrote to every topic that is not a
	// repartition topic (sinks, late data, changelogs), by topic.
	outputs map[string]*outputLog
	// queue holds repartition records not yet delivered downstream.
	queue []*kgo.Record
	part  kgo.Partitioner
	parts map[string]kgo.TopicPartitioner // by topic, made once: making one seeds an RNG
	cpID  int64

	// recovery is what Crash goes back to and replays (recovery.go).
	recovery recovery
}

// outputLog is one output topic: every record written and not aborted,
// in the order written, kept for CommittedOutput and Crash.
type outputLog struct {
	recs []*kgo.Record
	// read is how many of recs Output has handed out; committed how many
	// the last checkpoint committed.
	read, committed int
	// next is, per partition, the offset of the next record: it never
	// goes back, as in Kafka, where aborted records keep theirs.
	next map[int32]int64
}

// New builds every task of every stage of job. The job must not be run
// otherwise; the harness is closed when the test ends.
func New(tb testing.TB, job *engine.Job, opts ...Opt) *Harness {
	tb.Helper()
	h, err := start(job, opts)
	if err != nil {
		tb.Fatal(err)
	}
	h.tb = tb
	tb.Cleanup(func() { _ = h.Close() })
	return h
}

// Start is New outside a test (an example, a program exploring a job):
// the caller closes the harness. Where a test's harness would fail the
// test (an output that does not decode), this one panics.
func Start(job *engine.Job, opts ...Opt) (*Harness, error) {
	return start(job, opts)
}

func start(job *engine.Job, opts []Opt) (*Harness, error) {
	cfg := config{partitions: 1, start: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	for _, o := range opts {
		o(&cfg)
	}
	store, err := state.Open("", state.InMemory(state.NewMemFS()))
	if err != nil {
		return nil, fmt.Errorf("weirtest: opening the state store: %w", err)
	}
	top := local.Prepare(job, cfg.partitions)
	h := &Harness{
		tb: panicker{}, job: job, top: top, clock: &Clock{now: cfg.start}, store: store, timerMemory: cfg.timerMemory, stateMemory: cfg.stateMemory,
		internal: map[string]bool{},
		offsets:  map[string]map[int32]int64{}, outputs: map[string]*outputLog{},
		part: engine.Partitioner(), parts: map[string]kgo.TopicPartitioner{},
	}
	for _, t := range top.Internal {
		if _, read := top.StageOf(t); read {
			h.internal[t] = true // a repartition topic; the others are outputs
		}
	}
	for stage := range top.Stages {
		for p := range cfg.partitions {
			h.ids = append(h.ids, engine.TaskID{Stage: stage, Partition: p})
		}
	}
	if err := h.startTasks(nil); err != nil {
		_ = store.Close()
		return nil, err
	}
	return h, nil
}

// Close releases the harness's state store (the one of its last
// restart).
func (h *Harness) Close() error { return h.store.Close() }

// failer is what a harness reports a broken test to: the test's
// testing.TB, or outside a test a panicker.
type failer interface {
	Helper()
	Fatalf(format string, args ...any)
}

type panicker struct{}

func (panicker) Helper() {}
func (panicker) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}

// startTasks builds every task anew in h.store, each resuming the
// checkpoint resume has for it (from nothing without one).
func (h *Harness) startTasks(resume map[engine.TaskID]local.Checkpoint) error {
	h.tasks = make(map[engine.TaskID]local.Task, len(h.ids))
	for _, id := range h.ids {
		lt, err := local.NewTask(context.Background(), h.job, id.Stage, id.Partition, local.Env{
			Producer: h, Clock: h.clock, Store: h.store, Resume: resume[id], TimerMemory: h.timerMemory, StateMemory: h.stateMemory,
		})
		if err != nil {
			return fmt.Errorf("weirtest: building task %s: %w", id, err)
		}
		h.tasks[id] = lt
	}
	return nil
}

// Clock is the harness's processing-time clock.
func (h *Harness) Clock() *Clock { return h.clock }

// Tasks are the ids of the job's tasks, by stage, then partition.
func (h *Harness) Tasks() []engine.TaskID { return slices.Clone(h.ids) }

// Produce is where the tasks' outputs go: outputs (sinks', and changelog
// records) are kept for Output, copied, repartition records are queued
// for the next stage. Outputs get the partition and offset Kafka would give them.
func (h *Harness) Produce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	if h.internal[r.Topic] {
		h.queue = append(h.queue, r)
	} else {
		r.Partition = h.partitionOf(r)
		l := h.outputs[r.Topic]
		if l == nil {
			l = &outputLog{next: map[int32]int64{}}
			h.outputs[r.Topic] = l
		}
		r.Offset = l.next[r.Partition]
		l.next[r.Partition]++
		// A copy: the producer may reuse r once its promise has run, as
		// the engine does with its changelog records.
		kept := *r
		l.recs = append(l.recs, &kept)
	}
	promise(r, nil)
}

// partitionOf is where a running job's producer would put r: its own
// partitioner (murmur2 of the key, watermark control records where they
// say), partition 0 for a record without a key.
func (h *Harness) partitionOf(r *kgo.Record) int32 {
	if r.Key == nil && r.Context == nil {
		return 0 // the job's producer would spread these at random; a harness repeats
	}
	return int32(h.topicPartitioner(r.Topic).Partition(r, int(h.top.Partitions)))
}

func (h *Harness) topicPartitioner(topic string) kgo.TopicPartitioner {
	tp, ok := h.parts[topic]
	if !ok {
		tp = h.part.ForTopic(topic)
		h.parts[topic] = tp
	}
	return tp
}

// SendBytes pushes one record, its key and value as bytes, into a source
// topic, in the partition murmur2 of key picks (partition 0 without a
// key), with ts as its Kafka timestamp, and runs it through every stage.
// It returns the error that stopped a task, if any. SendValue encodes the
// value for you.
func (h *Harness) SendBytes(topic string, key, value []byte, ts time.Time) error {
	r := &kgo.Record{Topic: topic, Key: key, Value: value, Timestamp: ts}
	r.Partition = h.partitionOf(r)
	return h.send(r)
}

// SendValue encodes v with c and sends it under key.
func SendValue[T any](h *Harness, topic string, c codec.Codec[T], key string, v T, ts time.Time) error {
	b, err := c.Encode(v)
	if err != nil {
		return fmt.Errorf("weirtest: encoding %v: %w", v, err)
	}
	var k []byte
	if key != "" {
		k = []byte(key)
	}
	return h.SendBytes(topic, k, b, ts)
}

// SendBatch pushes records into a source topic as one fetch brings them:
// each partition's records (the partition SendBytes would pick for each)
// go through its task in one batch, in order, and only then do the tasks
// tick. Operators that hold records between ticks (operators.Combine,
// TwoPhaseWindowAggregate's first phase) see them together, and the
// watermark moves record by record within the batch, as in a running job.
// The records are copied.
func (h *Harness) SendBatch(topic string, recs ...*kgo.Record) error {
	if _, ok := h.top.StageOf(topic); !ok {
		return fmt.Errorf("weirtest: the job reads no topic %q", topic)
	}
	batch := make([]*kgo.Record, len(recs))
	for i, r := range recs {
		c := *r
		c.Topic, c.Key, c.Value = topic, bytes.Clone(r.Key), bytes.Clone(r.Value)
		c.Partition = h.partitionOf(&c)
		batch[i] = &c
	}
	h.recovery.log(event{records: batch})
	return h.deliverBatch(cloneRecords(batch))
}

// deliverBatch runs a batch of one topic's records through the tasks of
// their partitions, each partition's in one Process call, then settles.
func (h *Harness) deliverBatch(batch []*kgo.Record) error {
	if len(batch) == 0 {
		return nil
	}
	topic := batch[0].Topic
	stage, ok := h.top.StageOf(topic)
	if !ok {
		return fmt.Errorf("weirtest: the job reads no topic %q", topic)
	}
	if h.offsets[topic] == nil {
		h.offsets[topic] = map[int32]int64{}
	}
	for _, r := range batch {
		r.Offset = h.offsets[topic][r.Partition]
		h.offsets[topic][r.Partition]++
	}
	for len(batch) > 0 {
		// The first record's partition, then the rest, in order.
		p := batch[0].Partition
		var mine, rest []*kgo.Record
		for _, r := range batch {
			if r.Partition == p {
				mine = append(mine, r)
			} else {
				rest = append(rest, r)
			}
		}
		if err := h.tasks[engine.TaskID{Stage: stage, Partition: p}].Process(topic, mine); err != nil {
			return err
		}
		batch = rest
	}
	return h.settle()
}

func (h *Harness) deliver(r *kgo.Record) error { return h.deliverBatch([]*kgo.Record{r}) }

// settle delivers queued repartition records and lets every task tell
// the stages downstream where its watermark is, until nothing moves.
func (h *Harness) settle() error {
	for {
		for _, id := range h.ids {
			if err := h.tasks[id].Tick(); err != nil {
				return err
			}
		}
		if len(h.queue) == 0 {
			return nil
		}
		q := h.queue
		h.queue = nil
		for _, r := range q {
			r.Partition = h.partitionOf(r)
			if err := h.deliver(r); err != nil {
				return err
			}
		}
	}
}

// AdvanceTime moves processing time forward by d: processing-time timers
// it passes fire and idle inputs stop holding watermarks back.
func (h *Harness) AdvanceTime(d time.Duration) error {
	h.clock.Advance(d)
	return h.settle()
}

// AdvanceWatermark moves the watermark of every task of the first stage
// to wm, as if every input partition had reported it (Flink's harness
// processWatermark), and lets it flow downstream: event-time timers it
// passes fire.
func (h *Harness) AdvanceWatermark(wm time.Time) error {
	h.recovery.log(event{watermark: wm})
	return h.advanceWatermark(wm)
}

// AdvanceInputWatermark raises the watermark of one source topic (which
// must have a watermark strategy) to wm in every task reading it, as that
// input emitting a watermark would: Flink's processWatermark1 and
// processWatermark2 of a two-input harness. A task's watermark is the
// least of its inputs', so a join or a union moves only when each input
// has.
func (h *Harness) AdvanceInputWatermark(topic string, wm time.Time) error {
	h.recovery.log(event{input: topic, watermark: wm})
	return h.inputEvent(topic, wm, false)
}

// MarkInputIdle marks one source topic idle in every task reading it,
// until its next record: it stops holding the watermark back, as an idle
// input does (Flink's markIdle, a harness's processWatermarkStatus).
func (h *Harness) MarkInputIdle(topic string) error {
	h.recovery.log(event{input: topic, idle: true})
	return h.inputEvent(topic, time.Time{}, true)
}

// EndInput ends the job's input, as a run bounded by WEIR_UNTIL does when
// every source partition reaches its stop (Flink's end of a bounded
// source): each task moves its watermark to the maximum, which fires every
// event-time window and timer, the stages downstream follow, and
// processing-time timers stop firing. Records sent afterwards are
// processed, but no timer fires for them.
func (h *Harness) EndInput() error {
	h.recovery.log(event{end: true})
	return h.endInput()
}

func (h *Harness) endInput() error {
	internal := map[string]bool{}
	for _, topic := range h.top.Internal {
		internal[topic] = true
	}
	for _, id := range h.ids {
		var sources []string
		for topic, stage := range h.top.Readers {
			if stage == id.Stage && !internal[topic] {
				sources = append(sources, topic)
			}
		}
		slices.Sort(sources)
		if err := h.tasks[id].EndInput(sources...); err != nil {
			return err
		}
	}
	return h.settle()
}

func (h *Harness) inputEvent(topic string, wm time.Time, idle bool) error {
	stage, ok := h.top.StageOf(topic)
	if !ok {
		return fmt.Errorf("weirtest: the job reads no topic %q", topic)
	}
	for _, id := range h.ids {
		if id.Stage != stage {
			continue
		}
		var err error
		if idle {
			err = h.tasks[id].MarkInputIdle(topic)
		} else {
			err = h.tasks[id].AdvanceInputWatermark(topic, wm)
		}
		if err != nil {
			return err
		}
	}
	return h.settle()
}

func (h *Harness) advanceWatermark(wm time.Time) error {
	for _, id := range h.ids {
		if id.Stage == 0 {
			if err := h.tasks[id].AdvanceWatermark(wm); err != nil {
				return err
			}
		}
	}
	return h.settle()
}

// Checkpoint takes a checkpoint of every task, as a running job does,
// and commits it at once: each task writes its state's changes to its
// changelog topics and commits them to the (in-memory) store, and
// everything the job wrote so far is committed, changelogs included.
// Crash goes back to the last Checkpoint that succeeded. Checkpointing a
// task that failed is an error: a running job stops instead.
func (h *Harness) Checkpoint() error {
	h.cpID++
	for _, id := range h.ids {
		if err := h.tasks[id].Checkpoint(h.cpID); err != nil {
			return fmt.Errorf("weirtest: checkpoint of task %s: %w", id, err)
		}
	}
	return h.committed()
}

// ReadOutput reads the records the job wrote to topic since the last
// read, as a consumer does (each record is read once), in the order they
// were written, with the partition a running job's producer would have
// chosen. It reads as a read_uncommitted consumer does: records not yet
// committed by a Checkpoint are read too, and after a Crash, which aborts
// them, the replay's records are read again. CommittedOutput returns
// everything committed so far, every time.
func (h *Harness) ReadOutput(topic string) []*kgo.Record {
	l := h.outputs[topic]
	if l == nil {
		return nil
	}
	out := l.recs[l.read:]
	l.read = len(l.recs)
	if len(out) == 0 {
		return nil
	}
	return slices.Clip(out)
}

// Record is a decoded output record.
type Record[T any] struct {
	Key       string
	Value     T
	Timestamp time.Time
	Partition int32
}

// ReadOutputs reads and decodes what sinks wrote to topic since the last
// read (see ReadOutput).
func ReadOutputs[T any](h *Harness, topic string, c codec.Codec[T]) []Record[T] {
	h.tb.Helper()
	return decode(h, topic, c, h.ReadOutput(topic))
}

// Outputs is ReadOutputs.
//
// Deprecated: the name did not say that it drains; use ReadOutputs.
func Outputs[T any](h *Harness, topic string, c codec.Codec[T]) []Record[T] {
	h.tb.Helper()
	return ReadOutputs(h, topic, c)
}

// Output is ReadOutput.
//
// Deprecated: the name did not say that it drains; use ReadOutput.
func (h *Harness) Output(topic string) []*kgo.Record { return h.ReadOutput(topic) }

// Send is SendBytes.
//
// Deprecated: use SendBytes, or SendValue.
func (h *Harness) Send(topic string, key, value []byte, ts time.Time) error {
	return h.SendBytes(topic, key, value, ts)
}

func decode[T any](h *Harness, topic string, c codec.Codec[T], recs []*kgo.Record) []Record[T] {
	h.tb.Helper()
	var out []Record[T]
	for _, r := range recs {
		v, err := c.Decode(r.Value)
		if err != nil {
			h.tb.Fatalf("weirtest: decoding output %s@%d: %v", topic, r.Partition, err)
		}
		out = append(out, Record[T]{Key: string(r.Key), Value: v, Timestamp: r.Timestamp, Partition: r.Partition})
	}
	return out
}

// Watermark is the event-time watermark of a task; the zero time before any.
func (h *Harness) Watermark(id engine.TaskID) time.Time { return h.tasks[id].Watermark() }

// Scope returns the state scope of key (encoded, as the keyed stream's key
// codec writes it) in stage: pass it to a state handle to read the key's
// state as the operator would. Window operators keep their accumulators
// and session lists in memory until a checkpoint writes them to the
// store: read those after Checkpoint.
func (h *Harness) Scope(stage int, key []byte) state.Scope {
	r := &kgo.Record{Key: key}
	p := int32(0)
	if key != nil {
		p = int32(h.topicPartitioner("").Partition(r, int(h.top.Partitions)))
	}
	return scope{store: h.tasks[engine.TaskID{Stage: stage, Partition: p}].Store(), key: key, clock: h.clock}
}

type scope struct {
	store *state.TaskStore
	key   []byte
	clock *Clock
}

func (s scope) TaskStore() *state.TaskStore { return s.store }
func (s scope) CurrentKey() []byte          { return s.key }
func (s scope) Namespace() []byte           { return nil }
func (s scope) ProcessingTime() time.Time   { return s.clock.Now() }

// SendBytesTo is SendBytes into an explicit partition, as a producer
// choosing its partition would.
func (h *Harness) SendBytesTo(topic string, partition int32, key, value []byte, ts time.Time) error {
	return h.send(&kgo.Record{Topic: topic, Partition: partition, Key: key, Value: value, Timestamp: ts})
}

// send delivers a record sent into a source topic, noting it for Crash
// to replay.
func (h *Harness) send(r *kgo.Record) error {
	if _, ok := h.top.StageOf(r.Topic); !ok {
		return fmt.Errorf("weirtest: the job reads no topic %q", r.Topic)
	}
	// Copied, as a producer copies: the caller may reuse its slices, which
	// outputs (a sink's key) would share.
	c := *r
	c.Key, c.Value = bytes.Clone(r.Key), bytes.Clone(r.Value)
	h.recovery.log(event{records: []*kgo.Record{&c}})
	d := c
	return h.deliver(&d)
}
