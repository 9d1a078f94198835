package nexmark

import (
	"fmt"
	"time"
)

// EventType is what an Event carries, as the topic's event_type field
// says: 0 a person, 1 an auction, 2 a bid (nexmark-flink's numbering).
type EventType int

// The event types.
const (
	PersonEvent  EventType = 0
	AuctionEvent EventType = 1
	BidEvent     EventType = 2
)

func (t EventType) String() string {
	switch t {
	case PersonEvent:
		return "person"
	case AuctionEvent:
		return "auction"
	case BidEvent:
		return "bid"
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}

// Event is one record of the Nexmark topic: exactly one of Person, Auction
// and Bid is set, the one Type names; the others encode as null.
type Event struct {
	Type    EventType `json:"event_type"`
	Person  *Person   `json:"person"`
	Auction *Auction  `json:"auction"`
	Bid     *Bid      `json:"bid"`
}

// DateTime is the event's time: its person's, auction's or bid's
// dateTime, or zero for an event carrying none of them.
func (e Event) DateTime() DateTime {
	switch {
	case e.Person != nil:
		return e.Person.DateTime
	case e.Auction != nil:
		return e.Auction.DateTime
	case e.Bid != nil:
		return e.Bid.DateTime
	}
	return 0
}

// Time is the event's time as a time.Time: what the queries' watermark
// strategy reads.
func (e Event) Time() time.Time { return e.DateTime().Time() }

// Person is a new user of the auction site.
type Person struct {
	ID           int64    `json:"id"`
	Name         string   `json:"name"`
	EmailAddress string   `json:"emailAddress"`
	CreditCard   string   `json:"creditCard"`
	City         string   `json:"city"`
	State        string   `json:"state"`
	DateTime     DateTime `json:"dateTime"`
	Extra        string   `json:"extra"`
}

// Auction is an item put up for auction by Seller, a person's id.
type Auction struct {
	ID          int64    `json:"id"`
	ItemName    string   `json:"itemName"`
	Description string   `json:"description"`
	InitialBid  int64    `json:"initialBid"`
	Reserve     int64    `json:"reserve"`
	DateTime    DateTime `json:"dateTime"`
	Expires     DateTime `json:"expires"`
	Seller      int64    `json:"seller"`
	Category    int64    `json:"category"`
	Extra       string   `json:"extra"`
}

// Bid is a bid of Bidder, a person's id, on Auction, an auction's id.
// Price is in cents.
type Bid struct {
	Auction  int64    `json:"auction"`
	Bidder   int64    `json:"bidder"`
	Price    int64    `json:"price"`
	Channel  string   `json:"channel"`
	URL      string   `json:"url"`
	DateTime DateTime `json:"dateTime"`
	Extra    string   `json:"extra"`
}

// DateTime is an instant in milliseconds since the Unix epoch. In JSON it
// is "yyyy-MM-dd HH:mm:ss.SSS" in UTC, as Flink's JSON format writes a
// TIMESTAMP(3) column (its default 'json.timestamp-format.standard' =
// 'SQL'), so Flink reads the topic as nexmark-flink's Kafka table.
type DateTime int64

// DateTimeLayout is DateTime's JSON layout, as a Go time layout.
const DateTimeLayout = "2006-01-02 15:04:05.000"

// DateTimeOf returns t as a DateTime, truncated to the millisecond.
func DateTimeOf(t time.Time) DateTime { return DateTime(t.UnixMilli()) }

// Time returns d as a time.Time in UTC.
func (d DateTime) Time() time.Time { return time.UnixMilli(int64(d)).UTC() }

func (d DateTime) String() string { return d.Time().Format(DateTimeLayout) }

// MarshalJSON writes d as a quoted "yyyy-MM-dd HH:mm:ss.SSS".
func (d DateTime) MarshalJSON() ([]byte, error) { return appendDateTime(nil, d), nil }

// UnmarshalJSON reads what MarshalJSON writes; it also takes a 'T' for the
// space, a trailing 'Z', and from no to nine fraction digits (RFC 3339 in
// UTC, as Flink's ISO-8601 standard writes).
func (d *DateTime) UnmarshalJSON(b []byte) error {
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return fmt.Errorf("nexmark: dateTime %s: want a string", b)
	}
	v, err := parseDateTime(b[1 : len(b)-1])
	if err != nil {
		return err
	}
	*d = v
	return nil
}
