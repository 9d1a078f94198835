package nexmark

import (
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
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
	return AppendEvent(make([]byte, 0, eventSize(&e)), e), nil
}

// eventSize is room for e's JSON without escapes.
func eventSize(e *Event) int {
	n := 64
	if p := e.Person; p != nil {
		n += 192 + len(p.Name) + len(p.EmailAddress) + len(p.CreditCard) + len(p.City) + len(p.State) + len(p.Extra)
	}
	if a := e.Auction; a != nil {
		n += 256 + len(a.ItemName) + len(a.Description) + len(a.Extra)
	}
	if b := e.Bid; b != nil {
		n += bidSize(b)
	}
	return n
}

func (eventCodec) Decode(b []byte) (Event, error) { return DecodeEvent(b) }

type bidCodec struct{}

func (bidCodec) Encode(b Bid) ([]byte, error) {
	return appendBid(make([]byte, 0, bidSize(&b)), &b), nil
}

// bidSize is room for b's JSON without escapes: its strings, and 160
// bytes for the names, numbers and time.
func bidSize(b *Bid) int { return 160 + len(b.Channel) + len(b.URL) + len(b.Extra) }

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
	if d < 0 || d >= maxCivilMillis {
		dst = d.Time().AppendFormat(dst, DateTimeLayout)
		return append(dst, '"')
	}
	// What time.Format does, for this one layout and years 1970 to 9999,
	// without its layout parsing (a tenth of query 0's CPU).
	ms := int64(d)
	y, m, day := civil(ms / msPerDay)
	ms %= msPerDay
	dst = append2(append2(dst, y/100), y%100)
	dst = append2(append(dst, '-'), m)
	dst = append2(append(dst, '-'), day)
	dst = append2(append(dst, ' '), int(ms/3_600_000))
	dst = append2(append(dst, ':'), int(ms/60_000%60))
	dst = append2(append(dst, ':'), int(ms/1000%60))
	frac := int(ms % 1000)
	dst = append(dst, '.', byte('0'+frac/100))
	dst = append2(dst, frac%100)
	return append(dst, '"')
}

const (
	msPerDay = 86_400_000
	// maxCivilMillis is 10000-01-01 in Unix milliseconds: civil and the
	// four-digit year hold before it.
	maxCivilMillis = 253_402_300_800_000
)

// append2 appends v, 0 to 99, as two digits.
func append2(dst []byte, v int) []byte { return append(dst, byte('0'+v/10), byte('0'+v%10)) }

// civil returns the proleptic Gregorian date of a day counted from
// 1970-01-01, days >= 0 (Howard Hinnant's civil_from_days).
func civil(days int64) (year, month, day int) {
	z := days + 719_468
	era := z / 146_097
	doe := z - era*146_097
	yoe := (doe - doe/1460 + doe/36_524 - doe/146_096) / 365
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	day = int(doy - (153*mp+2)/5 + 1)
	month = int(mp + 3)
	if month > 12 {
		month -= 12
	}
	year = int(yoe + era*400)
	if month <= 2 {
		year++
	}
	return year, month, day
}

// daysOf is civil's inverse: the days from 1970-01-01 to a proleptic
// Gregorian date of a year >= 0 (Hinnant's days_from_civil).
func daysOf(year, month, day int) int64 {
	y := int64(year)
	if month <= 2 {
		y--
	}
	era := y
	if era < 0 {
		era -= 399
	}
	era /= 400
	yoe := y - era*400
	mp := int64(month + 9)
	if month > 2 {
		mp = int64(month - 3)
	}
	doy := (153*mp+2)/5 + int64(day) - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146_097 + doe - 719_468
}

// daysIn returns the number of days of a month.
func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

const hexDigits = "0123456789abcdef"

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// plain returns the length of b's prefix that a JSON string holds as it
// is: no quote, backslash, control character or byte of non-ASCII UTF-8.
// It tests eight bytes at a time: strings are most of an event's bytes.
func plain[T string | []byte](b T) int {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		x := uint64(b[i]) | uint64(b[i+1])<<8 | uint64(b[i+2])<<16 | uint64(b[i+3])<<24 |
			uint64(b[i+4])<<32 | uint64(b[i+5])<<40 | uint64(b[i+6])<<48 | uint64(b[i+7])<<56
		q := x ^ (ones * '"')
		bs := x ^ (ones * '\\')
		// A byte's high bit for: below 0x20, zero after the xor (quote,
		// backslash), or set. Bytes above the first such one may be
		// marked falsely, never those below it.
		m := ((x - ones*0x20) & ^x) | ((q - ones) & ^q) | ((bs - ones) & ^bs) | x
		if m &= highs; m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for ; i < len(b); i++ {
		if c := b[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			break
		}
	}
	return i
}

// appendString appends s quoted, escaping what JSON requires (quotes,
// backslashes, control characters) and U+2028 and U+2029, as encoding/json
// does; invalid UTF-8 becomes U+FFFD.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		i += plain(s[i:])
		if i >= len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
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
	var str [6][]byte // as in bid
	for first := true; ; {
		name, ok, err := d.member(&first)
		if err != nil {
			return nil, err
		}
		if !ok {
			setStrings(str[:], &p.Name, &p.EmailAddress, &p.CreditCard, &p.City, &p.State, &p.Extra)
			return p, nil
		}
		switch string(name) {
		case "id":
			p.ID, err = d.int()
		case "name":
			str[0], err = d.stringBytes()
		case "emailAddress":
			str[1], err = d.stringBytes()
		case "creditCard":
			str[2], err = d.stringBytes()
		case "city":
			str[3], err = d.stringBytes()
		case "state":
			str[4], err = d.stringBytes()
		case "dateTime":
			p.DateTime, err = d.dateTime()
		case "extra":
			str[5], err = d.stringBytes()
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
	var str [3][]byte // as in bid
	for first := true; ; {
		name, ok, err := d.member(&first)
		if err != nil {
			return nil, err
		}
		if !ok {
			setStrings(str[:], &a.ItemName, &a.Description, &a.Extra)
			return a, nil
		}
		switch string(name) {
		case "id":
			a.ID, err = d.int()
		case "itemName":
			str[0], err = d.stringBytes()
		case "description":
			str[1], err = d.stringBytes()
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
			str[2], err = d.stringBytes()
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
	// The strings, as read: one allocation holds them all at the end.
	var str [3][]byte
	for first := true; ; {
		name, ok, err := d.member(&first)
		if err != nil {
			return nil, err
		}
		if !ok {
			setStrings(str[:], &b.Channel, &b.URL, &b.Extra)
			return b, nil
		}
		switch string(name) {
		case "auction":
			b.Auction, err = d.int()
		case "bidder":
			b.Bidder, err = d.int()
		case "price":
			b.Price, err = d.int()
		case "channel":
			str[0], err = d.stringBytes()
		case "url":
			str[1], err = d.stringBytes()
		case "dateTime":
			b.DateTime, err = d.dateTime()
		case "extra":
			str[2], err = d.stringBytes()
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
	if n := d.i - digits; n <= 18 { // cannot overflow
		var v int64
		for _, c := range d.b[digits:d.i] {
			v = v*10 + int64(c-'0')
		}
		if digits > start {
			v = -v
		}
		return v, nil
	}
	v, err := strconv.ParseInt(string(d.b[start:d.i]), 10, 64)
	if err != nil {
		return 0, d.errorf("%v", err)
	}
	return v, nil
}

// setStrings sets each of dst to the string of the same index of src, all
// of them in one allocation: a bid's three strings cost one, not three.
func setStrings(src [][]byte, dst ...*string) {
	n := 0
	for _, b := range src {
		n += len(b)
	}
	var sb strings.Builder
	sb.Grow(n)
	for _, b := range src {
		sb.Write(b)
	}
	all := sb.String()
	for i, b := range src {
		*dst[i], all = all[:len(b)], all[len(b):]
	}
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
	d.i += plain(d.b[d.i:])
	if d.i >= len(d.b) {
		return nil, errEOF
	}
	if d.b[d.i] == '"' {
		d.i++
		return d.b[start : d.i-1], nil
	}
	return d.stringSlow(start)
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
	if day > daysIn(y, mo) { // 31 April, say
		return bad()
	}
	secs := daysOf(y, mo, day)*86_400 + int64(h*3600+mi*60+s)
	return DateTime(secs*1000 + int64(ms)), nil
}
