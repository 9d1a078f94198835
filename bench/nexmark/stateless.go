package nexmark

import (
	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/operators"
)

// Queries 0 to 2 are stateless: each bid in, at most one result out, in
// the task that read the bid.

// BuildQ0 is query 0, pass-through: every bid, written as it came
// (BidCodec). It measures decoding, the engine's path and encoding.
func BuildQ0(job *engine.Job, in, out string) {
	connectors.KafkaSink(Bids(Source(job, in)), out, BidCodec())
}

// Query 1's exchange rate, as nexmark-flink's: 0.908 euros to the dollar,
// held as 908/1000 so that the conversion is exact integer arithmetic.
const (
	eurosPerDollarNum = 908
	eurosPerDollarDen = 1000
)

// ToEuros converts a price in dollar cents to euro cents, truncating:
// price*0.908 as an integer (nexmark-flink keeps DECIMAL(23, 3); the
// integer part is the same).
func ToEuros(price int64) int64 { return price * eurosPerDollarNum / eurosPerDollarDen }

// BuildQ1 is query 1, currency conversion: every bid with its price in
// euros (ToEuros), the rest as it came.
func BuildQ1(job *engine.Job, in, out string) {
	euros := operators.Map(Bids(Source(job, in)), func(b Bid) (Bid, error) {
		b.Price = ToEuros(b.Price)
		return b, nil
	}).Named("q1-to-euros")
	connectors.KafkaSink(euros, out, BidCodec())
}

// Q2Result is query 2's output row.
type Q2Result struct {
	Auction int64 `json:"auction"`
	Price   int64 `json:"price"`
}

// Q2Modulus is query 2's selection: bids on every 123rd auction.
const Q2Modulus = 123

// BuildQ2 is query 2, selection: the auction and price of the bids on
// auctions whose id is a multiple of Q2Modulus.
func BuildQ2(job *engine.Job, in, out string) {
	sel := operators.FlatMap(Bids(Source(job, in)), func(b Bid, out operators.Collector[Q2Result]) error {
		if b.Auction%Q2Modulus != 0 {
			return nil
		}
		return out.Collect(Q2Result{Auction: b.Auction, Price: b.Price})
	}).Named("q2-select")
	connectors.KafkaSink(sel, out, codec.JSON[Q2Result]())
}
