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
func KafkaSource[T any](job *engine.Job, topic string, c codec.Codec[T], opts ...SourceOpt[T]) engine.Stream[T] {
	var cfg sourceConfig[T]
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.watermarks != nil {
		if err := cfg.watermarks.Validate(); err != nil {
			job.TopologyError(fmt.Errorf("source %s: %w", topic, err))
		}
	}
	s := engine.NewStream[T](job, "source:"+topic)
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
type SourceOpt[T any] func(*sourceConfig[T])

type sourceConfig[T any] struct {
	watermarks *windowing.WatermarkStrategy[T]
	rate       float64
}

// WithMaxRecordsPerSecond caps how many records per second each replica
// reads from this source (see engine.Config.MaxRecordsPerSecond for the
// cap over all inputs). Fetching pauses while the replica is ahead of it.
func WithMaxRecordsPerSecond[T any](perSecond float64) SourceOpt[T] {
	return func(c *sourceConfig[T]) { c.rate = perSecond }
}

// WithWatermarks gives the source event time: each record's time comes
// from the strategy (an extractor, or the Kafka timestamp), and each input
// partition's watermark trails the highest time seen by the strategy's
// bound. Without it the source has no watermark and event-time timers and
// windows downstream never fire; records keep their Kafka timestamps.
func WithWatermarks[T any](s windowing.WatermarkStrategy[T]) SourceOpt[T] {
	return func(c *sourceConfig[T]) { c.watermarks = &s }
}

// SinkOpt configures a Kafka sink.
type SinkOpt[T any] func(*sinkConfig[T])

type sinkConfig[T any] struct {
	key            func(T) []byte
	headers        func(T) []kgo.RecordHeader
	policy         engine.ErrorPolicy
	processingTime bool
}

// WithSinkErrorPolicy sets the error policy of the sink, for outputs it
// cannot encode or that are larger than the topic takes (see
// engine.ErrorPolicy): a dead letter is the input record that led to it.
func WithSinkErrorPolicy[T any](p engine.ErrorPolicy) SinkOpt[T] {
	return func(c *sinkConfig[T]) { c.policy = p }
}

// WithProcessingTime stamps each output with the time it is written
// instead of its event time. Outputs carry their event time by default, as
// in Flink and Kafka Streams; a topic that deletes by time (retention.ms)
// then deletes the outputs of a replay of old data soon after they are
// written. Stamp them now when that matters more than their event time
// downstream.
func WithProcessingTime[T any]() SinkOpt[T] {
	return func(c *sinkConfig[T]) { c.processingTime = true }
}

// WithKey sets each output's key from its value, instead of the key the
// record carries from its input. The key chooses the output partition.
func WithKey[T any](key func(T) []byte) SinkOpt[T] {
	return func(c *sinkConfig[T]) { c.key = key }
}

// WithHeaders adds headers to each output record.
func WithHeaders[T any](headers func(T) []kgo.RecordHeader) SinkOpt[T] {
	return func(c *sinkConfig[T]) { c.headers = headers }
}

// KafkaSink writes the stream to topic, encoding values with c. The
// partition is chosen from the record key by murmur2, as the Java client's
// default partitioner does, so outputs co-partition with any Java
// producer's; records without a key are spread with sticky batching. The
// topic must exist when the job starts.
func KafkaSink[T any](in engine.Stream[T], topic string, c codec.Codec[T], opts ...SinkOpt[T]) {
	var cfg sinkConfig[T]
	for _, o := range opts {
		o(&cfg)
	}
	job := in.Job()
	job.AddSinkTopic(topic)
	name := job.UniqueName("sink:" + topic)
	if cfg.policy != "" {
		job.SetErrorPolicy(name, cfg.policy)
	}
	in.Subscribe(func(t *engine.Task) (engine.Emit[T], error) {
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
