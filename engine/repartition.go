package engine

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/codec"
)

// Repartition ends in's stage: each record is written, under the key
// key(v) returns and with its event time, to an internal topic of the job,
// partitioned by murmur2 of that key, and read back by a new stage. Every
// record of a key then lands in one task of the new stage, whichever task
// of in's stage produced it. The topic is <group>-<name>-repartition,
// created by Weir with as many partitions as in's stage has. name is the
// operator's own (see Derive).
//
// Records of one key keep their order through the topic when they come
// from one task of in's stage; records of one key from different input
// partitions had no order to begin with.
func Repartition[T any](in Stream[T], name string, key func(T) ([]byte, error), c codec.Codec[T]) Stream[T] {
	return RepartitionInto(in, name, key, c, in.job.NewStage())
}

// RepartitionInto is Repartition into a given stage (from NewStage), so
// that several streams repartitioned by the same key are read by one
// stage, in the same tasks: what a two-input keyed operator (a join)
// needs.
func RepartitionInto[T any](in Stream[T], name string, key func(T) ([]byte, error), c codec.Codec[T], to int) Stream[T] {
	job := in.job
	out := newStageStream[T](job, name, to)
	out.n.eventTime = in.n.eventTime // watermarks cross as control records
	src := name + "-source"
	it := job.addInternalSource(name+"-repartition", in.n.stage, to, src, func(t *Task) (SourceFunc, error) {
		stats := t.Stats(src)
		down, err := out.Build(t)
		if err != nil {
			return nil, err
		}
		return func(r *kgo.Record) error {
			if wm, ok := watermarkHeader(r); ok {
				if err := t.onControl(r, wm); err != nil {
					return &OperatorError{Operator: src, Err: fmt.Errorf("watermark control record: %w", err)}
				}
				return nil
			}
			stats.In++
			v, err := c.Decode(r.Value)
			if err != nil {
				return &OperatorError{Operator: src, Err: fmt.Errorf("decoding repartitioned value: %w", err)}
			}
			stats.Out++
			return down(Record[T]{Key: r.Key, Value: v, Timestamp: r.Timestamp})
		}, nil
	})
	sink := name + "-sink"
	in.Subscribe(func(t *Task) (Emit[T], error) {
		stats := t.Stats(sink)
		topic := it.Name()
		return func(r Record[T]) error {
			stats.In++
			k, err := key(r.Value)
			if err != nil {
				return &OperatorError{Operator: name, Err: fmt.Errorf("extracting key: %w", err)}
			}
			b, err := c.Encode(r.Value)
			if err != nil {
				return &OperatorError{Operator: name, Err: fmt.Errorf("encoding value: %w", err)}
			}
			t.Produce(&kgo.Record{Topic: topic, Key: k, Value: b, Timestamp: r.Timestamp, Headers: t.originHeader()})
			stats.Out++
			return nil
		}, nil
	})
	return out
}

// HeaderOrigin is on every record a task writes to a repartition topic:
// which task wrote it, named by one of its input partitions, and in which
// checkpoint ("<topic>:<partition>@<checkpoint>"). A record is committed
// at most as of that checkpoint, so a tool that reads a running job's
// offsets at one instant can tell the records in flight between stages
// that the instant's offsets account for (weir savepoint create).
const HeaderOrigin = "weir.origin"

// originHeader returns the task's HeaderOrigin header for what it writes
// now. It changes only with the checkpoint, so it is built once per
// checkpoint and shared by the records of that checkpoint (none changes
// its headers; an append, as provenance's, copies: the slice is full).
func (t *Task) originHeader() []kgo.RecordHeader {
	if t.origin.hdr != nil && t.origin.cp == t.cp {
		return t.origin.hdr
	}
	if t.origin.prefix == nil {
		topics := slices.Sorted(slices.Values(t.job.stageTopics(t.id.Stage)))
		if len(topics) > 0 {
			t.origin.prefix = fmt.Appendf(nil, "%s:%d@", topics[0], t.id.Partition)
		}
	}
	v := strconv.AppendInt(slices.Clip(t.origin.prefix), t.cp, 10)
	t.origin.hdr, t.origin.cp = []kgo.RecordHeader{{Key: HeaderOrigin, Value: v}}, t.cp
	return t.origin.hdr
}

// ParseOrigin parses a HeaderOrigin value: the input partition that names
// the writing task, and the checkpoint the record belongs to.
func ParseOrigin(v []byte) (topic string, partition int32, checkpoint int64, err error) {
	s := string(v)
	at := strings.LastIndexByte(s, '@')
	colon := strings.LastIndexByte(s[:max(at, 0)], ':')
	if at < 0 || colon < 0 {
		return "", 0, 0, fmt.Errorf("origin %q: want <topic>:<partition>@<checkpoint>", s)
	}
	p, err := strconv.ParseInt(s[colon+1:at], 10, 32)
	if err != nil {
		return "", 0, 0, fmt.Errorf("origin %q: partition: %w", s, err)
	}
	cp, err := strconv.ParseInt(s[at+1:], 10, 64)
	if err != nil {
		return "", 0, 0, fmt.Errorf("origin %q: checkpoint: %w", s, err)
	}
	return s[:colon], int32(p), cp, nil
}
