package state

import (
	"encoding/binary"
	"fmt"

	"github.com/weirstream/weir/codec"
)

// Every value a typed handle writes is wrapped in an envelope that says
// whether, and when, it expires:
//
//	+------+--------------------------+-----------------+
//	| 0x00 |                          | encoded value   |   no expiry
//	+------+--------------------------+-----------------+
//	| 0x01 | expiry: unix nanos, i64  | encoded value   |   expires (WithTTL)
//	+------+--------------------------+-----------------+
//
// The expiry travels with the value (to the changelog too), so a value
// expires when it was stamped to whatever the handle's TTL is today.
// (The length record of a List is not enveloped: it never expires.)
const (
	envPlain  byte = 0x00
	envExpiry byte = 0x01

	envExpiryLen = 1 + 8
)

// appendEnvelope appends the envelope header for a value written now in
// scope s.
func (d *descriptor) appendEnvelope(dst []byte, s Scope) []byte {
	if d.ttl == 0 {
		return append(dst, envPlain)
	}
	expiry := s.ProcessingTime().Add(d.ttl).UnixNano()
	return binary.BigEndian.AppendUint64(append(dst, envExpiry), uint64(expiry))
}

// encodeValue returns v's envelope and encoding in the TaskStore's value
// buffer, valid until the next handle operation on that TaskStore.
func encodeValue[T any](d *descriptor, ts *TaskStore, s Scope, c codec.Codec[T], v T) ([]byte, error) {
	if ae, ok := c.(codec.AppendEncoder[T]); ok {
		b, err := ae.AppendEncode(d.appendEnvelope(ts.valueBuf[:0], s), v)
		if err != nil {
			return nil, err
		}
		ts.valueBuf = b
		return b, nil
	}
	b, err := c.Encode(v)
	if err != nil {
		return nil, err
	}
	ts.valueBuf = append(d.appendEnvelope(ts.valueBuf[:0], s), b...)
	return ts.valueBuf, nil
}

// decodeStored opens a stored value's envelope and decodes its payload
// with c; expired reports a value past its TTL, not decoded.
func decodeStored[T any](c codec.Codec[T], raw []byte, s Scope) (v T, expired bool, err error) {
	payload, expired, err := openEnvelope(raw, s)
	if err != nil || expired {
		return v, expired, err
	}
	v, err = c.Decode(payload)
	return v, false, err
}

// openEnvelope returns the encoded value inside raw, and whether it has
// expired in scope s. It returns ErrCorrupt for bytes that are not an
// envelope.
func openEnvelope(raw []byte, s Scope) (payload []byte, expired bool, err error) {
	if len(raw) == 0 {
		return nil, false, fmt.Errorf("%w: empty value", ErrCorrupt)
	}
	switch raw[0] {
	case envPlain:
		return raw[1:], false, nil
	case envExpiry:
		if len(raw) < envExpiryLen {
			return nil, false, fmt.Errorf("%w: value %x: short expiry", ErrCorrupt, raw)
		}
		expiry := int64(binary.BigEndian.Uint64(raw[1:envExpiryLen]))
		return raw[envExpiryLen:], s.ProcessingTime().UnixNano() >= expiry, nil
	default:
		return nil, false, fmt.Errorf("%w: value %x: unknown envelope %#x", ErrCorrupt, raw, raw[0])
	}
}
