package codec

import (
	"bytes"
	"testing"
)

type view struct {
	User string `json:"user"`
	Page string `json:"page"`
}

func TestJSONRoundTripAndRejects(t *testing.T) {
	c := JSON[view]()
	b, err := c.Encode(view{User: "u1", Page: "/home"})
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.Decode(b)
	if err != nil || v != (view{User: "u1", Page: "/home"}) {
		t.Fatalf("round trip: %v %v", v, err)
	}
	for _, bad := range []string{"", "{", `{"user":1}`, `{"user":"a"} {"user":"b"}`, "\xff"} {
		if _, err := c.Decode([]byte(bad)); err == nil {
			t.Errorf("Decode(%q) succeeded, want an error", bad)
		}
	}
}

func TestBytesDecodeCopies(t *testing.T) {
	in := []byte("abc")
	out, _ := Bytes().Decode(in)
	in[0] = 'x'
	if !bytes.Equal(out, []byte("abc")) {
		t.Fatalf("decoded value aliases the input: %q", out)
	}
}

func TestKeyCodecs(t *testing.T) {
	s, _ := Key[string]().Encode("user-1")
	if string(s) != "user-1" {
		t.Fatalf("string key encodes as %q", s)
	}
	l, _ := Key[int64]().Encode(258)
	if !bytes.Equal(l, []byte{0, 0, 0, 0, 0, 0, 1, 2}) {
		t.Fatalf("int64 key encodes as %v, want Java's LongSerializer bytes", l)
	}
	if v, err := Key[int64]().Decode(l); err != nil || v != 258 {
		t.Fatalf("int64 round trip: %v %v", v, err)
	}
	if _, err := Key[int32]().Decode([]byte{1}); err == nil {
		t.Fatal("a 1-byte int32 key decoded")
	}
	type composite struct{ A, B string }
	b, _ := Key[composite]().Encode(composite{"x", "y"})
	if v, err := Key[composite]().Decode(b); err != nil || v != (composite{"x", "y"}) {
		t.Fatalf("composite key round trip: %v %v", v, err)
	}
}

// The key codecs append exactly what they encode, after what the buffer
// held: the state handles write values and map keys through AppendEncode.
func TestKeyCodecsAppendWhatTheyEncode(t *testing.T) {
	prefix := []byte("prefix")
	check := func(name string, enc func() ([]byte, error), app func([]byte) ([]byte, error)) {
		t.Helper()
		want, err := enc()
		if err != nil {
			t.Fatal(err)
		}
		got, err := app(bytes.Clone(prefix))
		if err != nil || !bytes.Equal(got, append(bytes.Clone(prefix), want...)) {
			t.Errorf("%s: AppendEncode = %x, %v; want %x after the prefix", name, got, err, want)
		}
	}
	check("string", func() ([]byte, error) { return Key[string]().Encode("user-1") },
		func(b []byte) ([]byte, error) { return Key[string]().(AppendEncoder[string]).AppendEncode(b, "user-1") })
	check("int64", func() ([]byte, error) { return Key[int64]().Encode(-258) },
		func(b []byte) ([]byte, error) { return Key[int64]().(AppendEncoder[int64]).AppendEncode(b, -258) })
	check("int", func() ([]byte, error) { return Key[int]().Encode(1 << 40) },
		func(b []byte) ([]byte, error) { return Key[int]().(AppendEncoder[int]).AppendEncode(b, 1<<40) })
	check("int32", func() ([]byte, error) { return Key[int32]().Encode(-7) },
		func(b []byte) ([]byte, error) { return Key[int32]().(AppendEncoder[int32]).AppendEncode(b, -7) })
	check("uint64", func() ([]byte, error) { return Key[uint64]().Encode(1<<63 + 5) },
		func(b []byte) ([]byte, error) { return Key[uint64]().(AppendEncoder[uint64]).AppendEncode(b, 1<<63+5) })
}
