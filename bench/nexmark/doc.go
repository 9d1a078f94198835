// Package nexmark is the Weir side of the Nexmark benchmark: a
// deterministic generator of the Nexmark event stream, the topic layout
// Flink's Nexmark reads, and the queries as ordinary Weir jobs.
//
// # Events
//
// The generator follows the reference model (nexmark-flink's
// NexmarkGenerator and GeneratorConfig, after Apache Beam's): of every 50
// events, 1 is a new person, 3 new auctions and 46 bids, always in that
// order within the 50; persons and auctions get consecutive ids (from
// 1000) derived from the event number; sellers and bidders are drawn from
// the latest 1000 persons and bids' auctions from the latest 100 auctions,
// except for hot ones (with probability 1-1/ratio: a hot auction, the
// first of the latest batch of 100, for 1 bid in 2; a hot seller for 3
// auctions in 4; a hot bidder for 3 bids in 4). Event n happens at
// BaseTime + n/EventsPerSecond (2024-01-01T00:00:00Z and 10,000 events a
// second by default), so the stream is in event-time order.
//
// It differs from the reference where the reference is not reproducible
// or refers to the future:
//
//   - Every random choice comes from a source seeded with (Config.Seed,
//     event number), where the reference draws from an unseeded
//     java.util.Random: the same seed gives the same bytes, and event n can
//     be made without the n before it (Generator.At).
//   - A seller or bidder is always a person already created, and a bid's
//     auction an auction already created: the reference picks up to 10
//     ids ahead of the last created, and its hot bidder (the second person
//     of the latest batch of 100) may not exist yet; here it is the first
//     until the second exists. It also adds the first person id twice to
//     the bidder; here once.
//   - A channel's url is made from the seed and the channel's number, where
//     the reference makes it from an unseeded random source once per JVM.
//
// # The topic
//
// All events go to one topic, one record per event, as nexmark-flink's
// insert_kafka job writes them: the value is a JSON object
//
//	{"event_type":0,"person":{...},"auction":null,"bid":null}
//
// with event_type 0 for a person, 1 an auction and 2 a bid, every one of
// the three members present and the two not carried null, and the fields
// named as in nexmark-flink's datagen table (Person, Auction and Bid's
// json tags). Times (dateTime, expires) are "yyyy-MM-dd HH:mm:ss.SSS" in
// UTC: what Flink's JSON format writes for TIMESTAMP(3) by default
// ('json.timestamp-format.standard' = 'SQL'), so Flink reads the topic as
// its Kafka table. Records have no key (nexmark-flink's sink partitions
// round robin; see WriteTopic), and each record's timestamp is its
// event's dateTime. EventCodec reads and writes the values.
//
// # Queries
//
// Each query (Queries) is a function building a Weir job from the topic
// to an output topic, with nexmark-flink's semantics and the columns of
// its sink table: q0 pass-through, q1 currency conversion, q2 selection,
// q3 local item suggestion (a regular join), q5 hot items (sliding
// windows), q7 highest bid (tumbling windows), q8 monitor new users (a
// window join), q11 user sessions (session windows) and q12 processing-time
// windows. Each decodes the topic's JSON once per record, with the
// event's dateTime as event time and nexmark-flink's watermark, 4 seconds
// behind. The doc comment of each Build function says how it is made and
// where it departs from the SQL.
package nexmark
