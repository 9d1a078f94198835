package nexmark

import (
	stdjson "encoding/json"
	"testing"

	goccy "github.com/goccy/go-json"

	"github.com/weirstream/weir/codec"
)

// BenchmarkJSONLibraries decodes and re-encodes Nexmark events (92% bids,
// ~200 bytes each) with encoding/json, with goccy/go-json (what codec.JSON
// stands on), through codec.JSON itself, and with the hand-written codec
// the queries use: what a user's own job pays per record for codec.JSON on
// the same types. (segmentio/encoding and sonic's std config were measured
// too when the library was chosen: see bench/README.md.) One op is one event
// decoded and encoded; hand/... reports each library against the
// hand-written codec, run just before it.
//
//	go test -run '^$' -bench BenchmarkJSONLibraries -benchmem ./bench/nexmark/
func BenchmarkJSONLibraries(b *testing.B) {
	g := NewGenerator(Config{Seed: 1})
	events := make([][]byte, 4096)
	for i := range events {
		events[i] = AppendEvent(nil, g.Next())
	}
	type lib struct {
		name      string
		unmarshal func([]byte, any) error
		marshal   func(any) ([]byte, error)
	}
	var handNs float64
	b.Run("hand-written", func(b *testing.B) {
		c := EventCodec()
		for i := 0; b.Loop(); i++ {
			e, err := c.Decode(events[i%len(events)])
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.Encode(e); err != nil {
				b.Fatal(err)
			}
		}
		handNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	for _, l := range []lib{
		{"encoding-json", stdjson.Unmarshal, stdjson.Marshal},
		{"goccy-go-json", goccy.Unmarshal, goccy.Marshal},
	} {
		b.Run(l.name, func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				var e Event
				if err := l.unmarshal(events[i%len(events)], &e); err != nil {
					b.Fatal(err)
				}
				if _, err := l.marshal(e); err != nil {
					b.Fatal(err)
				}
			}
			if handNs > 0 {
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/handNs, "x-hand")
			}
		})
	}
	b.Run("codec.JSON", func(b *testing.B) {
		c := codec.JSON[Event]()
		for i := 0; b.Loop(); i++ {
			e, err := c.Decode(events[i%len(events)])
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.Encode(e); err != nil {
				b.Fatal(err)
			}
		}
		if handNs > 0 {
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/handNs, "x-hand")
		}
	})
}
