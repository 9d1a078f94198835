package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// pages the generator picks from; /checkout is not in the catalog.
var pages = []string{
	"/products/kettle", "/products/teapot", "/products/mug", "/blog/brewing", "/blog/origins",
	"/help/returns", "/help/shipping", "/checkout",
}

// Generate returns n page views of 50 users, deterministic for a seed,
// starting at start and about 100 ms apart, a few of them out of order by
// up to 2 s (the job's watermark allows 5 s), keyed by user.
func Generate(topic string, n int, seed uint64, start time.Time) []*kgo.Record {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	recs := make([]*kgo.Record, 0, n)
	for i := range n {
		at := start.Add(time.Duration(i) * 100 * time.Millisecond)
		if rng.IntN(10) == 0 {
			at = at.Add(-time.Duration(rng.IntN(2000)) * time.Millisecond)
		}
		v := PageView{User: fmt.Sprintf("user-%02d", rng.IntN(50)), Page: pages[rng.IntN(len(pages))], At: at.UTC()}
		b, _ := json.Marshal(v)
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(v.User), Value: b, Timestamp: at})
	}
	return recs
}
