package windowing

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzDecodeWatermark checks that DecodeWatermark never panics, that every
// error it returns is an ErrMalformedWatermark, and that whatever it
// accepts encodes back to the same bytes.
func FuzzDecodeWatermark(f *testing.F) {
	for _, w := range []UpstreamWatermark{
		{},
		{Task: 2, Watermark: 1704103205000},
		{Task: 7, Watermark: MinWatermark, Idle: true},
		{Task: -1, Watermark: -1},
	} {
		_, v := EncodeWatermark(w)
		f.Add(v)
	}
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add([]byte{2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{1, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, value []byte) {
		w, err := DecodeWatermark(value)
		if err != nil {
			if !errors.Is(err, ErrMalformedWatermark) {
				t.Fatalf("DecodeWatermark(%x): error %v is not ErrMalformedWatermark", value, err)
			}
			return
		}
		if _, again := EncodeWatermark(w); !bytes.Equal(again, value) {
			t.Fatalf("DecodeWatermark(%x) = %+v, which encodes to %x", value, w, again)
		}
	})
}
