package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors/archive"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/examples/internal/exampletest"
	"github.com/weirstream/weir/internal/kafkatest"
	"github.com/weirstream/weir/internal/s3test"
	"github.com/weirstream/weir/weirtest"
)

var ten = time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC)

// TestKnownAnswer: twelve views, the catalog up, then down. Each
// minute's counts per page come out once the minute is over; the archive
// holds every view once, described by the catalog (/checkout as unlisted),
// or by the fallback while the catalog is down.
func TestKnownAnswer(t *testing.T) {
	svc := &Catalog{}
	catalog := httptest.NewServer(svc)
	defer catalog.Close()
	dir := t.TempDir()
	job := engine.NewJob("clickstream")
	Build(job, Config{Views: "page-views", Counts: "page-counts", Catalog: catalog.URL, Archive: archive.LocalDir(dir)})
	h := weirtest.New(t, job)
	views := []struct {
		page string
		at   time.Duration
	}{
		{"/products/kettle", 1 * time.Second}, {"/blog/brewing", 3 * time.Second}, {"/products/teapot", 5 * time.Second},
		{"/checkout", 8 * time.Second}, {"/products/kettle", 13 * time.Second}, {"/blog/brewing", 2 * time.Second}, // out of order
		{"/products/teapot", 21 * time.Second}, {"/blog/brewing", 34 * time.Second}, {"/checkout", 55 * time.Second},
		{"/products/kettle", 59 * time.Second}, {"/products/kettle", 61 * time.Second}, {"/products/kettle", 90 * time.Second},
	}
	for i, v := range views {
		if i == len(views)-2 {
			// The calls of the views before are done (a checkpoint waits
			// for the calls in flight); the last two find the catalog down.
			if err := h.Checkpoint(); err != nil {
				t.Fatal(err)
			}
			svc.Down.Store(true)
		}
		pv := PageView{User: fmt.Sprintf("user-%d", i%3), Page: v.page, At: ten.Add(v.at)}
		if err := weirtest.SendValue(h, "page-views", codec.JSON[PageView](), pv.User, pv, pv.At); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.EndInput(); err != nil {
		t.Fatal(err)
	}
	if err := h.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range weirtest.CommittedOutputs(h, "page-counts", codec.JSON[PageCount]()) {
		got = append(got, fmt.Sprintf("%s %s %d", r.Value.Minute.Format("15:04"), r.Value.Page, r.Value.Views))
	}
	slices.Sort(got)
	want := []string{
		"10:00 /blog/brewing 3", "10:00 /checkout 2", "10:00 /products/kettle 3", "10:00 /products/teapot 2",
		"10:01 /products/kettle 2",
	}
	if !slices.Equal(got, want) {
		t.Errorf("counts %q, want %q", got, want)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "clickstream/page-views/dt=2024-01-01/hour=10/*.parquet"))
	if len(files) != 1 {
		t.Fatalf("archive files %v, want one for the hour", files)
	}
	rows, err := parquet.ReadFile[View](files[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(views) {
		t.Fatalf("%d archived views, want %d", len(rows), len(views))
	}
	for i, v := range rows {
		checkView(t, v)
		if v.Degraded != (i >= len(views)-2) {
			t.Errorf("archived view %d %+v: degraded %v, want it only while the catalog was down", i, v, v.Degraded)
		}
		if v.Page != views[i].page || !v.At.Equal(ten.Add(views[i].at)) {
			t.Errorf("archived view %d is %+v, want %s at %v", i, v, views[i].page, views[i].at)
		}
	}
}

// checkView checks what the catalog or the fallback said of a view.
func checkView(t *testing.T, v View) {
	t.Helper()
	category, _, _ := strings.Cut(strings.TrimPrefix(v.Page, "/"), "/")
	switch {
	case v.Page == "/checkout":
		if v.Degraded || v.Category != "unlisted" {
			t.Errorf("view %+v: the catalog does not list /checkout, and says so", v)
		}
	case !v.Degraded && (v.Category != category || v.Title != "Title of "+v.Page):
		t.Errorf("view %+v: not what the catalog says", v)
	case v.Degraded && (v.Category != "unknown" || v.Title != ""):
		t.Errorf("view %+v: a degraded view has no title and an unknown category", v)
	}
}

// TestAgainstBrokerAndS3 runs the example as a user would: the generator
// writes 3000 views to the real broker, the job binary reads them to
// their end (WEIR_UNTIL=end) against a real catalog service and a real S3
// server, and stops. The counts topic holds each page's count per minute
// as computed from the input, once; the archive holds every view once.
func TestAgainstBrokerAndS3(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	cl, bucket := s3test.Bucket(t)
	catalog := httptest.NewServer(&Catalog{})
	defer catalog.Close()
	bin := exampletest.Build(t)
	views, counts, group := kafkatest.Name("page-views"), kafkatest.Name("page-counts"), kafkatest.Name("clickstream")
	kafkatest.CreateNamedTopic(t, brokers, views, 4)
	kafkatest.CreateNamedTopic(t, brokers, counts, 4)
	exampletest.DeleteTopicsAtEnd(t, brokers, group, views, counts)
	const n, seed = 3000, 7
	start := ten
	exampletest.Run(t, time.Minute, bin, []string{"WEIR_BROKERS=" + strings.Join(brokers, ",")},
		"generate", "-n", fmt.Sprint(n), "-seed", fmt.Sprint(seed), "-start", start.Format(time.RFC3339), "-topic", views)
	env := append(exampletest.JobEnv(t, brokers, group), "VIEWS_TOPIC="+views, "COUNTS_TOPIC="+counts,
		"CATALOG_URL="+catalog.URL, "WEIR_S3_BUCKET="+bucket)
	exampletest.Run(t, 2*time.Minute, bin, env)

	want := map[string]int64{}
	for _, r := range Generate(views, n, seed, start) {
		var v PageView
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatal(err)
		}
		want[v.At.Truncate(time.Minute).Format("15:04")+" "+v.Page]++
	}
	got := map[string]int64{}
	for _, r := range exampletest.ReadToEnd(t, brokers, counts) {
		var c PageCount
		if err := json.Unmarshal(r.Value, &c); err != nil {
			t.Fatal(err)
		}
		k := c.Minute.Format("15:04") + " " + c.Page
		if _, dup := got[k]; dup {
			t.Errorf("count of %s twice", k)
		}
		got[k] = c.Views
	}
	if !maps.Equal(got, want) {
		t.Errorf("counts %v\nwant %v", got, want)
	}
	archived, degraded := 0, 0
	for _, name := range s3test.Objects(t, cl, bucket, "clickstream/page-views/") {
		b := s3test.Get(t, cl, bucket, name)
		rows, err := parquet.Read[View](bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, v := range rows {
			checkView(t, v)
			if v.Degraded {
				degraded++
			}
		}
		archived += len(rows)
	}
	if archived != n || degraded != 0 {
		t.Errorf("%d views archived, %d by the fallback; want %d, none by the fallback (the catalog was up)", archived, degraded, n)
	}
	t.Logf("%d minute counts; %d views archived, %d described by the fallback", len(got), archived, degraded)
}
