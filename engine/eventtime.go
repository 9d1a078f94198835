package engine

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/windowing"
)

// Event time in a task. Each input with a watermark strategy (a partition
// of a source topic) has a generator; each repartition topic has one input
// per upstream task, fed by the watermark control records those tasks
// write. The task's watermark is the combiner's: the minimum over inputs
// that are not idle, never going back. It advances after the record that
// moved it has gone through the chain, so a record is never late against
// a watermark it raised itself; event-time timers fire as it passes them,
// and stages downstream hear of it through control records.

// watermarkInterval bounds how often a task tells the stages downstream
// that its watermark moved: per record would double the repartition
// traffic, and they only need to follow, not keep step.
const watermarkInterval = 100 * time.Millisecond

// controlRecord marks records carrying watermarks, which go to an explicit
// partition; everything else is partitioned by key.
var controlRecord = context.WithValue(context.Background(), controlKey{}, true)

type controlKey struct{}

// eventTime is a task's event-time state.
type eventTime struct {
	comb       *windowing.Combiner[string]
	generators map[string]*windowing.Generator // by source topic
	// lastTopic and lastGen are the last lookup in generators: a batch's
	// records are all of one topic.
	lastTopic string
	lastGen   *windowing.Generator
	// upstream names the inputs of repartition topics: topic -> task -> id.
	upstream map[string]map[int32]string
	// downstream are the repartition topics this task writes, with their
	// partition counts, to tell of watermark moves.
	downstream map[string]int32
	sentWM     windowing.Millis
	sentAt     time.Time
	sentIdle   bool
	// reported is what the observer last heard, once it heard anything.
	reported     bool
	reportedWM   int64
	reportedIdle bool
	hasInputs    bool
}

func newEventTime() *eventTime {
	return &eventTime{
		comb:       windowing.NewCombiner[string](),
		generators: map[string]*windowing.Generator{},
		upstream:   map[string]map[int32]string{},
		downstream: map[string]int32{},
		sentWM:     windowing.MinWatermark,
	}
}

// AddWatermarkInput makes the task track event time on topic with gen,
// for source connectors. Call it while the task is being built.
func (t *Task) AddWatermarkInput(topic string, gen *windowing.Generator) error {
	if _, ok := t.et.generators[topic]; ok {
		return fmt.Errorf("topic %s has two watermark generators", topic)
	}
	t.et.generators[topic] = gen
	t.et.hasInputs = true
	return t.et.comb.AddGenerator(topic, gen)
}

// ObserveEventTime reports the event time of a record of topic that the
// chain has just processed; the task's watermark may advance and fire
// timers. It reads no clock: idleness, which only time brings, is the
// tick's to notice (Generator.Observe), and a clock read per record was
// a twentieth of a window operator's time.
func (t *Task) ObserveEventTime(topic string, ts time.Time) error {
	et := t.et
	gen := et.lastGen
	if gen == nil || topic != et.lastTopic {
		gen = et.generators[topic]
		if gen == nil {
			return nil
		}
		et.lastTopic, et.lastGen = topic, gen
	}
	gen.Observe(windowing.MillisOf(ts))
	wm, moved := t.et.comb.AdvanceWithoutClock()
	if !moved {
		return nil
	}
	return t.advanceWatermark(int64(wm))
}

// addUpstream declares the n upstream tasks writing repartition topic:
// until each has told its watermark, the task's watermark holds.
func (t *Task) addUpstream(topic string, n int32) error {
	ids := make(map[int32]string, n)
	for p := range n {
		id := fmt.Sprintf("%s/%d", topic, p)
		ids[p] = id
		if err := t.et.comb.AddInput(id); err != nil {
			return err
		}
	}
	t.et.upstream[topic] = ids
	t.et.hasInputs = true
	return nil
}

// onControl applies a watermark control record read from a repartition topic.
func (t *Task) onControl(r *kgo.Record, value []byte) error {
	w, err := windowing.DecodeWatermark(value)
	if err != nil {
		return err
	}
	id, ok := t.et.upstream[r.Topic][w.Task]
	if !ok {
		return fmt.Errorf("watermark from upstream task %d of %s, which has %d", w.Task, r.Topic, len(t.et.upstream[r.Topic]))
	}
	if err := t.et.comb.Update(id, w.Watermark, w.Idle); err != nil {
		return err
	}
	if err := t.advance(); err != nil {
		return err
	}
	return t.maybeFinish()
}

// taskWatermarkKey is where saveEventTime keeps the task's own watermark:
// not a topic name, which cannot hold a '!', nor a short one ("~" and the
// rest of a topic named <group>-<rest>).
const taskWatermarkKey = "!task"

// saveEventTime returns the task's event-time state by input topic, as a
// checkpoint records it (commitMeta): a source partition's highest event
// time; a repartition topic's last watermark from each upstream task, in
// task order, "!" marking an idle one; and under taskWatermarkKey the
// task's watermark itself.
func (t *Task) saveEventTime() map[string]string {
	m := map[string]string{}
	if t.watermark != minWatermark {
		m[taskWatermarkKey] = strconv.FormatInt(t.watermark, 10)
	}
	for topic, g := range t.et.generators {
		if ms := g.MaxSeen(); ms != windowing.MinWatermark {
			m[topic] = strconv.FormatInt(int64(ms), 10)
		}
	}
	for topic, ids := range t.et.upstream {
		var b []byte
		known := false
		for p := range int32(len(ids)) {
			wm, idle, _ := t.et.comb.Reported(ids[p])
			if p > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(wm), 10)
			if idle {
				b = append(b, '!')
			}
			known = known || wm != windowing.MinWatermark
		}
		if known {
			m[topic] = string(b)
		}
	}
	return m
}

// restoreEventTime resumes the event time a checkpoint saved: a restarted
// task starts where its last checkpoint left event time, not at the
// beginning, or an input with nothing more to read would hold its
// watermark, and every watermark downstream, back for ever. State the
// topology no longer matches (a topic gone, another upstream count) is
// skipped.
//
// The task's watermark is set as it was, without firing anything: a timer
// registered behind the watermark (due, not fired until the watermark next
// moves) must stay that way, or a restart would fire it early and change
// the output. From there the watermark moves at the task's next record or
// tick.
func (t *Task) restoreEventTime(saved map[string]string) error {
	now := t.clock.Now()
	for topic, s := range saved {
		if topic == taskWatermarkKey {
			wm, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return fmt.Errorf("task watermark %q: %w", s, err)
			}
			t.watermark = max(t.watermark, wm)
			continue
		}
		if g, ok := t.et.generators[topic]; ok {
			ms, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return fmt.Errorf("event time of %s %q: %w", topic, s, err)
			}
			g.OnEvent(windowing.Millis(ms), now)
			continue
		}
		ids, ok := t.et.upstream[topic]
		if !ok {
			continue
		}
		parts := strings.Split(s, ",")
		if len(parts) != len(ids) {
			continue
		}
		for p, v := range parts {
			v, idle := strings.CutSuffix(v, "!")
			ms, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return fmt.Errorf("event time of %s %q: %w", topic, s, err)
			}
			if err := t.et.comb.Update(ids[int32(p)], windowing.Millis(ms), idle); err != nil {
				return err
			}
		}
	}
	return nil
}

// advance moves the task's watermark to the combiner's, firing timers.
func (t *Task) advance() error { return t.advanceAt(t.clock.Now()) }

// advanceAt is advance with the clock read at now.
func (t *Task) advanceAt(now time.Time) error {
	wm, moved := t.et.comb.Advance(now)
	if !moved {
		return nil
	}
	return t.advanceWatermark(int64(wm))
}

// tick runs on the task's timer: idleness, processing-time timers and
// telling downstream stages where event time is.
func (t *Task) tick() error {
	if err := t.flushInFlight(false); err != nil {
		return err
	}
	if err := t.advance(); err != nil {
		return err
	}
	if err := t.maybeFinish(); err != nil {
		return err
	}
	if !t.finished { // a finished task's processing-time timers wait for a later run
		if err := t.fireProcessingTimers(); err != nil {
			return err
		}
	}
	t.sendWatermark(false)
	t.reportWatermark()
	return nil
}

// reportWatermark tells the observer the task's watermark and idleness
// when they changed since it last did.
func (t *Task) reportWatermark() {
	if !t.et.hasInputs {
		return
	}
	idle := t.et.comb.AllIdle()
	if t.et.reported && t.watermark == t.et.reportedWM && idle == t.et.reportedIdle {
		return
	}
	t.et.reported, t.et.reportedWM, t.et.reportedIdle = true, t.watermark, idle
	t.obs.Watermark(t.id.String(), watermarkTime(t.watermark), idle)
}

// sendWatermark writes the task's watermark to every partition of the
// repartition topics it feeds, when it moved (or went idle) and the last
// send is older than watermarkInterval, or when forced (at barriers).
func (t *Task) sendWatermark(force bool) {
	if len(t.et.downstream) == 0 {
		return
	}
	wm, idle := windowing.Millis(t.watermark), t.et.comb.AllIdle()
	if wm == t.et.sentWM && idle == t.et.sentIdle {
		return
	}
	now := t.clock.Now()
	if !force && now.Sub(t.et.sentAt) < watermarkInterval {
		return
	}
	key, val := windowing.EncodeWatermark(windowing.UpstreamWatermark{Task: t.id.Partition, Watermark: wm, Idle: idle})
	origin := t.originHeader()[0]
	for topic, n := range t.et.downstream {
		for p := range n {
			t.Produce(&kgo.Record{
				Topic: topic, Partition: p, Context: controlRecord,
				Headers: []kgo.RecordHeader{{Key: key, Value: val}, origin},
			})
		}
	}
	t.et.sentWM, t.et.sentIdle, t.et.sentAt = wm, idle, now
}

// watermarkHeader returns the watermark control value of r, if r is one.
func watermarkHeader(r *kgo.Record) ([]byte, bool) {
	for _, h := range r.Headers {
		if h.Key == windowing.WatermarkHeaderKey {
			return h.Value, true
		}
	}
	return nil, false
}

// Partitioner is the partitioner a running job produces with, for
// harnesses that must place records as the job would.
func Partitioner() kgo.Partitioner { return partitioner{kgo.StickyKeyPartitioner(nil)} }

// partitioner partitions by key with murmur2 (the Java client's default,
// franz-go's StickyKeyPartitioner), except watermark control records,
// which name their partition.
type partitioner struct{ inner kgo.Partitioner }

func (p partitioner) ForTopic(topic string) kgo.TopicPartitioner {
	return &topicPartitioner{inner: p.inner.ForTopic(topic)}
}

type topicPartitioner struct{ inner kgo.TopicPartitioner }

func (p *topicPartitioner) RequiresConsistency(r *kgo.Record) bool {
	return r.Context == controlRecord || p.inner.RequiresConsistency(r)
}

func (p *topicPartitioner) Partition(r *kgo.Record, n int) int {
	if r.Context == controlRecord {
		return int(r.Partition)
	}
	return p.inner.Partition(r, n)
}

func (p *topicPartitioner) OnNewBatch() {
	if nb, ok := p.inner.(kgo.TopicPartitionerOnNewBatch); ok {
		nb.OnNewBatch()
	}
}
