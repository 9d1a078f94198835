// Package protobuf is a codec for Protobuf messages in a schema registry's
// wire format (Flink's protobuf-confluent, Kafka Streams'
// KafkaProtobufSerde), on google.golang.org/protobuf.
//
// Encode registers the message's .proto source under the codec's subject
// on first use and prefixes each message with the schema id and the
// message's indexes in its file. Decode checks that the registry knows the
// record's schema id, then reads the payload into T: Protobuf's own rules
// make a message written with an older or newer version of T's schema
// readable (unknown fields are kept, missing ones are zero), so a reader
// needs no schema resolution. An unknown schema id, a malformed header or
// payload is a decode error, handled by the job's error policy.
package protobuf

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/twmb/franz-go/pkg/sr"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/codec/registry"
)

// New returns a codec for the generated message type T, registered under
// subject (registry.TopicValue(topic) by default) with schema, the .proto
// source of T's file as the registry should keep it. Files T's imports
// need go in as sr.SchemaReference values, registered beforehand.
func New[T proto.Message](reg *registry.Registry, subject, schema string, refs ...sr.SchemaReference) (codec.Codec[T], error) {
	var zero T
	desc := zero.ProtoReflect().Descriptor()
	return &protoCodec[T]{
		reg: reg, subject: subject,
		schema: sr.Schema{Schema: schema, Type: sr.TypeProtobuf, References: refs},
		index:  messageIndex(desc),
		name:   desc.FullName(),
		known:  map[int]bool{},
	}, nil
}

// messageIndex is the path of message d in its file, as the wire format
// names it: its index among the file's top-level messages, then among its
// parent's nested messages, outermost first.
func messageIndex(d protoreflect.MessageDescriptor) []int {
	var index []int
	for {
		index = append(index, d.Index())
		parent, ok := d.Parent().(protoreflect.MessageDescriptor)
		if !ok {
			break
		}
		d = parent
	}
	slices.Reverse(index)
	return index
}

type protoCodec[T proto.Message] struct {
	reg     *registry.Registry
	subject string
	schema  sr.Schema
	index   []int
	name    protoreflect.FullName

	mu    sync.Mutex
	id    int
	known map[int]bool
}

func (c *protoCodec[T]) writerID() (int, error) {
	c.mu.Lock()
	id := c.id
	c.mu.Unlock()
	if id != 0 {
		return id, nil
	}
	id, err := c.reg.Register(context.Background(), c.subject, c.schema)
	if err != nil {
		return 0, fmt.Errorf("protobuf: %s: %w", c.name, err)
	}
	c.mu.Lock()
	c.id, c.known[id] = id, true
	c.mu.Unlock()
	return id, nil
}

func (c *protoCodec[T]) Encode(v T) ([]byte, error) {
	id, err := c.writerID()
	if err != nil {
		return nil, err
	}
	b, err := registry.AppendHeader(make([]byte, 0, 8+proto.Size(v)), id, c.index)
	if err != nil {
		return nil, err
	}
	b, err = proto.MarshalOptions{}.MarshalAppend(b, v)
	if err != nil {
		return nil, fmt.Errorf("protobuf: %s: encoding: %w", c.name, err)
	}
	return b, nil
}

// check makes sure the registry knows schema id, and that it is Protobuf.
func (c *protoCodec[T]) check(id int) error {
	c.mu.Lock()
	ok := c.known[id]
	c.mu.Unlock()
	if ok {
		return nil
	}
	s, err := c.reg.SchemaByID(context.Background(), id)
	if err != nil {
		return fmt.Errorf("protobuf: %w", err)
	}
	if s.Type != sr.TypeProtobuf {
		return fmt.Errorf("protobuf: schema id %d is %s, not Protobuf", id, s.Type)
	}
	c.mu.Lock()
	c.known[id] = true
	c.mu.Unlock()
	return nil
}

func (c *protoCodec[T]) Decode(b []byte) (T, error) {
	var zero T
	id, rest, err := registry.SplitHeader(b)
	if err != nil {
		return zero, fmt.Errorf("protobuf: %w", err)
	}
	if err := c.check(id); err != nil {
		return zero, err
	}
	_, payload, err := registry.SplitIndex(rest)
	if err != nil {
		return zero, fmt.Errorf("protobuf: %w", err)
	}
	v := zero.ProtoReflect().New().Interface().(T)
	if err := proto.Unmarshal(payload, v); err != nil {
		return zero, fmt.Errorf("protobuf: schema id %d: decoding %s: %w", id, c.name, err)
	}
	return v, nil
}
