package operators

import (
	"encoding/binary"
	"fmt"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/windowing"
)

// session is a key's live session window, and the window whose namespace
// holds its contents: as Flink's MergingWindowSet maps each merged
// window to a state window, a session that grows keeps its contents where
// they are, and a merge moves only the other sessions' contents into it.
// State is the window the session started as (or an older session it
// absorbed), never outside W; live sessions are disjoint, and so are
// their state windows.
type session struct {
	W, State windowing.Window
}

// sessionsCodec encodes a key's live sessions, read and written on every
// record of a session window: a format byte, then each window's start and
// end as big-endian int64s, followed by its state window's in the second
// format. Sessions whose state windows are their own windows are written
// in the first, as Weir wrote them before state windows; encoding/json
// cost a session window operator 16% of its time, most of it decoding.
//
// It still reads the JSON lists Weir wrote before the binary forms, so
// that state restored from an older changelog or local store goes on.
type sessionsCodec struct{}

// The binary forms' first byte; a JSON list starts with '['.
const (
	sessionsFormat       byte = 1 // windows: 16 bytes each
	sessionsStatesFormat byte = 2 // windows and state windows: 32 bytes each
)

var sessionsJSON = codec.JSON[[]windowing.Window]()

func (c sessionsCodec) Encode(ss []session) ([]byte, error) {
	return c.AppendEncode(make([]byte, 0, 1+32*len(ss)), ss)
}

// AppendEncode is Encode appending to b (codec.AppendEncoder): the state
// handle encodes a key's sessions, written at every merge, into a buffer
// it reuses.
func (sessionsCodec) AppendEncode(b []byte, ss []session) ([]byte, error) {
	format := sessionsFormat
	for _, s := range ss {
		if s.State != s.W {
			format = sessionsStatesFormat
			break
		}
	}
	b = append(b, format)
	for _, s := range ss {
		b = binary.BigEndian.AppendUint64(b, uint64(s.W.Start))
		b = binary.BigEndian.AppendUint64(b, uint64(s.W.End))
		if format == sessionsStatesFormat {
			b = binary.BigEndian.AppendUint64(b, uint64(s.State.Start))
			b = binary.BigEndian.AppendUint64(b, uint64(s.State.End))
		}
	}
	return b, nil
}

func (sessionsCodec) Decode(b []byte) ([]session, error) {
	size := 0
	switch {
	case len(b) > 0 && b[0] == '[':
		ws, err := sessionsJSON.Decode(b)
		if err != nil {
			return nil, err
		}
		ss := make([]session, len(ws))
		for i, w := range ws {
			ss[i] = session{W: w, State: w}
		}
		return ss, nil
	case len(b) > 0 && b[0] == sessionsFormat:
		size = 16
	case len(b) > 0 && b[0] == sessionsStatesFormat:
		size = 32
	}
	if size == 0 || (len(b)-1)%size != 0 {
		return nil, fmt.Errorf("session windows: %d bytes in no format Weir writes", len(b))
	}
	b = b[1:]
	ss := make([]session, len(b)/size)
	at := func(i int) windowing.Millis { return windowing.Millis(binary.BigEndian.Uint64(b[8*i:])) }
	for i := range ss {
		n := i * size / 8
		ss[i].W = windowing.Window{Start: at(n), End: at(n + 1)}
		ss[i].State = ss[i].W
		if size == 32 {
			ss[i].State = windowing.Window{Start: at(n + 2), End: at(n + 3)}
		}
	}
	return ss, nil
}
