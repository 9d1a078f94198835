package nexmark

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestEventCodecRoundTrip(t *testing.T) {
	g := NewGenerator(Config{Seed: 5})
	c := EventCodec()
	for i := range 2000 {
		e := g.Next()
		b, err := c.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Decode(b)
		if err != nil {
			t.Fatalf("event %d: %v: %s", i, err, b)
		}
		if !reflect.DeepEqual(got, e) {
			t.Fatalf("event %d: decoded %+v, want %+v", i, got, e)
		}
	}
}

// weirdString makes strings with what JSON must escape, non-ASCII, and
// invalid UTF-8.
func weirdString(r *rand.Rand) string {
	parts := []string{"a", " ", `"`, `\`, "/", "\n", "\t", "\x00", "\x1f", "<>&", "é", "日本", "\u2028", "😀", "\xff", "\xed\xa0\x80", "\u007f"}
	var b strings.Builder
	for range r.IntN(12) {
		b.WriteString(parts[r.IntN(len(parts))])
	}
	return b.String()
}

func weirdEvent(r *rand.Rand) Event {
	s := func() string { return weirdString(r) }
	n := func() int64 { return r.Int64() - r.Int64() }
	ts := func() DateTime { return DateTime(r.Int64N(1 << 45)) }
	switch r.IntN(3) {
	case 0:
		return Event{Type: PersonEvent, Person: &Person{ID: n(), Name: s(), EmailAddress: s(), CreditCard: s(), City: s(), State: s(), DateTime: ts(), Extra: s()}}
	case 1:
		return Event{Type: AuctionEvent, Auction: &Auction{ID: n(), ItemName: s(), Description: s(), InitialBid: n(), Reserve: n(), DateTime: ts(), Expires: ts(), Seller: n(), Category: n(), Extra: s()}}
	}
	return Event{Type: BidEvent, Bid: &Bid{Auction: n(), Bidder: n(), Price: n(), Channel: s(), URL: s(), DateTime: ts(), Extra: s()}}
}

// validUTF8 is what a JSON round trip makes of e's strings: invalid UTF-8
// becomes U+FFFD, byte by byte, as encoding/json does.
func validUTF8(e Event) Event {
	b, err := json.Marshal(e)
	if err != nil {
		panic(err)
	}
	var out Event
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return out
}

// TestEventCodecAgainstEncodingJSON holds the hand-written codec to
// encoding/json with the model's tags: each reads what the other writes.
func TestEventCodecAgainstEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		e := weirdEvent(r)
		want := validUTF8(e)
		ours := AppendEvent(nil, e)
		var fromOurs Event
		if err := json.Unmarshal(ours, &fromOurs); err != nil {
			t.Fatalf("%d: encoding/json cannot read %s: %v", i, ours, err)
		}
		if !reflect.DeepEqual(fromOurs, want) {
			t.Fatalf("%d: encoding/json read %s as %+v, want %+v", i, ours, fromOurs, want)
		}
		theirs, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeEvent(theirs)
		if err != nil {
			t.Fatalf("%d: cannot read encoding/json's %s: %v", i, theirs, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%d: read %s as %+v, want %+v", i, theirs, got, want)
		}
		again, err := DecodeEvent(ours)
		if err != nil || !reflect.DeepEqual(again, want) {
			t.Fatalf("%d: read our own %s as %+v (%v), want %+v", i, ours, again, err, want)
		}
	}
}

func TestDecodeEventAccepts(t *testing.T) {
	want := Event{Type: BidEvent, Bid: &Bid{Auction: 1007, Bidder: -3, Price: 0, Channel: "a\"b/é😀", URL: "", DateTime: 1704067200123, Extra: "x"}}
	for _, in := range []string{
		// Reordered members, white space, escapes, unknown members.
		` { "bid" : { "extra":"x", "price":0, "dateTime":"2024-01-01 00:00:00.123", "channel":"a\"b\/\u00e9\ud83d\ude00",
		   "url":"", "bidder":-3, "auction":1007, "new":[1,{"a":[]},"s",-2.5e3,true,null] },
		  "auction":null, "person" : null, "event_type" : 2, "extra": {"k": false} } `,
		// Other time layouts: ISO with Z, fewer or more fraction digits.
		`{"event_type":2,"bid":{"auction":1007,"bidder":-3,"price":0,"channel":"a\"b/é😀","url":"","dateTime":"2024-01-01T00:00:00.123Z","extra":"x"}}`,
		`{"event_type":2,"bid":{"auction":1007,"bidder":-3,"price":0,"channel":"a\"b/é😀","url":"","dateTime":"2024-01-01 00:00:00.123456789","extra":"x"}}`,
		// A member given twice: the last counts, as in encoding/json.
		`{"event_type":1,"event_type":2,"bid":{"auction":1,"auction":1007,"bidder":-3,"price":0,"channel":"a\"b/é😀","url":"","dateTime":"2024-01-01 00:00:00.123","extra":"x"}}`,
	} {
		got, err := DecodeEvent([]byte(in))
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %+v (%+v), want %+v", in, got, got.Bid, want.Bid)
		}
	}
}

func TestDecodeEventRejects(t *testing.T) {
	valid := string(AppendEvent(nil, NewGenerator(Config{}).At(7)))
	for _, in := range []string{
		"",
		"null",
		"[]",
		valid + " {}",
		valid + "x",
		`{"person":null,"auction":null,"bid":null}`,                             // no event_type
		`{"event_type":2,"person":null,"auction":null,"bid":null}`,              // a bid event without its bid
		`{"event_type":3,"person":null,"auction":null,"bid":null}`,              // unknown type
		`{"event_type":1.0,"bid":null}`,                                         // not an integer
		`{"event_type":01}`,                                                     // leading zero
		`{"event_type":2,"bid":{"auction":99999999999999999999}}`,               // out of range
		`{"event_type":2,"bid":{"dateTime":"2024-02-30 00:00:00.000"}}`,         // no such day
		`{"event_type":2,"bid":{"dateTime":"2024-01-01 00:00"}}`,                // too short
		`{"event_type":2,"bid":{"dateTime":1704067200000}}`,                     // not a string
		`{"event_type":2,"bid":{"channel":"a` + "\n" + `"}}`,                    // raw control character
		`{"event_type":2,"bid":{"channel":"\x"}}`,                               // bad escape
		`{"event_type":2,"bid":{"channel":"\u12"}}`,                             // short \u
		`{"event_type":2,,"bid":null}`,                                          // double comma
		`{"event_type":2,"bid":{"auction":1,}}`,                                 // trailing comma
		`{"event_type":2 "bid":null}`,                                           // missing comma
		`{"event_type":2,"x":tru}`,                                              // bad literal
		`{"event_type":2,"x":[1 2]}`,                                            // bad array
		`{"event_type":2,"x":1.2.3}`,                                            // bad number
		`{event_type:2}`,                                                        // unquoted name
		`{"event_type":2,"person":null,"auction":{"id":1},"bid":{"auction":1}}`, // two kinds
	} {
		if e, err := DecodeEvent([]byte(in)); err == nil {
			t.Errorf("%q: decoded as %+v, want an error", in, e)
		}
	}
	// Every strict prefix of a valid event is an error.
	for i := range len(valid) {
		if _, err := DecodeEvent([]byte(valid[:i])); err == nil {
			t.Fatalf("prefix %q: no error", valid[:i])
		}
	}
}

func TestBidCodec(t *testing.T) {
	b := *NewGenerator(Config{}).At(7).Bid
	enc, err := BidCodec().Encode(b)
	if err != nil {
		t.Fatal(err)
	}
	var viaJSON Bid
	if err := json.Unmarshal(enc, &viaJSON); err != nil || !reflect.DeepEqual(viaJSON, b) {
		t.Fatalf("encoding/json read %s as %+v (%v), want %+v", enc, viaJSON, err, b)
	}
	got, err := BidCodec().Decode(enc)
	if err != nil || !reflect.DeepEqual(got, b) {
		t.Fatalf("decoded %s as %+v (%v), want %+v", enc, got, err, b)
	}
	if _, err := BidCodec().Decode(append(enc, '}')); err == nil {
		t.Error("trailing data: no error")
	}
}

func FuzzDecodeEvent(f *testing.F) {
	g := NewGenerator(Config{})
	for i := range int64(5) {
		f.Add(AppendEvent(nil, g.At(i)))
	}
	f.Add([]byte(`{"event_type":2,"bid":{"channel":"\ud800\u0041\udc00"}, "x":[{"y":[]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEvent(b)
		if err != nil {
			return
		}
		// What decodes re-encodes to the same event.
		again, err := DecodeEvent(AppendEvent(nil, e))
		if err != nil || !reflect.DeepEqual(again, e) {
			t.Fatalf("%q decoded as %+v, which re-encodes to %+v (%v)", b, e, again, err)
		}
	})
}

// TestDateTimeAgainstTime holds the hand-written date arithmetic to the
// time package: every day from 1600 to 2499, every seventh from year 0 to
// 9999, and random instants, across
// the fast path's bounds, write and read as time.Format and time.Date do.
func TestDateTimeAgainstTime(t *testing.T) {
	check := func(d DateTime) {
		t.Helper()
		want := `"` + d.Time().Format(DateTimeLayout) + `"`
		got := string(appendDateTime(nil, d))
		if got != want {
			t.Fatalf("%d: wrote %s, want %s", int64(d), got, want)
		}
		if d >= maxCivilMillis {
			return // a five-digit year, which the layout cannot read
		}
		back, err := parseDateTime([]byte(got[1 : len(got)-1]))
		if err != nil || back != d {
			t.Fatalf("%d: %s read back as %d (%v)", int64(d), got, int64(back), err)
		}
	}
	day := DateTime(24 * time.Hour / time.Millisecond)
	at := func(year int) DateTime { return DateTimeOf(time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC)) }
	for d := at(0); d < at(10000); {
		check(d)
		check(d + day - 1)
		if d >= at(1600) && d < at(2500) {
			d += day
		} else {
			d += 7 * day
		}
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 100_000 {
		check(DateTime(r.Int64N(maxCivilMillis+5*int64(day))) - 2*day)
	}
	for _, bad := range []string{"2023-02-29 00:00:00.000", "2100-02-29 00:00:00", "2024-04-31 12:00:00", "2024-13-01 00:00:00", "2024-00-10 00:00:00", "2024-01-00 00:00:00"} {
		if _, err := parseDateTime([]byte(bad)); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
	for _, good := range []string{"2024-02-29 23:59:59.999", "2000-02-29 00:00:00", "0000-02-29 00:00:00"} {
		want, _ := time.Parse(DateTimeLayout, good)
		if strings.Count(good, ".") == 0 {
			want, _ = time.Parse("2006-01-02 15:04:05", good)
		}
		if got, err := parseDateTime([]byte(good)); err != nil || got != DateTimeOf(want) {
			t.Errorf("%s: read as %d (%v), want %d", good, int64(got), err, int64(DateTimeOf(want)))
		}
	}
}

// TestPlainAgainstBytes holds plain's eight-bytes-at-a-time test to the
// byte-at-a-time one, over strings of the bytes at its edges.
func TestPlainAgainstBytes(t *testing.T) {
	edge := []byte{'a', 0x00, 0x1f, 0x20, 0x21, '"', 0x23, 0x5b, '\\', 0x5d, 0x7f, 0x80, 0xc3, 0xff}
	r := rand.New(rand.NewPCG(5, 6))
	for range 200_000 {
		b := make([]byte, r.IntN(40))
		for i := range b {
			if r.IntN(4) == 0 {
				b[i] = edge[r.IntN(len(edge))]
			} else {
				b[i] = byte(0x20 + r.IntN(0x60))
			}
		}
		want := 0
		for want < len(b) && b[want] >= 0x20 && b[want] != '"' && b[want] != '\\' && b[want] < 0x80 {
			want++
		}
		if got := plain(b); got != want {
			t.Fatalf("plain(%q) = %d, want %d", b, got, want)
		}
		if got := plain(string(b)); got != want {
			t.Fatalf("plain(string %q) = %d, want %d", b, got, want)
		}
	}
}
