package engine

// This file owns bounded runs (Config.Until): where each source partition
// ends, telling a task that its input ended, and stopping the replica once
// every task has finished and its work is committed.
//
// A source partition ends at its stop offset, fixed when the replica
// starts. The poll loop hands a task the records below it, then an end
// marker in the same queue, so the task sees it after the last record. A
// partition whose last records below the stop are transaction markers (or
// were compacted away) never delivers the record before it: when it has
// been quiet for a while, the loop asks Kafka whether a committed record
// remains below the stop, as a restore does.
//
// A task ends when each of its source partitions has ended and each
// upstream task of its repartition topics has sent the maximum watermark:
// it moves its own watermark to the maximum, firing every event-time
// window and timer, and tells its downstream stages so (Flink's
// MAX_WATERMARK at the end of a bounded source). Processing-time timers
// stop firing there, as Flink quiesces them at the end of input; they stay
// in the state for a later unbounded run.

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/weirstream/weir/windowing"
)

// boundQuiet is how long a source partition below its stop offset fetches
// nothing before the poll loop asks Kafka whether anything remains below.
const boundQuiet = 500 * time.Millisecond

// bounds is a bounded run's ends.
type bounds struct {
	// stop is, per source topic and partition, the offset of the first
	// record not to process; start, the partition's log start offset
	// when the run began (where a partition without a committed offset
	// is read from).
	stop, start map[string]map[int32]int64
}

// taskBound is a task runner's progress towards its stops; only the poll
// loop touches it.
type taskBound struct {
	// next is, per source topic, the offset after the last record handed
	// to the task; ended, the topics whose end marker went.
	next      map[string]int64
	ended     map[string]bool
	lastFetch map[string]time.Time
}

// resolveBounds fixes where each source partition ends, from Config.Until.
func (rt *runtime) resolveBounds(ctx context.Context) error {
	end, at, err := parseUntil(rt.cfg.Until)
	if err != nil || (!end && at.IsZero()) {
		return err
	}
	topics := rt.job.userSourceTopics()
	// Its own client: the job's joins the group at once, and its tasks
	// must find the ends fixed when they start.
	cl, err := kgo.NewClient(append(slices.Clone(rt.cfg.kgoOpts), kgo.SeedBrokers(rt.cfg.Brokers...), kgo.WithLogger(kgoLogger{rt.log}))...)
	if err != nil {
		return fmt.Errorf("%w: kafka client: %w", ErrConfig, err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	list := func(what string, fn func(context.Context) (kadm.ListedOffsets, error)) (map[string]map[int32]int64, error) {
		var lo kadm.ListedOffsets
		err := rt.retryTransient(ctx, what, func(ctx context.Context) error {
			var err error
			if lo, err = fn(ctx); err == nil {
				err = lo.Error()
			}
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("bounded run: %s: %w", what, err)
		}
		m := map[string]map[int32]int64{}
		lo.Each(func(o kadm.ListedOffset) {
			if m[o.Topic] == nil {
				m[o.Topic] = map[int32]int64{}
			}
			m[o.Topic][o.Partition] = o.Offset
		})
		return m, nil
	}
	var b bounds
	if end {
		b.stop, err = list("listing the sources' end offsets", func(ctx context.Context) (kadm.ListedOffsets, error) {
			return adm.ListCommittedOffsets(ctx, topics...)
		})
	} else {
		b.stop, err = list("listing the sources' offsets at "+rt.cfg.Until, func(ctx context.Context) (kadm.ListedOffsets, error) {
			return adm.ListOffsetsAfterMilli(ctx, at.UnixMilli(), topics...)
		})
	}
	if err != nil {
		return err
	}
	if b.start, err = list("listing the sources' start offsets", func(ctx context.Context) (kadm.ListedOffsets, error) {
		return adm.ListStartOffsets(ctx, topics...)
	}); err != nil {
		return err
	}
	rt.bounds = &b
	rt.log.Info("bounded run: the job stops once every source partition reached its end", zap.String("until", rt.cfg.Until), zap.Any("ends", b.stop))
	return nil
}

// boundBatch cuts a fetched batch of a bounded source at its stop offset,
// and reports whether the partition reached it. It runs in the poll loop.
func (rt *runtime) boundBatch(tr *taskRunner, p kgo.FetchTopicPartition) ([]*kgo.Record, bool) {
	stop, ok := rt.bounds.stop[p.Topic][p.Partition]
	if !ok {
		return p.Records, false
	}
	b := tr.boundState()
	if b.ended[p.Topic] {
		return nil, true
	}
	rs := p.Records
	i, _ := slices.BinarySearchFunc(rs, stop, func(r *kgo.Record, stop int64) int {
		switch {
		case r.Offset < stop:
			return -1
		case r.Offset > stop:
			return 1
		}
		return 0
	})
	reached := i < len(rs)
	rs = rs[:i]
	if len(rs) > 0 {
		b.next[p.Topic] = rs[len(rs)-1].Offset + 1
		b.lastFetch[p.Topic] = time.Now()
		reached = reached || b.next[p.Topic] >= stop
	}
	return rs, reached
}

// endPartitionLocked hands the task its input's end marker and stops fetching the
// partition. It runs in the poll loop, holding rt.mu.
func (rt *runtime) endPartitionLocked(tr *taskRunner, topic string, p int32) {
	b := tr.boundState()
	if b.ended[topic] {
		return
	}
	b.ended[topic] = true
	rt.cl.PauseFetchPartitions(map[string][]int32{topic: {p}})
	tr.in.push(batch{topic: topic, end: true, highWatermark: -1})
}

// checkQuietBounds ends the source partitions of active tasks that have
// nothing left below their stop: empty from the start, or with only
// transaction markers or compacted-away records between the last record
// read and the stop. It runs in the poll loop.
func (rt *runtime) checkQuietBounds(ctx context.Context) {
	if rt.bounds == nil {
		return
	}
	rt.mu.Lock()
	trs := slices.Collect(maps.Values(rt.mu.tasks))
	rt.mu.Unlock()
	for _, tr := range trs {
		if !tr.active {
			continue
		}
		b := tr.boundState()
		for _, topic := range rt.job.stageTopics(tr.id.Stage) {
			stop, ok := rt.bounds.stop[topic][tr.id.Partition]
			if !ok || b.ended[topic] {
				continue
			}
			from, read := b.next[topic]
			if !read {
				from = rt.bounds.start[topic][tr.id.Partition]
				if eo, ok := tr.committed[topic]; ok {
					from = max(from, eo.Offset)
				} else if rt.cfg.StartOffset == "latest" {
					from = stop
				}
			}
			if from < stop {
				if time.Since(b.lastFetch[topic]) < boundQuiet {
					continue
				}
				b.lastFetch[topic] = time.Now() // ask again after boundQuiet
				remain, _, err := committedRecordsRemain(ctx, rt.cl, topic, tr.id.Partition, from, stop)
				if err != nil {
					rt.log.Debug("asking whether records remain below a bounded source's end", zap.String("topic", topic), zap.Error(err))
					continue
				}
				if remain {
					continue
				}
			}
			rt.mu.Lock()
			if rt.mu.tasks[tr.id] == tr {
				rt.endPartitionLocked(tr, topic, tr.id.Partition)
			}
			rt.mu.Unlock()
		}
	}
}

// boundedDone reports whether a bounded run is over on this replica: it
// runs tasks and every one has ended.
func (rt *runtime) boundedDone() bool {
	if rt.bounds == nil {
		return false
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if len(rt.mu.tasks) == 0 {
		return false
	}
	for _, tr := range rt.mu.tasks {
		if !tr.finished.Load() {
			return false
		}
	}
	return true
}

// boundState returns the runner's progress towards its stops.
func (r *taskRunner) boundState() *taskBound {
	if r.bound == nil {
		r.bound = &taskBound{next: map[string]int64{}, ended: map[string]bool{}, lastFetch: map[string]time.Time{}}
	}
	return r.bound
}

// endInput ends source topic's input of the task (a bounded run reached
// its stop), and finishes the task if that was the last input.
func (t *Task) endInput(topic string) error {
	t.ended[topic] = true
	return t.maybeFinish()
}

// maybeFinish finishes a task of a bounded run whose inputs have all
// ended: its watermark goes to the maximum, firing every event-time timer,
// and its downstream stages hear so at once.
func (t *Task) maybeFinish() error {
	if t.finished || !t.bounded {
		return nil
	}
	for topic := range t.sources {
		if _, internal := t.et.upstream[topic]; !internal && !t.ended[topic] {
			return nil
		}
	}
	for _, ids := range t.et.upstream {
		for _, id := range ids {
			if wm, _, _ := t.et.comb.Reported(id); wm != windowing.MaxMillis {
				return nil
			}
		}
	}
	if err := t.flushInFlight(true); err != nil {
		return err
	}
	if t.watermark < int64(windowing.MaxMillis) {
		if err := t.advanceWatermark(int64(windowing.MaxMillis)); err != nil {
			return err
		}
	}
	t.finished = true
	t.sendWatermark(true)
	if t.finishedFlag != nil {
		t.finishedFlag.Store(true)
	}
	t.log.Info("end of input: task finished")
	return nil
}
