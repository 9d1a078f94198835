package operators

import (
	"math/rand/v2"
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
		if a, err := (sessionsCodec{}).AppendEncode([]byte("x"), ss); err != nil || string(a) != "x"+string(b) {
			t.Fatalf("AppendEncode = %x, %v; want x then %x", a, err, b)
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

// mergeGroupOfLast gives what MergeWindows gives for the merged window
// covering the last window, in the same order: the first absorbed session
// keeps its state window, so the order decides where contents go.
func TestMergeGroupOfLastIsMergeWindows(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var idx, group []int
	for n := range 2000 {
		ws := make([]windowing.Window, 1+rng.IntN(7))
		for i := range ws {
			start := windowing.Millis(rng.IntN(60))
			ws[i] = windowing.Window{Start: start, End: start + 1 + windowing.Millis(rng.IntN(15))}
		}
		merged, members := windowing.MergeWindows(ws)
		var want windowing.Window
		var wantGroup []int
		for i, m := range members {
			if slices.Contains(m, len(ws)-1) {
				want, wantGroup = merged[i], m
			}
		}
		var got windowing.Window
		got, idx, group = mergeGroupOfLast(ws, idx, group)
		if got != want || !slices.Equal(group, wantGroup) {
			t.Fatalf("case %d, windows %v: mergeGroupOfLast = %v %v, MergeWindows' = %v %v", n, ws, got, group, want, wantGroup)
		}
	}
}
