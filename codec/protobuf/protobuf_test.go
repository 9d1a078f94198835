package protobuf_test

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/sr/srfake"
	"google.golang.org/protobuf/proto"

	"github.com/weirstream/weir/codec/protobuf"
	"github.com/weirstream/weir/codec/registry"
	"github.com/weirstream/weir/internal/testpb"
)

func newRegistry(t *testing.T) *registry.Registry {
	t.Helper()
	fake := srfake.New()
	t.Cleanup(fake.Close)
	reg, err := registry.New([]string{fake.URL()})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// Messages round-trip with the wire format's header: magic byte, schema
// id, and the message's indexes in its file (a nested one's too).
func TestProtobufRoundTrip(t *testing.T) {
	reg := newRegistry(t)
	c, err := protobuf.New[*testpb.Payment](reg, "payments-value", testpb.Schema)
	if err != nil {
		t.Fatal(err)
	}
	in := &testpb.Payment{Account: "a", AmountCents: 250, Currency: "EUR"}
	b, err := c.Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != 0 || b[5] != 0 { // index [0] is the single byte 0
		t.Fatalf("header % x", b[:6])
	}
	out, err := c.Decode(b)
	if err != nil || !proto.Equal(in, out) {
		t.Fatalf("decoded %v (%v), want %v", out, err, in)
	}

	nested, err := protobuf.New[*testpb.Batch_Entry](reg, "entries-value", testpb.Schema)
	if err != nil {
		t.Fatal(err)
	}
	b, err = nested.Encode(&testpb.Batch_Entry{Id: "x"})
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := registry.SplitHeader(b)
	index, _, err := registry.SplitIndex(rest)
	if err != nil || len(index) != 2 || index[0] != 1 || index[1] != 0 {
		t.Fatalf("index %v (%v), want [1 0]", index, err)
	}
	if e, err := nested.Decode(b); err != nil || e.GetId() != "x" {
		t.Fatalf("decoded %v (%v)", e, err)
	}
}

func TestProtobufDecodeErrors(t *testing.T) {
	reg := newRegistry(t)
	c, err := protobuf.New[*testpb.Payment](reg, "payments-value", testpb.Schema)
	if err != nil {
		t.Fatal(err)
	}
	good, err := c.Encode(&testpb.Payment{Account: "a"})
	if err != nil {
		t.Fatal(err)
	}
	unknown, _ := registry.AppendHeader(nil, 424242, []int{0})
	for name, b := range map[string][]byte{
		"empty":         nil,
		"no magic byte": []byte("\x01\x02"),
		"unknown id":    append(unknown, good[6:]...),
		"bad payload":   append(append([]byte(nil), good[:6]...), 0x0a, 0x05, 'a'),
	} {
		_, err := c.Decode(b)
		if err == nil {
			t.Errorf("%s: decoded without error", name)
		}
		if name == "unknown id" && !errors.Is(err, registry.ErrUnknownSchema) {
			t.Errorf("unknown id: %v, want ErrUnknownSchema", err)
		}
	}
}
