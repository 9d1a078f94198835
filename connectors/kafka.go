// Package connectors moves records between Kafka and a job's streams. It
// owns decoding at the source and encoding at the sink; what happens in
// between belongs to operators.
//
// Sinks never write behind the engine's back: every output goes through the
// task that produced it, so the engine commits an input offset only after
// the outputs it caused are acknowledged.
package connectors

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/windowing"
)

// KafkaSource reads topic, decoding each record's value with c. Each
// record keeps its Kafka key and its timestamp as event time. A value that
// does not decode is a poison record, handled by the source's error policy
// (engine.OnError on the stream returned, else the job's): under fail the
// task stops at it with an *engine.RecordError naming its topic, partition
// and offset; dead-letter and skip go on without it.
//
// Every source topic of a job must have the same number of partitions:
// partition n of each belongs to task n.
func KafkaSource[T any](job *engine.Job, topic string, c codec.Codec[T], opts ...SourceOpt) engine.Stream[T] {
	cfg, err := sourceOpts[T](opts)
	if err != nil {
		job.TopologyError(fmt.Errorf("source %s: %w", topic, err))
	}
	if cfg.watermarks != nil {
		if err := cfg.watermarks.Validate(); err != nil {
			job.TopologyError(fmt.Errorf("source %s: %w", topic, err))
		}
	}
	s := engine.NewStream[T](job, "source:"+topic)
	if cfg.watermarks != nil {
		s = s.WithEventTime()
	}
	job.AddSource(topic, s.Name(), func(t *engine.Task) (engine.SourceFunc, error) {
		name := s.Name()
		stats := t.Stats(name)
		down, err := s.Build(t)
		if err != nil {
			return nil, err
		}
		wms := cfg.watermarks
		if wms != nil {
			if err := t.AddWatermarkInput(topic, wms.NewGenerator()); err != nil {
				return nil, err
			}
		}
		g := t.Guard(name, engine.ClassDecode)
		decode := func(b []byte) (T, error) {
			v, err := c.Decode(b)
			if err != nil {
				return v, fmt.Errorf("decoding value: %w", err)
			}
			return v, nil
		}
		return func(r *kgo.Record) error {
			stats.In++
			v, ok, err := engine.Apply(g, decode, r.Value)
			if !ok {
				return err
			}
			stats.Out++
			if wms == nil {
				return down(engine.Record[T]{Key: r.Key, Value: v, Timestamp: r.Timestamp})
			}
			ts := wms.Timestamp(v, r.Timestamp)
			if err := down(engine.Record[T]{Key: r.Key, Value: v, Timestamp: ts}); err != nil {
				return err
			}
			// After the record: it is never late against a watermark it
			// raised itself.
			return t.ObserveEventTime(topic, ts)
		}, nil
	})
	if cfg.rate < 0 {
		job.TopologyError(fmt.Errorf("source %s: rate cap %v records per second: must not be negative", topic, cfg.rate))
	} else if cfg.rate > 0 {
		job.LimitSourceRate(topic, cfg.rate)
	}
	return s
}

// SourceOpt configures a Kafka source.
type SourceOpt func(*sourceOptions)

type sourceOptions struct {
	watermarks any // windowing.WatermarkStrategy[T]
	rate       float64
}

type sourceConfig[T any] struct {
	watermarks *windowing.WatermarkStrategy[T]
	rate       float64
}

// sourceOpts applies opts for a source of T; an option of another type
// (a watermark strategy for other records) is an error.
func sourceOpts[T any](opts []SourceOpt) (sourceConfig[T], error) {
	var o sourceOptions
	for _, opt := range opts {
		opt(&o)
	}
	cfg := sourceConfig[T]{rate: o.rate}
	if o.watermarks != nil {
		wm, ok := o.watermarks.(windowing.WatermarkStrategy[T])
		if !ok {
			var zero T
			return cfg, fmt.Errorf("WithWatermarks got a %T, the source's records are %T", o.watermarks, zero)
		}
		cfg.watermarks = &wm
	}
	return cfg, nil
}

// WithMaxRecordsPerSecond caps how many records per second each replica
// reads from this source (see engine.Config.MaxRecordsPerSecond for the
// cap over all inputs). Fetching pauses while the replica is ahead of it.
func WithMaxRecordsPerSecond(perSecond float64) SourceOpt {
	return func(c *sourceOptions) { c.rate = perSecond }
}

// WithWatermarks gives the source event time: each record's time comes
// from the strategy (an extractor, or the Kafka timestamp), and each input
// partition's watermark trails the highest time seen by the strategy's
// bound. Without it the source has no watermark and event-time timers and
// windows downstream never fire; records keep their Kafka timestamps.
func WithWatermarks[T any](s windowing.WatermarkStrategy[T]) SourceOpt {
	return func(c *sourceOptions) { c.watermarks = s }
}

// SinkOpt configures a Kafka sink.
type SinkOpt func(*sinkOptions)

type sinkOptions struct {
	key            any // func(T) []byte
	headers        any // func(T) []kgo.RecordHeader
	policy         engine.ErrorPolicy
	processingTime bool
}

type sinkConfig[T any] struct {
	key            func(T) []byte
	headers        func(T) []kgo.RecordHeader
	policy         engine.ErrorPolicy
	processingTime bool
}

// sinkOpts applies opts for a sink of T; an option of another type (a key
// function of other records) is an error.
func sinkOpts[T any](opts []SinkOpt) (sinkConfig[T], error) {
	var o sinkOptions
	for _, opt := range opts {
		opt(&o)
	}
	cfg := sinkConfig[T]{policy: o.policy, processingTime: o.processingTime}
	var zero T
	if o.key != nil {
		k, ok := o.key.(func(T) []byte)
		if !ok {
			return cfg, fmt.Errorf("WithKey got a %T, the sink's records are %T", o.key, zero)
		}
		cfg.key = k
	}
	if o.headers != nil {
		h, ok := o.headers.(func(T) []kgo.RecordHeader)
		if !ok {
			return cfg, fmt.Errorf("WithHeaders got a %T, the sink's records are %T", o.headers, zero)
		}
		cfg.headers = h
	}
	return cfg, nil
}

// WithSinkErrorPolicy sets the error policy of the sink, for outputs it
// cannot encode or that are larger than the topic takes (see
// engine.ErrorPolicy): a dead letter is the input record that led to it.
func WithSinkErrorPolicy(p engine.ErrorPolicy) SinkOpt {
	return func(c *sinkOptions) { c.policy = p }
}

// WithProcessingTime stamps each output with the time it is written
// instead of its event time. Outputs carry their event time by default, as
// in Flink and Kafka Streams; a topic that deletes by time (retention.ms)
// then deletes the outputs of a replay of old data soon after they are
// written. Stamp them now when that matters more than their event time
// downstream.
func WithProcessingTime() SinkOpt {
	return func(c *sinkOptions) { c.processingTime = true }
}

// WithKey sets each output's key from its value, instead of the key the
// record carries from its input. The key chooses the output partition.
func WithKey[T any](key func(T) []byte) SinkOpt {
	return func(c *sinkOptions) { c.key = key }
}

// WithHeaders adds headers to each output record.
func WithHeaders[T any](headers func(T) []kgo.RecordHeader) SinkOpt {
	return func(c *sinkOptions) { c.headers = headers }
}

// KafkaSink writes the stream to topic, encoding values with c. The
// partition is chosen from the record key by murmur2, as the Java client's
// default partitioner does, so outputs co-partition with any Java
// producer's; records without a key are spread with sticky batching. The
// topic must exist when the job starts.
func KafkaSink[T any](in engine.Stream[T], topic string, c codec.Codec[T], opts ...SinkOpt) {
	job := in.Job()
	cfg, err := sinkOpts[T](opts)
	if err != nil {
		job.TopologyError(fmt.Errorf("sink %s: %w", topic, err))
	}
	job.AddOutputTopic(topic)
	name := job.UniqueName("sink:" + topic)
	if cfg.policy != "" {
		job.SetErrorPolicy(name, cfg.policy)
	}
	declared := topic
	in.Subscribe(func(t *engine.Task) (engine.Emit[T], error) {
		topic := job.OutputTopic(declared)
		stats := t.Stats(name)
		g := t.Guard(name, engine.ClassEncode)
		check := t.OutputCheck(topic)
		encode := func(v T) (*kgo.Record, error) {
			b, err := c.Encode(v)
			if err != nil {
				return nil, fmt.Errorf("encoding value: %w", err)
			}
			out := &kgo.Record{Topic: topic, Value: b}
			if cfg.key != nil {
				out.Key = cfg.key(v)
			}
			if cfg.headers != nil {
				out.Headers = cfg.headers(v)
			}
			return out, nil
		}
		return func(r engine.Record[T]) error {
			stats.In++
			out, ok, err := engine.Apply(g, encode, r.Value)
			if !ok {
				return err
			}
			if cfg.key == nil {
				out.Key = r.Key
			}
			out.Timestamp = r.Timestamp
			if cfg.processingTime {
				out.Timestamp = t.Now()
			}
			if err := check.Check(out); err != nil {
				return g.Reject(engine.ClassTooLarge, err)
			}
			t.Produce(out)
			stats.Out++
			return nil
		}, nil
	})
}
