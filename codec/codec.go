// Package codec turns typed values into bytes and back at the edges of a
// job: sources decode, sinks and state encode. Everything inside the engine
// and the state store speaks []byte; codecs are where types meet the wire.
//
// A Decode error on a source record makes that record a poison record: the
// engine handles it by the job's policy and never panics on it.
package codec

import (
	"fmt"

	json "github.com/goccy/go-json"
)

// Codec encodes and decodes values of type T. Implementations must be safe
// for concurrent use: one codec serves every task of a job.
//
// Decode must not retain b after it returns: the engine may reuse it.
// Encode's result is owned by the caller.
type Codec[T any] interface {
	Encode(v T) ([]byte, error)
	Decode(b []byte) (T, error)
}

// AppendEncoder is implemented by codecs that can also encode by
// appending to a buffer (as strconv.AppendInt does): the state handles use
// it to encode into a buffer they reuse, so that writing state allocates
// nothing for the value. AppendEncode(b, v) must append to b exactly the
// bytes Encode(v) returns. The codecs of Key have it.
type AppendEncoder[T any] interface {
	AppendEncode(b []byte, v T) ([]byte, error)
}

// TotalDecoder is implemented by codecs whose Decode accepts any bytes:
// every byte string is some value (String, Bytes). A keyed operator then
// decodes a record's key only when something asks for it, and a window
// aggregate, which never does until a window fires, saves the decode and
// its allocation on every record.
type TotalDecoder interface{ DecodesAnyBytes() }

func (bytesCodec) DecodesAnyBytes()  {}
func (stringCodec) DecodesAnyBytes() {}

// JSON returns a codec that encodes T as encoding/json does, with
// github.com/goccy/go-json: the same bytes out and the same values in for
// tagged structs (json tags, omitempty, string, embedded structs, custom
// Marshalers, time.Time), at about three times encoding/json's speed (see
// BenchmarkJSONLibraries in bench/nexmark). Decoding rejects empty input
// and trailing data, so a truncated or concatenated record is a decode
// error rather than a silently half-read value. Error messages differ from
// encoding/json's.
func JSON[T any]() Codec[T] { return jsonCodec[T]{} }

type jsonCodec[T any] struct{}

func (jsonCodec[T]) Encode(v T) ([]byte, error) { return json.Marshal(v) }

func (jsonCodec[T]) Decode(b []byte) (T, error) {
	var v T
	if len(b) == 0 {
		return v, fmt.Errorf("json: empty value")
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("json: %w", err)
	}
	return v, nil
}

// Bytes returns the identity codec: values are the record bytes. Decode
// copies, so the value outlives the fetch buffer it came from.
func Bytes() Codec[[]byte] { return bytesCodec{} }

type bytesCodec struct{}

func (bytesCodec) Encode(v []byte) ([]byte, error) { return v, nil }
func (bytesCodec) Decode(b []byte) ([]byte, error) {
	if b == nil {
		return nil, nil
	}
	return append([]byte(nil), b...), nil
}

// String returns a codec for UTF-8 text values, stored as their bytes.
func String() Codec[string] { return stringCodec{} }

type stringCodec struct{}

func (stringCodec) Encode(v string) ([]byte, error) { return []byte(v), nil }
func (stringCodec) AppendEncode(b []byte, v string) ([]byte, error) {
	return append(b, v...), nil
}
func (stringCodec) Decode(b []byte) (string, error) { return string(b), nil }
