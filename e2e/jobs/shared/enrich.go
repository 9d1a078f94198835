package shared

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/operators"
)

// BuildEnrich adds the enrichment job to job: the stateless job's events,
// bots dropped, each tagged by a call to the HTTP service at $ENRICH_URL
// (GET ?user=&seq=, the tag in the body) through AsyncMap, with many
// calls in flight; a call that fails gives the tag "fallback".
func BuildEnrich(job *engine.Job, in, out string) {
	base := os.Getenv("ENRICH_URL")
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	tag := func(ctx context.Context, e Event) (Tagged, error) {
		q := url.Values{"user": {e.User}, "seq": {fmt.Sprint(e.Seq)}}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"?"+q.Encode(), nil)
		if err != nil {
			return Tagged{}, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return Tagged{}, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("enrichment service: %s", resp.Status)
		}
		return Tagged{User: e.User, Seq: e.Seq, Tag: string(body)}, err
	}
	events := connectors.KafkaSource(job, in, codec.JSON[Event]())
	humans := operators.Filter(events, func(e Event) bool { return !e.Bot })
	tagged := operators.AsyncMap(humans, tag, operators.AsyncName("enrich"), operators.AsyncConcurrency(32),
		operators.AsyncTimeout(2*time.Second),
		operators.AsyncFallback(func(e Event, _ error) (Tagged, error) { return Tagged{User: e.User, Seq: e.Seq, Tag: "fallback"}, nil }))
	connectors.KafkaSink(tagged, out, codec.JSON[Tagged]())
}
