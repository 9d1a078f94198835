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
