package state

import (
	"bytes"
	"cmp"
	"errors"
	"math/rand/v2"
	"testing"
)

// TestTaskPrefixOrder: byte order of task prefixes is (stage, partition)
// order, negative partitions included, so each task is one range and the
// ranges do not interleave.
func TestTaskPrefixOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	partitions := []int32{-1 << 31, -2, -1, 0, 1, 2, 255, 256, 1<<31 - 1}
	randID := func() TaskID {
		return TaskID{Stage: uint16(rng.IntN(4)) * 0x7fff, Partition: partitions[rng.IntN(len(partitions))]}
	}
	for range 2000 {
		a, b := randID(), randID()
		want := cmp.Or(cmp.Compare(a.Stage, b.Stage), cmp.Compare(a.Partition, b.Partition))
		pa, pb := appendTaskPrefix(nil, a), appendTaskPrefix(nil, b)
		if got := bytes.Compare(pa, pb); got != want {
			t.Fatalf("prefix(%v) vs prefix(%v): %d; want %d", a, b, got, want)
		}
		if want < 0 && bytes.Compare(prefixEnd(pa), pb) > 0 {
			t.Fatalf("task %v's range ends after task %v starts", a, b)
		}
	}
}

func TestPrefixEnd(t *testing.T) {
	for _, tc := range []struct{ in, want []byte }{
		{[]byte("a"), []byte("b")},
		{[]byte("a\xff"), []byte("b")},
		{[]byte("a\xff\xff"), []byte("b")},
		{[]byte("\x00"), []byte("\x01")},
		{[]byte("\xff\xff"), nil},
		{nil, nil},
	} {
		if got := prefixEnd(tc.in); !bytes.Equal(got, tc.want) || (got == nil) != (tc.want == nil) {
			t.Errorf("prefixEnd(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}

// TestStateKeysArePrefixFree: two different (operator, state, key,
// namespace) tuples never encode so that one is a prefix of the other, so
// one's map range never contains the other's keys.
func TestStateKeysArePrefixFree(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	alphabet := []byte{'a', 'b', 0x00, 0x01, 0x02, 0xff}
	part := func() []byte {
		p := make([]byte, rng.IntN(4))
		for i := range p {
			p[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return p
	}
	enc := func(parts [4][]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = appendPart(b, p)
		}
		return b
	}
	for range 20000 {
		x := [4][]byte{part(), part(), part(), part()}
		y := [4][]byte{part(), part(), part(), part()}
		same := true
		for i := range x {
			same = same && bytes.Equal(x[i], y[i])
		}
		if same {
			continue
		}
		ex, ey := enc(x), enc(y)
		if bytes.HasPrefix(ex, ey) || bytes.HasPrefix(ey, ex) {
			t.Fatalf("%q encodes to %q, %q to %q: one is a prefix of the other", x, ex, y, ey)
		}
	}
	// A component as long as needs a two-byte length.
	long := bytes.Repeat([]byte("x"), 300)
	p, rest, ok := readPart(appendPart(appendPart(nil, long), []byte("y")))
	if !ok || !bytes.Equal(p, long) || !bytes.Equal(rest, []byte("\x01y")) {
		t.Fatalf("readPart of a 300-byte component: %d bytes, rest %q, %t", len(p), rest, ok)
	}
}

func TestOperatorOf(t *testing.T) {
	r := NewRegistry("my-op")
	key := append(bytes.Clone(r.prefix), "anything"...)
	if op, err := OperatorOf(key); err != nil || string(op) != "my-op" {
		t.Fatalf("OperatorOf = %q, %v; want my-op", op, err)
	}
	if _, err := OperatorOf([]byte{0x05, 'a'}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("OperatorOf(short) = %v; want ErrCorrupt", err)
	}
}
