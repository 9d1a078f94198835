package nexmark

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// The model's constants, as the reference generator (nexmark-flink's
// GeneratorConfig and model generators, after Apache Beam's) has them.
const (
	// FirstPersonID, FirstAuctionID and FirstCategoryID are the first ids
	// of each kind.
	FirstPersonID   = 1000
	FirstAuctionID  = 1000
	FirstCategoryID = 10
	// NumCategories is how many categories auctions are in.
	NumCategories = 5

	// Hot sellers, bidders and auctions are the first (sellers, auctions)
	// or second (bidders) of the last batch of hotBatch ids.
	hotBatch = 100
	// Hot channels: a bid comes through one of hotChannels with
	// probability 1-1/hotChannelsRatio, else through one of numChannels.
	hotChannelsRatio = 2
	numChannels      = 10_000
)

var (
	usStates   = []string{"AZ", "CA", "ID", "OR", "WA", "WY"}
	usCities   = []string{"Phoenix", "Los Angeles", "San Francisco", "Boise", "Portland", "Bend", "Redmond", "Seattle", "Kent", "Cheyenne"}
	firstNames = []string{"Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter"}
	lastNames  = []string{"Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris"}
	// hotChannels are the channels most bids come through.
	hotChannels = []string{"Google", "Facebook", "Baidu", "Apple"}
)

// BaseTime is the default time of the first event: a fixed instant, so that
// every run generates the same events.
var BaseTime = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// Config is what the generator makes. The zero value of a field takes the
// default named beside it, which is the reference generator's (nexmark-flink's
// NexmarkConfiguration) unless said otherwise.
type Config struct {
	// Seed seeds every random choice: the same seed and configuration
	// generate the same events. Default 0 is a seed like any other.
	Seed uint64
	// BaseTime is the first event's time. Default: BaseTime.
	BaseTime time.Time
	// EventsPerSecond is the event rate in event time: event n happens at
	// BaseTime + n/EventsPerSecond seconds (truncated to the millisecond).
	// It says nothing of how fast events are written. Default 10,000.
	EventsPerSecond int
	// PersonProportion, AuctionProportion and BidProportion are the
	// event mix: of every PersonProportion+AuctionProportion+BidProportion
	// events, that many persons, then auctions, then bids. Default 1:3:46.
	PersonProportion, AuctionProportion, BidProportion int
	// HotAuctionRatio: a bid is on a hot auction with probability
	// 1-1/HotAuctionRatio. Default 2.
	HotAuctionRatio int
	// HotSellersRatio: an auction is a hot seller's with probability
	// 1-1/HotSellersRatio. Default 4.
	HotSellersRatio int
	// HotBiddersRatio: a bid is a hot bidder's with probability
	// 1-1/HotBiddersRatio. Default 4.
	HotBiddersRatio int
	// NumActivePeople is how many of the latest persons sell and bid
	// (besides the hot ones). Default 1000.
	NumActivePeople int
	// NumInFlightAuctions is how many of the latest auctions get bids
	// (besides the hot ones), and sets how long auctions last. Default 100.
	NumInFlightAuctions int
	// AvgPersonByteSize, AvgAuctionByteSize and AvgBidByteSize size the
	// events' extra field, so that the events average about that many bytes
	// of field data. Default 200, 500 and 100.
	AvgPersonByteSize, AvgAuctionByteSize, AvgBidByteSize int
}

// withDefaults returns c with its zero fields defaulted.
func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	if c.BaseTime.IsZero() {
		c.BaseTime = BaseTime
	}
	def(&c.EventsPerSecond, 10_000)
	if c.PersonProportion == 0 && c.AuctionProportion == 0 && c.BidProportion == 0 {
		c.PersonProportion, c.AuctionProportion, c.BidProportion = 1, 3, 46
	}
	def(&c.HotAuctionRatio, 2)
	def(&c.HotSellersRatio, 4)
	def(&c.HotBiddersRatio, 4)
	def(&c.NumActivePeople, 1000)
	def(&c.NumInFlightAuctions, 100)
	def(&c.AvgPersonByteSize, 200)
	def(&c.AvgAuctionByteSize, 500)
	def(&c.AvgBidByteSize, 100)
	return c
}

// Validate reports a configuration the generator cannot follow: a negative
// field, or a mix without persons or auctions (bids and auctions need
// someone to refer to).
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	for _, f := range []struct {
		name string
		v    int
	}{
		{"EventsPerSecond", c.EventsPerSecond}, {"PersonProportion", c.PersonProportion},
		{"AuctionProportion", c.AuctionProportion}, {"BidProportion", c.BidProportion},
		{"HotAuctionRatio", c.HotAuctionRatio}, {"HotSellersRatio", c.HotSellersRatio},
		{"HotBiddersRatio", c.HotBiddersRatio}, {"NumActivePeople", c.NumActivePeople},
		{"NumInFlightAuctions", c.NumInFlightAuctions}, {"AvgPersonByteSize", c.AvgPersonByteSize},
		{"AvgAuctionByteSize", c.AvgAuctionByteSize}, {"AvgBidByteSize", c.AvgBidByteSize},
	} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("%s is %d, must not be negative", f.name, f.v))
		}
	}
	if c.PersonProportion < 1 {
		errs = append(errs, errors.New("PersonProportion must be at least 1: auctions and bids refer to persons"))
	}
	if c.AuctionProportion < 1 && c.BidProportion > 0 {
		errs = append(errs, errors.New("AuctionProportion must be at least 1 when there are bids: bids refer to auctions"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("nexmark: invalid generator config: %w", err)
	}
	return nil
}

// Generator makes the Nexmark event stream, one event at a time. Event n
// (from 0) is a function of the configuration and n alone: its kind comes
// from n modulo the mix's total, the ids it creates are counted from n, and
// its random choices come from a source seeded with (Seed, n), so that a
// stream can be regenerated from any point. A Generator is not safe for
// concurrent use; make one per goroutine.
type Generator struct {
	cfg   Config
	total int64
	n     int64
	src   rand.PCG
	rnd   *rand.Rand
	// channels caches the url of each numbered channel (made on first use).
	channels []string
	hotURLs  []string
}

// NewGenerator returns a generator of cfg's events from event 0. An
// invalid cfg (see Config.Validate) is used with its offending fields at
// their defaults, and Validate tells what they were.
func NewGenerator(cfg Config) *Generator {
	if cfg.Validate() != nil {
		cfg = sanitize(cfg)
	}
	cfg = cfg.withDefaults()
	g := &Generator{cfg: cfg, total: int64(cfg.PersonProportion + cfg.AuctionProportion + cfg.BidProportion)}
	g.rnd = rand.New(&g.src)
	g.channels = make([]string, numChannels)
	for i := range hotChannels {
		g.hotURLs = append(g.hotURLs, g.channelURL(-1-i, false))
	}
	return g
}

// sanitize zeroes the fields Validate refuses, so that they default.
func sanitize(c Config) Config {
	for _, v := range []*int{&c.EventsPerSecond, &c.PersonProportion, &c.AuctionProportion, &c.BidProportion,
		&c.HotAuctionRatio, &c.HotSellersRatio, &c.HotBiddersRatio, &c.NumActivePeople, &c.NumInFlightAuctions,
		&c.AvgPersonByteSize, &c.AvgAuctionByteSize, &c.AvgBidByteSize} {
		if *v < 0 {
			*v = 0
		}
	}
	if c.PersonProportion < 1 || (c.AuctionProportion < 1 && c.BidProportion > 0) {
		c.PersonProportion, c.AuctionProportion, c.BidProportion = 0, 0, 0
	}
	return c
}

// Config is the generator's configuration, defaults filled in.
func (g *Generator) Config() Config { return g.cfg }

// Count is how many events Next has returned.
func (g *Generator) Count() int64 { return g.n }

// Next returns the next event.
func (g *Generator) Next() Event {
	e := g.At(g.n)
	g.n++
	return e
}

// SkipTo moves the generator to event n: Next returns event n next.
func (g *Generator) SkipTo(n int64) { g.n = n }

// At returns event n (from 0) without moving the generator: the event
// Next returns as its n+1-th.
func (g *Generator) At(n int64) Event {
	g.src.Seed(g.cfg.Seed, splitmix64(uint64(n)))
	ts := g.timestamp(n)
	switch rem := n % g.total; {
	case rem < int64(g.cfg.PersonProportion):
		return Event{Type: PersonEvent, Person: g.person(n, ts)}
	case rem < int64(g.cfg.PersonProportion+g.cfg.AuctionProportion):
		return Event{Type: AuctionEvent, Auction: g.auction(n, ts)}
	default:
		return Event{Type: BidEvent, Bid: g.bid(n, ts)}
	}
}

// timestamp is event n's time: n inter-event delays after the base time.
func (g *Generator) timestamp(n int64) DateTime {
	// As the reference: baseTime + (long)(n * interEventDelayUs) / 1000.
	delayUs := 1_000_000 / float64(g.cfg.EventsPerSecond)
	return DateTime(g.cfg.BaseTime.UnixMilli() + int64(float64(n)*delayUs)/1000)
}

// lastPerson is the base-0 id of the last person created by event n
// (n's own if it creates one).
func (g *Generator) lastPerson(n int64) int64 {
	epoch, off := n/g.total, n%g.total
	pp := int64(g.cfg.PersonProportion)
	if off >= pp {
		off = pp - 1
	}
	return epoch*pp + off
}

// lastAuction is the base-0 id of the last auction created by event n
// (n's own if it creates one); -1 before any.
func (g *Generator) lastAuction(n int64) int64 {
	epoch, off := n/g.total, n%g.total
	pp, ap := int64(g.cfg.PersonProportion), int64(g.cfg.AuctionProportion)
	switch {
	case off < pp:
		epoch--
		off = ap - 1
	case off >= pp+ap:
		off = ap - 1
	default:
		off -= pp
	}
	return epoch*ap + off
}

// randomPerson picks one of the latest NumActivePeople persons created by
// event n (base 0). Unlike the reference, which adds a lead of 10 ids not
// yet created, it only picks persons that exist.
func (g *Generator) randomPerson(n int64) int64 {
	people := g.lastPerson(n) + 1
	active := min(people, int64(g.cfg.NumActivePeople))
	return people - active + g.rnd.Int64N(active)
}

// randomAuction picks one of the latest NumInFlightAuctions auctions
// created by event n (base 0); as randomPerson, without the lead.
func (g *Generator) randomAuction(n int64) int64 {
	last := g.lastAuction(n)
	first := max(last-int64(g.cfg.NumInFlightAuctions), 0)
	return first + g.rnd.Int64N(last-first+1)
}

func (g *Generator) person(n int64, ts DateTime) *Person {
	p := &Person{
		ID:           g.lastPerson(n) + FirstPersonID,
		Name:         pick(g.rnd, firstNames) + " " + pick(g.rnd, lastNames),
		EmailAddress: g.randomString(7, ' ') + "@" + g.randomString(5, ' ') + ".com",
		CreditCard:   g.creditCard(),
		City:         pick(g.rnd, usCities),
		State:        pick(g.rnd, usStates),
		DateTime:     ts,
	}
	size := 8 + len(p.Name) + len(p.EmailAddress) + len(p.CreditCard) + len(p.City) + len(p.State)
	p.Extra = g.extra(size, g.cfg.AvgPersonByteSize)
	return p
}

func (g *Generator) auction(n int64, ts DateTime) *Auction {
	a := &Auction{ID: g.lastAuction(n) + FirstAuctionID, DateTime: ts}
	if g.rnd.IntN(g.cfg.HotSellersRatio) > 0 {
		// A hot seller: the first person of the latest batch.
		a.Seller = g.lastPerson(n) / hotBatch * hotBatch
	} else {
		a.Seller = g.randomPerson(n)
	}
	a.Seller += FirstPersonID
	a.Category = FirstCategoryID + int64(g.rnd.IntN(NumCategories))
	a.InitialBid = g.price()
	a.Expires = ts + DateTime(g.auctionLength(n, ts))
	a.ItemName = g.randomString(20, ' ')
	a.Description = g.randomString(100, ' ')
	a.Reserve = a.InitialBid + g.price()
	size := 8 + len(a.ItemName) + len(a.Description) + 8 + 8 + 8 + 8 + 8
	a.Extra = g.extra(size, g.cfg.AvgAuctionByteSize)
	return a
}

// auctionLength is a random auction length in ms, averaging the time until
// NumInFlightAuctions more auctions are created.
func (g *Generator) auctionLength(n int64, ts DateTime) int64 {
	ahead := int64(g.cfg.NumInFlightAuctions) * g.total / max(int64(g.cfg.AuctionProportion), 1)
	horizon := int64(g.timestamp(n+ahead) - ts)
	return 1 + g.rnd.Int64N(max(2*horizon, 1))
}

func (g *Generator) bid(n int64, ts DateTime) *Bid {
	b := &Bid{DateTime: ts}
	if g.rnd.IntN(g.cfg.HotAuctionRatio) > 0 {
		// A hot auction: the first of the latest batch.
		b.Auction = g.lastAuction(n) / hotBatch * hotBatch
	} else {
		b.Auction = g.randomAuction(n)
	}
	b.Auction += FirstAuctionID
	if g.rnd.IntN(g.cfg.HotBiddersRatio) > 0 {
		// A hot bidder: the second person of the latest batch, so that hot
		// bidders and hot sellers differ; the first until the second exists.
		last := g.lastPerson(n)
		b.Bidder = min(last/hotBatch*hotBatch+1, last)
	} else {
		b.Bidder = g.randomPerson(n)
	}
	b.Bidder += FirstPersonID
	b.Price = g.price()
	if g.rnd.IntN(hotChannelsRatio) > 0 {
		i := g.rnd.IntN(len(hotChannels))
		b.Channel, b.URL = hotChannels[i], g.hotURLs[i]
	} else {
		c := g.rnd.IntN(numChannels)
		b.Channel, b.URL = "channel-"+strconv.Itoa(c), g.channel(c)
	}
	b.Extra = g.extra(8+8+8+8, g.cfg.AvgBidByteSize)
	return b
}

// channel returns numbered channel c's url, made once per generator from
// the seed and c alone.
func (g *Generator) channel(c int) string {
	if g.channels[c] == "" {
		g.channels[c] = g.channelURL(c, true)
	}
	return g.channels[c]
}

// channelURL makes the url of channel c (negative for the hot channels),
// from its own random source so that it does not depend on which event
// used the channel first. Nine numbered channels in ten have a channel_id
// parameter, as in the reference.
func (g *Generator) channelURL(c int, numbered bool) string {
	r := rand.New(rand.NewPCG(g.cfg.Seed^0x6e65786d61726b, uint64(int64(c))))
	u := "https://www.nexmark.com/" + randomString(r, 5, '_') + "/" + randomString(r, 5, '_') + "/" +
		randomString(r, 5, '_') + "/item.htm?query=1"
	if numbered && r.IntN(10) > 0 {
		id := int64(reverse32(int32(c)))
		u += "&channel_id=" + strconv.FormatInt(max(id, -id), 10)
	}
	return u
}

// reverse32 is Java's Integer.reverse: the bits of v in reverse order.
func reverse32(v int32) int32 {
	u := uint32(v)
	var r uint32
	for range 32 {
		r = r<<1 | u&1
		u >>= 1
	}
	return int32(r)
}

// price is a random price in cents, log-uniform in [$1, $1,000,000].
func (g *Generator) price() int64 {
	return int64(math.Round(math.Pow(10, g.rnd.Float64()*6) * 100))
}

func (g *Generator) creditCard() string {
	b := make([]byte, 0, 19)
	for i := range 4 {
		if i > 0 {
			b = append(b, ' ')
		}
		v := g.rnd.IntN(10000)
		b = append(b, byte('0'+v/1000), byte('0'+v/100%10), byte('0'+v/10%10), byte('0'+v%10))
	}
	return string(b)
}

func (g *Generator) randomString(maxLen int, space byte) string {
	return randomString(g.rnd, maxLen, space)
}

// randomString returns a string of 3 to maxLen-1 characters, lower-case
// letters and, one in 13, space, trimmed of leading and trailing spaces.
func randomString(r *rand.Rand, maxLen int, space byte) string {
	n := 3 + r.IntN(maxLen-3)
	b := make([]byte, n)
	for i := range b {
		if r.IntN(13) == 0 {
			b[i] = space
		} else {
			b[i] = byte('a' + r.IntN(26))
		}
	}
	i, j := 0, len(b)
	for i < j && b[i] == ' ' {
		i++
	}
	for j > i && b[j-1] == ' ' {
		j--
	}
	return string(b[i:j])
}

// extra returns random letters making an event of size bytes average avg
// bytes: avg-size, give or take 20%, or nothing if size is already over.
func (g *Generator) extra(size, avg int) string {
	if size > avg {
		return ""
	}
	avg -= size
	delta := int(math.Round(float64(avg) * 0.2))
	n := avg - delta
	if delta > 0 {
		n += g.rnd.IntN(2 * delta)
	}
	b := make([]byte, n)
	var v uint64
	for i := range b {
		if i%13 == 0 { // 13 letters from each 64 random bits (26^13 < 2^64)
			v = g.rnd.Uint64()
		}
		b[i] = byte('a' + v%26)
		v /= 26
	}
	return string(b)
}

// splitmix64 scrambles an event number into a seed, so that consecutive
// events' random sources start far apart.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

func pick(r *rand.Rand, from []string) string { return from[r.IntN(len(from))] }
