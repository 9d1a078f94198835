package operators

import (
	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/engine"
)

// KeyByOpt configures KeyBy.
type KeyByOpt[K comparable, T any] func(*keyByConfig[K, T])

type keyByConfig[K comparable, T any] struct {
	name     string
	keyCodec codec.Codec[K]
	valCodec codec.Codec[T]
}

// KeyByName names the operator and its repartition topic
// (<group>-<name>-repartition). Name it when the job runs in production:
// the topic keeps the name across deployments only if the name is fixed.
// Default: "keyby", numbered when there are several.
func KeyByName[K comparable, T any](name string) KeyByOpt[K, T] {
	return func(c *keyByConfig[K, T]) { c.name = name }
}

// KeyByCodecs sets how keys and values are written to the repartition
// topic. Default: codec.Key[K]() and codec.JSON[T]().
func KeyByCodecs[K comparable, T any](key codec.Codec[K], value codec.Codec[T]) KeyByOpt[K, T] {
	return func(c *keyByConfig[K, T]) { c.keyCodec, c.valCodec = key, value }
}

// KeyBy partitions the stream by key(v). Unless the stream is already
// partitioned by that key, records of one key sit in different tasks, so
// KeyBy ends the stage: records go through an internal repartition topic,
// partitioned by murmur2 of the encoded key, to a new stage where each key
// has one task. For a stream already partitioned by its Kafka record key
// (a source topic keyed by the field you want), use KeyByRecordKey, which
// moves nothing.
func KeyBy[K comparable, T any](in engine.Stream[T], key func(T) K, opts ...KeyByOpt[K, T]) engine.KeyedStream[K, T] {
	cfg := keyByConfig[K, T]{keyCodec: codec.Key[K](), valCodec: codec.JSON[T]()}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.name == "" {
		cfg.name = in.Job().UniqueName("keyby")
	}
	kc := cfg.keyCodec
	out := engine.Repartition(in, cfg.name, func(v T) ([]byte, error) { return kc.Encode(key(v)) }, cfg.valCodec)
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
