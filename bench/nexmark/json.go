package nexmark

import (
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/weirstream/weir/codec"
)

// The topic's JSON, written and read by hand: the queries' cost per event
// is mostly decoding, and encoding/json's reflection would make a Weir
// query look slower than the same query on a JVM with Jackson for reasons
// that have nothing to do with the engine. The layout is nexmark-flink's
// Kafka table with Flink's JSON format:
//
//	{"event_type":2,"person":null,"auction":null,"bid":{"auction":1000,...}}
//
// every key present, absent kinds as null, field names as in Person,
// Auction and Bid (their json tags), DateTime as "yyyy-MM-dd HH:mm:ss.SSS".
// encoding/json with those tags reads and writes the same layout (it also
// escapes <, > and & in strings, which this encoder leaves as they are, as
// Flink does); the tests hold the two to each other.
//
// The decoder takes any JSON of that shape: members in any order, white
// space, unknown members (skipped), escapes. It is stricter than
// encoding/json in two ways: member names match exactly, not ignoring
// case, and integers must be integers (no fraction or exponent).

// EventCodec returns the codec of the topic's values: one Event per
// record. Decoding checks that the event is what its event_type says.
func EventCodec() codec.Codec[Event] { return eventCodec{} }

// BidCodec returns a codec writing a Bid as the JSON object the topic
// nests under "bid": what queries 0 and 1 write, and what repartitions of
// bids carry.
func BidCodec() codec.Codec[Bid] { return bidCodec{} }

type eventCodec struct{}

func (eventCodec) Encode(e Event) ([]byte, error) {
	if err := e.check(); err != nil {
		return nil, err
	}
	return AppendEvent(make([]byte, 0, 256), e), nil
}

func (eventCodec) Decode(b []byte) (Event, error) { return DecodeEvent(b) }

type bidCodec struct{}

func (bidCodec) Encode(b Bid) ([]byte, error) { return appendBid(make([]byte, 0, 192), &b), nil }

func (bidCodec) Decode(b []byte) (Bid, error) {
	d := decoder{b: b}
	bid, err := d.bid()
	if err == nil {
		err = d.end()
	}
	if err != nil {
		return Bid{}, fmt.Errorf("nexmark: decoding a bid: %w", err)
	}
	return *bid, nil
}

// check reports an event that is not what its type says.
func (e Event) check() error {
	var ok bool
	switch e.Type {
	case PersonEvent:
		ok = e.Person != nil && e.Auction == nil && e.Bid == nil
	case AuctionEvent:
		ok = e.Person == nil && e.Auction != nil && e.Bid == nil
	case BidEvent:
		ok = e.Person == nil && e.Auction == nil && e.Bid != nil
	default:
		return fmt.Errorf("nexmark: unknown event_type %d", int(e.Type))
	}
	if !ok {
		return fmt.Errorf("nexmark: event_type %d (%s) must carry a %[2]s and nothing else", int(e.Type), e.Type)
	}
	return nil
}

// AppendEvent appends e's JSON to dst. It writes e as it is, even if it is
// not what its type says (EventCodec refuses those).
func AppendEvent(dst []byte, e Event) []byte {
	dst = append(dst, `{"event_type":`...)
	dst = strconv.AppendInt(dst, int64(e.Type), 10)
	dst = append(dst, `,"person":`...)
	if e.Person == nil {
		dst = append(dst, "null"...)
	} else {
		dst = appendPerson(dst, e.Person)
	}
	dst = append(dst, `,"auction":`...)
	if e.Auction == nil {
		dst = append(dst, "null"...)
	} else {
		dst = appendAuction(dst, e.Auction)
	}
	dst = append(dst, `,"bid":`...)
	if e.Bid == nil {
		dst = append(dst, "null"...)
	} else {
		dst = appendBid(dst, e.Bid)
	}
	return append(dst, '}')
}

func appendPerson(dst []byte, p *Person) []byte {
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendInt(dst, p.ID, 10)
	dst = append(dst, `,"name":`...)
	dst = appendString(dst, p.Name)
	dst = append(dst, `,"emailAddress":`...)
	dst = appendString(dst, p.EmailAddress)
	dst = append(dst, `,"creditCard":`...)
	dst = appendString(dst, p.CreditCard)
	dst = append(dst, `,"city":`...)
	dst = appendString(dst, p.City)
	dst = append(dst, `,"state":`...)
	dst = appendString(dst, p.State)
	dst = append(dst, `,"dateTime":`...)
	dst = appendDateTime(dst, p.DateTime)
	dst = append(dst, `,"extra":`...)
	dst = appendString(dst, p.Extra)
	return append(dst, '}')
}

func appendAuction(dst []byte, a *Auction) []byte {
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendInt(dst, a.ID, 10)
	dst = append(dst, `,"itemName":`...)
	dst = appendString(dst, a.ItemName)
	dst = append(dst, `,"description":`...)
	dst = appendString(dst, a.Description)
	dst = append(dst, `,"initialBid":`...)
	dst = strconv.AppendInt(dst, a.InitialBid, 10)
	dst = append(dst, `,"reserve":`...)
	dst = strconv.AppendInt(dst, a.Reserve, 10)
	dst = append(dst, `,"dateTime":`...)
	dst = appendDateTime(dst, a.DateTime)
	dst = append(dst, `,"expires":`...)
	dst = appendDateTime(dst, a.Expires)
	dst = append(dst, `,"seller":`...)
	dst = strconv.AppendInt(dst, a.Seller, 10)
	dst = append(dst, `,"category":`...)
	dst = strconv.AppendInt(dst, a.Category, 10)
	dst = append(dst, `,"extra":`...)
	dst = appendString(dst, a.Extra)
	return append(dst, '}')
}

func appendBid(dst []byte, b *Bid) []byte {
	dst = append(dst, `{"auction":`...)
	dst = strconv.AppendInt(dst, b.Auction, 10)
	dst = append(dst, `,"bidder":`...)
	dst = strconv.AppendInt(dst, b.Bidder, 10)
	dst = append(dst, `,"price":`...)
	dst = strconv.AppendInt(dst, b.Price, 10)
	dst = append(dst, `,"channel":`...)
	dst = appendString(dst, b.Channel)
	dst = append(dst, `,"url":`...)
	dst = appendString(dst, b.URL)
	dst = append(dst, `,"dateTime":`...)
	dst = appendDateTime(dst, b.DateTime)
	dst = append(dst, `,"extra":`...)
	dst = appendString(dst, b.Extra)
	return append(dst, '}')
}

func appendDateTime(dst []byte, d DateTime) []byte {
	dst = append(dst, '"')
	dst = d.Time().AppendFormat(dst, DateTimeLayout)
	return append(dst, '"')
}

const hexDigits = "0123456789abcdef"

// appendString appends s quoted, escaping what JSON requires (quotes,
// backslashes, control characters) and U+2028 and U+2029, as encoding/json
// does; invalid UTF-8 becomes U+FFFD.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// DecodeEvent reads one event's JSON, the whole of b.
func DecodeEvent(b []byte) (Event, error) {
	d := decoder{b: b}
	e, err := d.event()
	if err == nil {
		err = d.end()
	}
	if err == nil {
		err = e.check()
	}
	if err != nil {
		return Event{}, fmt.Errorf("nexmark: decoding an event: %w", err)
	}
	return e, nil
}

// decoder reads JSON from b, at i.
type decoder struct {
	b []byte
	i int
}

var errEOF = errors.New("unexpected end of JSON")

func (d *decoder) errorf(format string, args ...any) error {
	return fmt.Errorf("at offset %d: %s", d.i, fmt.Sprintf(format, args...))
}

func (d *decoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// end checks that nothing but white space follows.
func (d *decoder) end() error {
	d.ws()
	if d.i != len(d.b) {
		return d.errorf("trailing data after the object")
	}
	return nil
}

// null consumes a null, if that is what comes next.
func (d *decoder) null() bool {
	d.ws()
	if len(d.b)-d.i >= 4 && string(d.b[d.i:d.i+4]) == "null" {
		d.i += 4
		return true
	}
	return false
}

// object reads an object's opening brace.
func (d *decoder) object() error {
	d.ws()
	if d.i >= len(d.b) {
		return errEOF
	}
	if d.b[d.i] != '{' {
		return d.errorf("want an object, found %q", d.b[d.i])
	}
	d.i++
	return nil
}

// member reads the next member's name and colon; ok is false at the
// object's closing brace, which it consumes. first is true for the first
// member (no comma before it) and set false.
func (d *decoder) member(first *bool) (name []byte, ok bool, err error) {
	d.ws()
	if d.i >= len(d.b) {
		return nil, false, errEOF
	}
	if d.b[d.i] == '}' {
		d.i++
		return nil, false, nil
	}
	if !*first {
		if d.b[d.i] != ',' {
			return nil, false, d.errorf("want ',' or '}', found %q", d.b[d.i])
		}
		d.i++
		d.ws()
	}
	*first = false
	if name, err = d.stringBytes(); err != nil {
		return nil, false, err
	}
	d.ws()
	if d.i >= len(d.b) {
		return nil, false, errEOF
	}
	if d.b[d.i] != ':' {
		return nil, false, d.errorf("want ':', found %q", d.b[d.i])
	}
	d.i++
	return name, true, nil
}

func (d *decoder) event() (Event, error) {
	var e Event
	if err := d.object(); err != nil {
		return e, err
	}
	typed := false
	for first := true; ; {
		name, ok, err := d.member(&first)
		if err != nil {
			return e, err
		}
		if !ok {
			break
		}
		switch string(name) {
		case "event_type":
			t, err := d.int()
			if err != nil {
				return e, fmt.Errorf("event_type: %w", err)
			}
			e.Type, typed = EventType(t), true
		case "person":
			e.Person = nil
			if !d.null() {
				if e.Person, err = d.person(); err != nil {
					return e, fmt.Errorf("person: %w", err)
				}
			}
		case "auction":
			e.Auction = nil
			if !d.null() {
				if e.Auction, err = d.auction(); err != nil {
					return e, fmt.Errorf("auction: %w", err)
				}
			}
		case "bid":
			e.Bid = nil
			if !d.null() {
				if e.Bid, err = d.bid(); err != nil {
					return e, fmt.Errorf("bid: %w", err)
				}
			}
		default:
			if err := d.skip(); err != nil {
				return e, err
			}
		}
	}
	if !typed {
		return e, errors.New("no event_type")
	}
	return e, nil
}

func (d *decoder) person() (*Person, error) {
	p := &Person{}
	if err := d.object(); err != nil {
		return nil, err
	}
	for first := true; ; {
		name, ok, err := d.member(&first)
		if err != nil || !ok {
			return p, err
		}
		switch string(name) {
		case "id":
			p.ID, err = d.int()
		case "name":
			p.Name, err = d.string()
		case "emailAddress":
			p.EmailAddress, err = d.string()
		case "creditCard":
			p.CreditCard, err = d.string()
		case "city":
			p.City, err = d.string()
		case "state":
			p.State, err = d.string()
		case "dateTime":
			p.DateTime, err = d.dateTime()
		case "extra":
			p.Extra, err = d.string()
		default:
			err = d.skip()
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
}

func (d *decoder) auction() (*Auction, error) {
	a := &Auction{}
	if err := d.object(); err != nil {
		return nil, err
	}
	for first := true; ; {
		name, ok, err := d.member(&first)
		if err != nil || !ok {
			return a, err
		}
		switch string(name) {
		case "id":
			a.ID, err = d.int()
		case "itemName":
			a.ItemName, err = d.string()
		case "description":
			a.Description, err = d.string()
		case "initialBid":
			a.InitialBid, err = d.int()
		case "reserve":
			a.Reserve, err = d.int()
		case "dateTime":
			a.DateTime, err = d.dateTime()
		case "expires":
			a.Expires, err = d.dateTime()
		case "seller":
			a.Seller, err = d.int()
		case "category":
			a.Category, err = d.int()
		case "extra":
			a.Extra, err = d.string()
		default:
			err = d.skip()
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
}

func (d *decoder) bid() (*Bid, error) {
	b := &Bid{}
	if err := d.object(); err != nil {
		return nil, err
	}
	for first := true; ; {
		name, ok, err := d.member(&first)
		if err != nil || !ok {
			return b, err
		}
		switch string(name) {
		case "auction":
			b.Auction, err = d.int()
		case "bidder":
			b.Bidder, err = d.int()
		case "price":
			b.Price, err = d.int()
		case "channel":
			b.Channel, err = d.string()
		case "url":
			b.URL, err = d.string()
		case "dateTime":
			b.DateTime, err = d.dateTime()
		case "extra":
			b.Extra, err = d.string()
		default:
			err = d.skip()
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
}

// int reads an integer that fits an int64.
func (d *decoder) int() (int64, error) {
	d.ws()
	start := d.i
	if d.i < len(d.b) && d.b[d.i] == '-' {
		d.i++
	}
	digits := d.i
	for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
		d.i++
	}
	switch n := d.i - digits; {
	case n == 0:
		if d.i >= len(d.b) {
			return 0, errEOF
		}
		return 0, d.errorf("want an integer, found %q", d.b[d.i])
	case n > 1 && d.b[digits] == '0':
		return 0, d.errorf("leading zero in %s", d.b[start:d.i])
	}
	if d.i < len(d.b) {
		if c := d.b[d.i]; c == '.' || c == 'e' || c == 'E' {
			return 0, d.errorf("want an integer, found a fraction or exponent")
		}
	}
	v, err := strconv.ParseInt(string(d.b[start:d.i]), 10, 64)
	if err != nil {
		return 0, d.errorf("%v", err)
	}
	return v, nil
}

func (d *decoder) string() (string, error) {
	b, err := d.stringBytes()
	return string(b), err
}

// stringBytes reads a string. Without escapes or non-ASCII bytes, the
// result aliases d.b; copy it to keep it.
func (d *decoder) stringBytes() ([]byte, error) {
	d.ws()
	if d.i >= len(d.b) {
		return nil, errEOF
	}
	if d.b[d.i] != '"' {
		return nil, d.errorf("want a string, found %q", d.b[d.i])
	}
	d.i++
	start := d.i
	for d.i < len(d.b) {
		switch c := d.b[d.i]; {
		case c == '"':
			d.i++
			return d.b[start : d.i-1], nil
		case c == '\\' || c < 0x20 || c >= utf8.RuneSelf:
			return d.stringSlow(start)
		}
		d.i++
	}
	return nil, errEOF
}

// stringSlow reads the rest of a string that has escapes or non-ASCII
// bytes, from start, as encoding/json does: invalid UTF-8 and lone
// surrogates become U+FFFD.
func (d *decoder) stringSlow(start int) ([]byte, error) {
	out := append([]byte(nil), d.b[start:d.i]...)
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			return out, nil
		case c < 0x20:
			return nil, d.errorf("control character %q in a string", c)
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(d.b[d.i:])
			if r == utf8.RuneError && size == 1 {
				out = utf8.AppendRune(out, utf8.RuneError)
			} else {
				out = append(out, d.b[d.i:d.i+size]...)
			}
			d.i += size
			continue
		case c != '\\':
			out = append(out, c)
			d.i++
			continue
		}
		// An escape.
		if d.i+1 >= len(d.b) {
			return nil, errEOF
		}
		e := d.b[d.i+1]
		d.i += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, err := d.hex4()
			if err != nil {
				return nil, err
			}
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if len(d.b)-d.i >= 6 && d.b[d.i] == '\\' && d.b[d.i+1] == 'u' {
					save := d.i
					d.i += 2
					if r2, err = d.hex4(); err != nil {
						return nil, err
					}
					if utf16.DecodeRune(r, r2) == utf8.RuneError {
						d.i, r2 = save, -1 // not a pair: the second stands alone
					}
				}
				if r2 < 0 {
					r = utf8.RuneError
				} else {
					r = utf16.DecodeRune(r, r2)
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			return nil, d.errorf("invalid escape \\%c", e)
		}
	}
	return nil, errEOF
}

func (d *decoder) hex4() (rune, error) {
	if len(d.b)-d.i < 4 {
		return 0, errEOF
	}
	var r rune
	for _, c := range d.b[d.i : d.i+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, d.errorf("invalid \\u escape")
		}
	}
	d.i += 4
	return r, nil
}

func (d *decoder) dateTime() (DateTime, error) {
	b, err := d.stringBytes()
	if err != nil {
		return 0, err
	}
	return parseDateTime(b)
}

// skip reads past one value of any kind.
func (d *decoder) skip() error {
	d.ws()
	if d.i >= len(d.b) {
		return errEOF
	}
	switch c := d.b[d.i]; {
	case c == '"':
		_, err := d.stringBytes()
		return err
	case c == '{':
		d.i++
		for first := true; ; {
			_, ok, err := d.member(&first)
			if err != nil || !ok {
				return err
			}
			if err := d.skip(); err != nil {
				return err
			}
		}
	case c == '[':
		d.i++
		for first := true; ; first = false {
			d.ws()
			if d.i >= len(d.b) {
				return errEOF
			}
			if d.b[d.i] == ']' {
				d.i++
				return nil
			}
			if !first {
				if d.b[d.i] != ',' {
					return d.errorf("want ',' or ']', found %q", d.b[d.i])
				}
				d.i++
			}
			if err := d.skip(); err != nil {
				return err
			}
		}
	case c == 't' || c == 'f' || c == 'n':
		for _, lit := range []string{"true", "false", "null"} {
			if len(d.b)-d.i >= len(lit) && string(d.b[d.i:d.i+len(lit)]) == lit {
				d.i += len(lit)
				return nil
			}
		}
		return d.errorf("invalid literal")
	case c == '-' || (c >= '0' && c <= '9'):
		start := d.i
		for d.i < len(d.b) && (d.b[d.i] == '-' || d.b[d.i] == '+' || d.b[d.i] == '.' ||
			d.b[d.i] == 'e' || d.b[d.i] == 'E' || (d.b[d.i] >= '0' && d.b[d.i] <= '9')) {
			d.i++
		}
		if _, err := strconv.ParseFloat(string(d.b[start:d.i]), 64); err != nil {
			return d.errorf("invalid number %s", d.b[start:d.i])
		}
		return nil
	}
	return d.errorf("unexpected %q", d.b[d.i])
}

// parseDateTime reads "yyyy-MM-dd HH:mm:ss[.fraction]" in UTC, also with
// 'T' for the space and a trailing 'Z'.
func parseDateTime(b []byte) (DateTime, error) {
	bad := func() (DateTime, error) {
		return 0, fmt.Errorf("dateTime %q: want yyyy-MM-dd HH:mm:ss.SSS", b)
	}
	if len(b) < 19 || b[4] != '-' || b[7] != '-' || (b[10] != ' ' && b[10] != 'T') || b[13] != ':' || b[16] != ':' {
		return bad()
	}
	num := func(s []byte) int {
		v := 0
		for _, c := range s {
			if c < '0' || c > '9' {
				return -1
			}
			v = v*10 + int(c-'0')
		}
		return v
	}
	y, mo, day, h, mi, s := num(b[0:4]), num(b[5:7]), num(b[8:10]), num(b[11:13]), num(b[14:16]), num(b[17:19])
	if y < 0 || mo < 1 || mo > 12 || day < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || s < 0 || s > 59 {
		return bad()
	}
	rest := b[19:]
	if len(rest) > 0 && rest[len(rest)-1] == 'Z' {
		rest = rest[:len(rest)-1]
	}
	ms := 0
	if len(rest) > 0 {
		if rest[0] != '.' || len(rest) < 2 || len(rest) > 10 || num(rest[1:]) < 0 {
			return bad()
		}
		for i := 1; i < 4; i++ {
			ms *= 10
			if i < len(rest) {
				ms += int(rest[i] - '0')
			}
		}
	}
	t := time.Date(y, time.Month(mo), day, h, mi, s, 0, time.UTC)
	if t.Day() != day { // 31 April, say, which time.Date moves to May
		return bad()
	}
	return DateTime(t.UnixMilli() + int64(ms)), nil
}
