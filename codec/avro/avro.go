// Package avro is a codec for Avro values in a schema registry's wire
// format (Flink's avro-confluent format, Kafka Streams' SpecificAvroSerde),
// on github.com/hamba/avro/v2.
//
// The codec has one schema of its own, the one T is written with and read
// into. Encode registers it under the codec's subject on first use (the
// registry refuses one that breaks the subject's compatibility rule:
// registry.ErrIncompatible) and prefixes every value with its id. Decode
// reads whatever schema a record was written with, looked up by the id in
// the record once and cached, and resolves it against its own, as Avro's
// schema resolution says: a field the writer did not have takes its
// default, a field the reader does not have is skipped. A record whose id
// the registry does not know, or whose bytes do not match its schema, is a
// decode error, which the job's error policy handles (a dead letter, say).
package avro

import (
	"context"
	"fmt"
	"sync"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/codec/registry"
)

// New returns a codec for T with the Avro schema given as JSON text,
// registered under subject (registry.TopicValue(topic) under the default
// topic-name strategy). T's fields map to the schema's by their `avro`
// struct tags (see hamba/avro). It fails if the schema does not parse; the
// registry is first asked when the codec is first used.
func New[T any](reg *registry.Registry, subject, schema string) (codec.Codec[T], error) {
	s, err := avro.Parse(schema)
	if err != nil {
		return nil, fmt.Errorf("avro: subject %s: parsing the schema: %w", subject, err)
	}
	return &avroCodec[T]{reg: reg, subject: subject, text: schema, schema: s, compat: avro.NewSchemaCompatibility(), readers: map[int]avro.Schema{}}, nil
}

type avroCodec[T any] struct {
	reg     *registry.Registry
	subject string
	text    string
	schema  avro.Schema
	compat  *avro.SchemaCompatibility

	mu      sync.Mutex
	id      int // 0 until registered
	readers map[int]avro.Schema
}

// writerID returns the id of the codec's schema, registering it first.
func (c *avroCodec[T]) writerID() (int, error) {
	c.mu.Lock()
	id := c.id
	c.mu.Unlock()
	if id != 0 {
		return id, nil
	}
	id, err := c.reg.Register(context.Background(), c.subject, sr.Schema{Schema: c.text, Type: sr.TypeAvro})
	if err != nil {
		return 0, fmt.Errorf("avro: %w", err)
	}
	c.mu.Lock()
	c.id = id
	c.readers[id] = c.schema
	c.mu.Unlock()
	return id, nil
}

func (c *avroCodec[T]) Encode(v T) ([]byte, error) {
	id, err := c.writerID()
	if err != nil {
		return nil, err
	}
	payload, err := avro.Marshal(c.schema, v)
	if err != nil {
		return nil, fmt.Errorf("avro: subject %s: encoding: %w", c.subject, err)
	}
	b, err := registry.AppendHeader(make([]byte, 0, 5+len(payload)), id, nil)
	if err != nil {
		return nil, err
	}
	return append(b, payload...), nil
}

// reader returns the schema to decode records written with schema id:
// the codec's own, resolved against the writer's.
func (c *avroCodec[T]) reader(id int) (avro.Schema, error) {
	c.mu.Lock()
	s, ok := c.readers[id]
	c.mu.Unlock()
	if ok {
		return s, nil
	}
	ws, err := c.reg.SchemaByID(context.Background(), id)
	if err != nil {
		return nil, fmt.Errorf("avro: %w", err)
	}
	if ws.Type != sr.TypeAvro {
		return nil, fmt.Errorf("avro: schema id %d is %s, not Avro", id, ws.Type)
	}
	writer, err := avro.Parse(ws.Schema)
	if err != nil {
		return nil, fmt.Errorf("avro: schema id %d: parsing: %w", id, err)
	}
	s, err = c.compat.Resolve(c.schema, writer)
	if err != nil {
		return nil, fmt.Errorf("avro: records written with schema id %d cannot be read with subject %s's schema: %w", id, c.subject, err)
	}
	c.mu.Lock()
	c.readers[id] = s
	c.mu.Unlock()
	return s, nil
}

func (c *avroCodec[T]) Decode(b []byte) (T, error) {
	var v T
	id, payload, err := registry.SplitHeader(b)
	if err != nil {
		return v, fmt.Errorf("avro: %w", err)
	}
	s, err := c.reader(id)
	if err != nil {
		return v, err
	}
	if err := avro.Unmarshal(s, payload, &v); err != nil {
		return v, fmt.Errorf("avro: schema id %d: decoding: %w", id, err)
	}
	return v, nil
}
