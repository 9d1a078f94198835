package engine

import (
	"fmt"

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
			t.Produce(&kgo.Record{Topic: topic, Key: k, Value: b, Timestamp: r.Timestamp})
			stats.Out++
			return nil
		}, nil
	})
	return out
}
