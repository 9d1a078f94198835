package windowing

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// WatermarkHeaderKey is the Kafka record header that makes a record on a
// repartition topic a watermark control record. Such a record carries no
// key and no value; the header value is the encoded UpstreamWatermark.
const WatermarkHeaderKey = "weir.watermark"

// ErrMalformedWatermark is returned by DecodeWatermark for a header value it
// cannot read: wrong length, an unknown version or unknown flags. The task
// should fail rather than skip the record: skipping a watermark could hold
// windows open forever, and an unknown version means the upstream runs a
// newer Weir.
var ErrMalformedWatermark = errors.New("windowing: malformed watermark control record")

// An UpstreamWatermark is what an upstream task tells the tasks downstream
// of a repartition topic about its event time. Every upstream task writes
// one to every partition of the topic when its watermark moves or its idle
// state changes; a downstream task's Combiner has one input per upstream
// task and feeds it with Update(Task, Watermark, Idle).
type UpstreamWatermark struct {
	Task      int32  // the upstream task: its input partition number
	Watermark Millis // the upstream task's watermark
	Idle      bool   // all the upstream task's inputs are idle: do not wait for it
}

// The encoding, version 1, 14 bytes, integers big-endian:
//
//	[0]     version, 1
//	[1]     flags: bit 0 idle; the other bits must be 0
//	[2:6]   Task, int32
//	[6:14]  Watermark, int64 (two's complement)
//
// A later version gets a new version byte; version 1 readers reject it.
const (
	watermarkVersion = 1
	watermarkLen     = 14
	flagIdle         = 1 << 0
)

// EncodeWatermark returns the header key and value of the control record
// for w. The value is a new slice the caller owns.
func EncodeWatermark(w UpstreamWatermark) (headerKey string, value []byte) {
	b := make([]byte, watermarkLen)
	b[0] = watermarkVersion
	if w.Idle {
		b[1] |= flagIdle
	}
	binary.BigEndian.PutUint32(b[2:6], uint32(w.Task))
	binary.BigEndian.PutUint64(b[6:14], uint64(w.Watermark))
	return WatermarkHeaderKey, b
}

// DecodeWatermark reads the header value of a control record. Malformed
// input gets an error wrapping ErrMalformedWatermark, never a panic. It
// does not keep value.
func DecodeWatermark(value []byte) (UpstreamWatermark, error) {
	if len(value) == 0 {
		return UpstreamWatermark{}, fmt.Errorf("%w: empty", ErrMalformedWatermark)
	}
	if v := value[0]; v != watermarkVersion {
		return UpstreamWatermark{}, fmt.Errorf("%w: version %d, this build reads version %d", ErrMalformedWatermark, v, watermarkVersion)
	}
	if len(value) != watermarkLen {
		return UpstreamWatermark{}, fmt.Errorf("%w: %d bytes, version %d has %d", ErrMalformedWatermark, len(value), watermarkVersion, watermarkLen)
	}
	if f := value[1]; f&^flagIdle != 0 {
		return UpstreamWatermark{}, fmt.Errorf("%w: unknown flags %#x", ErrMalformedWatermark, f&^flagIdle)
	}
	return UpstreamWatermark{
		Task:      int32(binary.BigEndian.Uint32(value[2:6])),
		Watermark: Millis(binary.BigEndian.Uint64(value[6:14])),
		Idle:      value[1]&flagIdle != 0,
	}, nil
}
