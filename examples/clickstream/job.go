package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/connectors/archive"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/windowing"
)

// PageView is what the site's front end writes to Kafka.
type PageView struct {
	User string    `json:"user"`
	Page string    `json:"page"`
	At   time.Time `json:"at"`
}

// Page is what the page catalog service says of a page.
type Page struct {
	Title    string `json:"title"`
	Category string `json:"category"`
}

// View is a page view with its page's catalog entry: what the archive
// keeps. Degraded marks a view the catalog could not describe (down, slow
// or failing): its category is "unknown". A page the catalog does not list
// is "unlisted", and not degraded.
type View struct {
	User     string    `json:"user" parquet:"user"`
	Page     string    `json:"page" parquet:"page"`
	Title    string    `json:"title" parquet:"title"`
	Category string    `json:"category" parquet:"category"`
	Degraded bool      `json:"degraded" parquet:"degraded"`
	At       time.Time `json:"at" parquet:"at,timestamp(millisecond)"`
}

// PageCount is how many views a page had in a minute of event time.
type PageCount struct {
	Page   string    `json:"page"`
	Minute time.Time `json:"minute"`
	Views  int64     `json:"views"`
}

// Config is where the job reads, writes and calls.
type Config struct {
	Views   string        // input topic of PageView JSON
	Counts  string        // output topic of PageCount JSON
	Catalog string        // base URL of the page catalog service
	Archive archive.Store // where the enriched views are archived
	// ArchiveOpts adds to the archive's options (how often files roll).
	ArchiveOpts []archive.Opt
}

// Build adds the clickstream job to job:
//
//	page views ──AsyncMap(catalog, fallback)──► views ──► archive (Parquet, by hour)
//	                                             └──KeyBy(page)──► tumbling 1 min count ──► counts topic
func Build(job *engine.Job, cfg Config) {
	views := connectors.KafkaSource(job, cfg.Views, codec.JSON[PageView](),
		connectors.WithWatermarks(windowing.BoundedOutOfOrderness(5*time.Second, func(v PageView) time.Time { return v.At }).
			WithIdleness(10*time.Second)))
	catalog := newCatalogClient(cfg.Catalog)
	enriched := operators.AsyncMap(views, catalog.describe,
		operators.AsyncName("catalog"), operators.AsyncConcurrency(32), operators.AsyncTimeout(time.Second),
		operators.AsyncFallback(func(v PageView, _ error) (View, error) {
			return View{User: v.User, Page: v.Page, Category: "unknown", Degraded: true, At: v.At}, nil
		}))
	archive.Sink(enriched, "page-views", cfg.Archive, archive.Parquet[View](),
		append([]archive.Opt{archive.Prefix("clickstream")}, cfg.ArchiveOpts...)...)
	perPage := operators.KeyBy(enriched, func(v View) string { return v.Page })
	counts := operators.WindowAggregate(perPage, "views-per-page-minute", windowing.Tumbling(time.Minute),
		operators.Count[View]{}, codec.JSON[int64]())
	out := operators.Map(counts, func(w operators.Windowed[string, int64]) (PageCount, error) {
		return PageCount{Page: w.Key, Minute: w.Start.UTC(), Views: w.Value}, nil
	})
	connectors.KafkaSink(out, cfg.Counts, codec.JSON[PageCount]())
}

// catalogClient calls the page catalog: GET <base>/pages?path=<page>.
type catalogClient struct {
	base string
	http *http.Client
}

func newCatalogClient(base string) *catalogClient {
	return &catalogClient{base: base, http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}}}
}

func (c *catalogClient) describe(ctx context.Context, v PageView) (View, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/pages?path="+url.QueryEscape(v.Page), nil)
	if err != nil {
		return View{}, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return View{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		// An answer, not a failure: the catalog does not list the page.
		return View{User: v.User, Page: v.Page, Category: "unlisted", At: v.At}, nil
	}
	if resp.StatusCode != http.StatusOK {
		return View{}, fmt.Errorf("page catalog: %s", resp.Status)
	}
	var p Page
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		return View{}, fmt.Errorf("page catalog: %w", err)
	}
	return View{User: v.User, Page: v.Page, Title: p.Title, Category: p.Category, At: v.At}, nil
}
