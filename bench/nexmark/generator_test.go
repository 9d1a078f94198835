package nexmark

import (
	"bytes"
	"encoding/json"
	"regexp"
	"slices"
	"testing"
	"time"
)

// encodeN returns the JSON of the first n events of cfg.
func encodeN(t testing.TB, cfg Config, n int) [][]byte {
	t.Helper()
	g := NewGenerator(cfg)
	out := make([][]byte, n)
	for i := range out {
		b, err := EventCodec().Encode(g.Next())
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		out[i] = b
	}
	return out
}

func TestGeneratorDeterministic(t *testing.T) {
	const n = 3000
	a, b := encodeN(t, Config{Seed: 7}, n), encodeN(t, Config{Seed: 7}, n)
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			t.Fatalf("event %d differs between two runs of one seed:\n%s\n%s", i, a[i], b[i])
		}
	}
	// At(n) is the n+1-th event, whatever came before.
	g := NewGenerator(Config{Seed: 7})
	for _, i := range []int64{2999, 0, 1234, 50, 4} {
		if got := AppendEvent(nil, g.At(i)); !bytes.Equal(got, a[i]) {
			t.Errorf("At(%d) = %s, want %s", i, got, a[i])
		}
	}
	other := encodeN(t, Config{Seed: 8}, n)
	same := 0
	for i := range a {
		if bytes.Equal(a[i], other[i]) {
			same++
		}
	}
	if same > 0 {
		t.Errorf("seeds 7 and 8 generate %d identical events of %d", same, n)
	}
}

func TestGeneratorProportions(t *testing.T) {
	g := NewGenerator(Config{})
	var counts [3]int
	for i := range 50 * 40 {
		e := g.Next()
		counts[e.Type]++
		// Within each 50: the person, then 3 auctions, then 46 bids.
		want := BidEvent
		switch pos := i % 50; {
		case pos == 0:
			want = PersonEvent
		case pos < 4:
			want = AuctionEvent
		}
		if e.Type != want {
			t.Fatalf("event %d is a %s, want a %s", i, e.Type, want)
		}
		if err := e.check(); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	if counts != [3]int{40, 120, 1840} {
		t.Errorf("persons, auctions, bids = %v, want [40 120 1840] (1:3:46)", counts)
	}
}

// TestGeneratorReferences checks that ids are consecutive from 1000 and
// that every seller, bidder and bid's auction exists when referred to.
func TestGeneratorReferences(t *testing.T) {
	g := NewGenerator(Config{Seed: 3})
	nextPerson, nextAuction := int64(FirstPersonID), int64(FirstAuctionID)
	for i := range 60_000 {
		switch e := g.Next(); e.Type {
		case PersonEvent:
			if e.Person.ID != nextPerson {
				t.Fatalf("event %d: person %d, want %d", i, e.Person.ID, nextPerson)
			}
			nextPerson++
		case AuctionEvent:
			a := e.Auction
			if a.ID != nextAuction {
				t.Fatalf("event %d: auction %d, want %d", i, a.ID, nextAuction)
			}
			nextAuction++
			if a.Seller < FirstPersonID || a.Seller >= nextPerson {
				t.Fatalf("event %d: auction %d sold by person %d, who does not exist (persons %d..%d)", i, a.ID, a.Seller, FirstPersonID, nextPerson-1)
			}
			if a.Category < FirstCategoryID || a.Category >= FirstCategoryID+NumCategories {
				t.Fatalf("event %d: category %d", i, a.Category)
			}
			if a.Expires <= a.DateTime || a.Reserve < a.InitialBid {
				t.Fatalf("event %d: auction %+v expires before it starts or reserves below its initial bid", i, a)
			}
		case BidEvent:
			b := e.Bid
			if b.Auction < FirstAuctionID || b.Auction >= nextAuction {
				t.Fatalf("event %d: bid on auction %d, which does not exist (auctions %d..%d)", i, b.Auction, FirstAuctionID, nextAuction-1)
			}
			if b.Bidder < FirstPersonID || b.Bidder >= nextPerson {
				t.Fatalf("event %d: bid by person %d, who does not exist (persons %d..%d)", i, b.Bidder, FirstPersonID, nextPerson-1)
			}
			if b.Price < 100 || b.Price > 100_000_000 {
				t.Fatalf("event %d: price %d outside [$1, $1M]", i, b.Price)
			}
		}
	}
}

// TestGeneratorHotRatios checks the share of hot auctions, sellers and
// bidders against 1-1/ratio (plus the chance of a random pick hitting the
// hot one).
func TestGeneratorHotRatios(t *testing.T) {
	g := NewGenerator(Config{Seed: 11})
	var bids, hotAuction, hotBidder, auctions, hotSeller float64
	for i := range int64(100_000) {
		e := g.Next()
		lastP := g.lastPerson(i)
		switch e.Type {
		case AuctionEvent:
			auctions++
			if e.Auction.Seller == lastP/hotBatch*hotBatch+FirstPersonID {
				hotSeller++
			}
		case BidEvent:
			bids++
			if e.Bid.Auction == g.lastAuction(i)/hotBatch*hotBatch+FirstAuctionID {
				hotAuction++
			}
			if e.Bid.Bidder == min(lastP/hotBatch*hotBatch+1, lastP)+FirstPersonID {
				hotBidder++
			}
		}
	}
	for _, c := range []struct {
		what      string
		got, want float64
	}{
		{"bids on the hot auction", hotAuction / bids, 1 - 1.0/2},
		{"bids by the hot bidder", hotBidder / bids, 1 - 1.0/4},
		{"auctions of the hot seller", hotSeller / auctions, 1 - 1.0/4},
	} {
		if c.got < c.want-0.02 || c.got > c.want+0.05 {
			t.Errorf("%s: %.3f, want about %.3f", c.what, c.got, c.want)
		}
	}
}

func TestGeneratorEventTime(t *testing.T) {
	g := NewGenerator(Config{})
	base := DateTimeOf(BaseTime)
	for i := range int64(25_000) {
		// 10,000 events a second: event i at i/10 ms.
		if got, want := g.Next().DateTime(), base+DateTime(i/10); got != want {
			t.Fatalf("event %d at %s, want %s", i, got, want)
		}
	}
	g = NewGenerator(Config{EventsPerSecond: 3, BaseTime: time.Date(2030, 5, 1, 0, 0, 0, 0, time.UTC)})
	for i, want := range []string{"2030-05-01 00:00:00.000", "2030-05-01 00:00:00.333", "2030-05-01 00:00:00.666", "2030-05-01 00:00:01.000"} {
		if got := g.Next().DateTime().String(); got != want {
			t.Errorf("event %d at 3/s at %s, want %s", i, got, want)
		}
	}
}

// TestEventJSONLayout checks the layout of nexmark-flink's Kafka table:
// every member present, the two absent kinds null, the fields named as
// Flink's table names them, times as "yyyy-MM-dd HH:mm:ss.SSS".
func TestEventJSONLayout(t *testing.T) {
	fields := map[string][]string{
		"person":  {"city", "creditCard", "dateTime", "emailAddress", "extra", "id", "name", "state"},
		"auction": {"category", "dateTime", "description", "expires", "extra", "id", "initialBid", "itemName", "reserve", "seller"},
		"bid":     {"auction", "bidder", "channel", "dateTime", "extra", "price", "url"},
	}
	kinds := []string{"person", "auction", "bid"}
	timeRE := regexp.MustCompile(`^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}$`)
	for i, b := range encodeN(t, Config{}, 200) {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("event %d: %v: %s", i, err, b)
		}
		if len(m) != 4 {
			t.Fatalf("event %d has members %v, want event_type, person, auction, bid", i, m)
		}
		typ, ok := m["event_type"].(float64)
		if !ok || typ < 0 || typ > 2 {
			t.Fatalf("event %d: event_type %v", i, m["event_type"])
		}
		for k, kind := range kinds {
			v, present := m[kind]
			if !present {
				t.Fatalf("event %d has no %q member: %s", i, kind, b)
			}
			if k != int(typ) {
				if v != nil {
					t.Fatalf("event %d of type %v has a non-null %s: %s", i, typ, kind, b)
				}
				continue
			}
			obj, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("event %d: %s is %T, want an object", i, kind, v)
			}
			var names []string
			for name, fv := range obj {
				names = append(names, name)
				if name == "dateTime" || name == "expires" {
					if s, _ := fv.(string); !timeRE.MatchString(s) {
						t.Fatalf("event %d: %s.%s = %v, want yyyy-MM-dd HH:mm:ss.SSS", i, kind, name, fv)
					}
				}
			}
			slices.Sort(names)
			if !slices.Equal(names, fields[kind]) {
				t.Fatalf("event %d: %s has fields %v, want %v", i, kind, names, fields[kind])
			}
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("zero config: %v", err)
	}
	for _, c := range []Config{
		{EventsPerSecond: -1},
		{PersonProportion: -1, AuctionProportion: 3, BidProportion: 46},
		{PersonProportion: 0, AuctionProportion: 3, BidProportion: 46},
		{PersonProportion: 1, AuctionProportion: 0, BidProportion: 46},
		{AvgBidByteSize: -5},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: no error", c)
		}
		// The generator still works, with defaults for what is wrong.
		g := NewGenerator(c)
		for range 100 {
			if err := g.Next().check(); err != nil {
				t.Fatalf("%+v: %v", c, err)
			}
		}
	}
}
