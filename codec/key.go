package codec

import (
	"encoding/binary"
	"fmt"
)

// Key returns the codec Weir uses for keys of type K when none is given:
// strings as their UTF-8 bytes, integers as fixed-width big-endian (as
// Java's IntegerSerializer and LongSerializer write them, so keys written
// by Java producers read back), anything else as JSON.
func Key[K any]() Codec[K] {
	var zero K
	var c any
	switch any(zero).(type) {
	case string:
		c = stringCodec{}
	case int64:
		c = int64Codec{}
	case int:
		c = intCodec{}
	case int32:
		c = int32Codec{}
	case uint64:
		c = uint64Codec{}
	default:
		return JSON[K]()
	}
	return c.(Codec[K])
}

type int64Codec struct{}

func (int64Codec) Encode(v int64) ([]byte, error) { return int64Codec{}.AppendEncode(nil, v) }
func (int64Codec) AppendEncode(b []byte, v int64) ([]byte, error) {
	return binary.BigEndian.AppendUint64(b, uint64(v)), nil
}
func (int64Codec) Decode(b []byte) (int64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("int64 key: %d bytes, want 8", len(b))
	}
	return int64(binary.BigEndian.Uint64(b)), nil
}

type intCodec struct{}

func (intCodec) Encode(v int) ([]byte, error) { return int64Codec{}.Encode(int64(v)) }
func (intCodec) AppendEncode(b []byte, v int) ([]byte, error) {
	return int64Codec{}.AppendEncode(b, int64(v))
}
func (intCodec) Decode(b []byte) (int, error) {
	v, err := int64Codec{}.Decode(b)
	return int(v), err
}

type uint64Codec struct{}

func (uint64Codec) Encode(v uint64) ([]byte, error) { return uint64Codec{}.AppendEncode(nil, v) }
func (uint64Codec) AppendEncode(b []byte, v uint64) ([]byte, error) {
	return binary.BigEndian.AppendUint64(b, v), nil
}
func (uint64Codec) Decode(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("uint64 key: %d bytes, want 8", len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

type int32Codec struct{}

func (int32Codec) Encode(v int32) ([]byte, error) { return int32Codec{}.AppendEncode(nil, v) }
func (int32Codec) AppendEncode(b []byte, v int32) ([]byte, error) {
	return binary.BigEndian.AppendUint32(b, uint32(v)), nil
}
func (int32Codec) Decode(b []byte) (int32, error) {
	if len(b) != 4 {
		return 0, fmt.Errorf("int32 key: %d bytes, want 4", len(b))
	}
	return int32(binary.BigEndian.Uint32(b)), nil
}
