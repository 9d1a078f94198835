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
