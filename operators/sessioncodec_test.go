package operators

import (
	"slices"
	"testing"

	"github.com/weirstream/weir/windowing"
)

func TestSessionsCodec(t *testing.T) {
	ws := []windowing.Window{{Start: -5, End: 10}, {Start: 1 << 40, End: 1<<40 + 30_000}, windowing.GlobalWindow}
	b, err := sessionsCodec{}.Encode(ws)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := (sessionsCodec{}).Decode(b); err != nil || !slices.Equal(got, ws) {
		t.Fatalf("round trip: %v, %v; want %v", got, err, ws)
	}
	// What older versions wrote, in state they left, still reads.
	old, err := sessionsJSON.Encode(ws)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := (sessionsCodec{}).Decode(old); err != nil || !slices.Equal(got, ws) {
		t.Fatalf("JSON %s: %v, %v; want %v", old, got, err, ws)
	}
	for _, bad := range [][]byte{nil, {}, {9}, b[:len(b)-1], []byte("[{")} {
		if got, err := (sessionsCodec{}).Decode(bad); err == nil {
			t.Errorf("Decode(%q) = %v, want an error", bad, got)
		}
	}
}
