package operators

import (
	"testing"

	"github.com/weirstream/weir/codec"
)

// A partial accumulator crosses the repartition topic intact, and bytes
// that are not one are an error, not a panic.
func TestPartialCodec(t *testing.T) {
	c := partialCodec[string, int64]{kc: codec.String(), ac: codec.Key[int64]()}
	for _, p := range []Partial[string, int64]{{Key: "auction-1", Acc: 42}, {Key: "", Acc: -1}} {
		b, err := c.Encode(p)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := c.Decode(b); err != nil || got != p {
			t.Fatalf("round trip of %v: %v, %v", p, got, err)
		}
		for _, bad := range [][]byte{nil, b[:len(b)-1], {0xff}, {20, 'a'}} {
			if got, err := c.Decode(bad); err == nil {
				t.Errorf("Decode(%x) = %v, want an error", bad, got)
			}
		}
	}
}
