package engine

import "github.com/weirstream/weir/codec"

// KeyedStream is a stream partitioned by a key: every record of a key is
// processed by one task, in order, and keyed operators (process functions,
// windows, joins) see the key and keep state per key. A record's Kafka key
// holds the encoded key; Key decodes it.
type KeyedStream[K comparable, T any] struct {
	Stream[T]
	Key codec.Codec[K]
}

// AsKeyed declares that s is partitioned by its records' Kafka keys,
// encoded with key. It moves nothing: the caller vouches for the
// partitioning (a source topic written with murmur2 over these keys, or a
// repartition).
func AsKeyed[K comparable, T any](s Stream[T], key codec.Codec[K]) KeyedStream[K, T] {
	return KeyedStream[K, T]{Stream: s, Key: key}
}
