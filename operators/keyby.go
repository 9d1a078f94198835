package operators

import (
	"fmt"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/engine"
)

// KeyByOpt configures KeyBy.
type KeyByOpt func(*keyByOptions)

type keyByOptions struct {
	name               string
	keyCodec, valCodec any // codec.Codec[K], codec.Codec[T]
}

// KeyByName names the operator and its repartition topic
// (<group>-<name>-repartition). Name it when the job runs in production:
// the topic keeps the name across deployments only if the name is fixed.
// Default: "keyby", numbered when there are several.
func KeyByName(name string) KeyByOpt {
	return func(c *keyByOptions) { c.name = name }
}

// KeyByCodecs sets how keys and values are written to the repartition
// topic. Default: codec.Key[K]() and codec.JSON[T](). Codecs of other
// types than the key's and the stream's fail the job at start.
func KeyByCodecs[K comparable, T any](key codec.Codec[K], value codec.Codec[T]) KeyByOpt {
	return func(c *keyByOptions) { c.keyCodec, c.valCodec = key, value }
}

// KeyBy partitions the stream by key(v). Unless the stream is already
// partitioned by that key, records of one key sit in different tasks, so
// KeyBy ends the stage: records go through an internal repartition topic,
// partitioned by murmur2 of the encoded key, to a new stage where each key
// has one task. For a stream already partitioned by its Kafka record key
// (a source topic keyed by the field you want), use KeyByRecordKey, which
// moves nothing.
func KeyBy[K comparable, T any](in engine.Stream[T], key func(T) K, opts ...KeyByOpt) engine.KeyedStream[K, T] {
	var o keyByOptions
	for _, opt := range opts {
		opt(&o)
	}
	job := in.Job()
	name := o.name
	if name == "" {
		name = job.UniqueName("keyby")
	}
	kc, vc := codec.Key[K](), codec.JSON[T]()
	if o.keyCodec != nil {
		k, kok := o.keyCodec.(codec.Codec[K])
		v, vok := o.valCodec.(codec.Codec[T])
		if kok && vok {
			kc, vc = k, v
		} else {
			var kz K
			var vz T
			job.TopologyError(fmt.Errorf("%s: KeyByCodecs got codecs of %T and %T, the key and the records are %T and %T", name, o.keyCodec, o.valCodec, kz, vz))
		}
	}
	out := engine.Repartition(in, name, func(v T) ([]byte, error) { return kc.Encode(key(v)) }, vc)
	return engine.AsKeyed(out, kc)
}

// KeyByRecordKey keys the stream by its records' Kafka keys, decoded with
// key: what Kafka Streams calls groupByKey. It moves nothing, so it is only
// right when the input topic was partitioned by those keys with murmur2
// (the Java client's default partitioner, and Weir's).
func KeyByRecordKey[K comparable, T any](in engine.Stream[T], key codec.Codec[K]) engine.KeyedStream[K, T] {
	return engine.AsKeyed(in, key)
}

// KeyByBoth keys two streams by the same kind of key into one new stage,
// each through its repartition topic, so that a task sees both streams'
// records of its keys: what IntervalJoin needs.
func KeyByBoth[K comparable, L, R any](left engine.Stream[L], lkey func(L) K, right engine.Stream[R], rkey func(R) K, name string) (engine.KeyedStream[K, L], engine.KeyedStream[K, R]) {
	kc := codec.Key[K]()
	stage := left.Job().NewStage()
	l := engine.RepartitionInto(left, name+"-left", func(v L) ([]byte, error) { return kc.Encode(lkey(v)) }, codec.JSON[L](), stage)
	r := engine.RepartitionInto(right, name+"-right", func(v R) ([]byte, error) { return kc.Encode(rkey(v)) }, codec.JSON[R](), stage)
	return engine.AsKeyed(l, kc), engine.AsKeyed(r, kc)
}
