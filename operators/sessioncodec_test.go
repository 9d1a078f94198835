package operators

import (
	"slices"
	"testing"

	"github.com/weirstream/weir/windowing"
)

func TestSessionsCodec(t *testing.T) {
	ws := []windowing.Window{{Start: -5, End: 10}, {Start: 1 << 40, End: 1<<40 + 30_000}, windowing.GlobalWindow}
	own := make([]session, len(ws))
	for i, w := range ws {
		own[i] = session{W: w, State: w}
	}
	merged := slices.Clone(own)
	merged[1].State = windowing.Window{Start: 1<<40 + 5, End: 1<<40 + 10}
	for _, ss := range [][]session{own, merged, {}} {
		b, err := sessionsCodec{}.Encode(ss)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := (sessionsCodec{}).Decode(b); err != nil || !slices.Equal(got, ss) {
			t.Fatalf("round trip: %v, %v; want %v", got, err, ss)
		}
		for _, bad := range [][]byte{b[:len(b)-1], append(slices.Clone(b), 0)} {
			if got, err := (sessionsCodec{}).Decode(bad); err == nil {
				t.Errorf("Decode(%x) = %v, want an error", bad, got)
			}
		}
	}
	// Sessions that keep their contents in their own windows are written
	// as Weir wrote them before state windows: 16 bytes each.
	if b, _ := (sessionsCodec{}).Encode(own); len(b) != 1+16*len(own) || b[0] != sessionsFormat {
		t.Errorf("own state windows: %d bytes, format %d; want %d, %d", len(b), b[0], 1+16*len(own), sessionsFormat)
	}
	// What older versions wrote, in state they left, still reads.
	old, err := sessionsJSON.Encode(ws)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := (sessionsCodec{}).Decode(old); err != nil || !slices.Equal(got, own) {
		t.Fatalf("JSON %s: %v, %v; want %v", old, got, err, own)
	}
	for _, bad := range [][]byte{nil, {}, {9}, {2, 0}, []byte("[{")} {
		if got, err := (sessionsCodec{}).Decode(bad); err == nil {
			t.Errorf("Decode(%q) = %v, want an error", bad, got)
		}
	}
}
