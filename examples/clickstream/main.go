// Command clickstream is Weir's clickstream example: page views enriched
// through a page catalog service called with calls in flight (AsyncMap),
// with a fallback while the service is down; counted per page in tumbling
// one-minute windows of event time; and archived to S3 (or a directory) as
// Parquet, partitioned by the hour, exactly once.
//
//	clickstream              run the job (WEIR_* settings, see the README)
//	clickstream generate     write generated page views to the input topic
//	clickstream demo         everything in one process: an embedded Kafka,
//	                         the catalog (down 15 s of every 45), a generator,
//	                         the job, and a reader of its results
//
// The job's own settings: VIEWS_TOPIC (page-views), COUNTS_TOPIC
// (page-counts), CATALOG_URL, and ARCHIVE_DIR for a local archive, else
// the WEIR_S3_* variables of archive.S3FromEnv.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/connectors/archive"
	"github.com/weirstream/weir/engine"
)

func main() {
	var err error
	switch {
	case len(os.Args) > 1 && os.Args[1] == "generate":
		err = generateCmd(os.Args[2:])
	case len(os.Args) > 1 && os.Args[1] == "demo":
		err = demo(os.Args[2:])
	default:
		runJob()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "clickstream:", err)
		os.Exit(1)
	}
}

func configFromEnv() (Config, error) {
	cfg := Config{
		Views:   cmp.Or(os.Getenv("VIEWS_TOPIC"), "page-views"),
		Counts:  cmp.Or(os.Getenv("COUNTS_TOPIC"), "page-counts"),
		Catalog: os.Getenv("CATALOG_URL"),
	}
	if cfg.Catalog == "" {
		return cfg, errors.New("set CATALOG_URL to the page catalog service's base URL")
	}
	if dir := os.Getenv("ARCHIVE_DIR"); dir != "" {
		cfg.Archive = archive.LocalDir(dir)
		return cfg, nil
	}
	var err error
	cfg.Archive, err = archive.S3FromEnv()
	if err != nil {
		return cfg, fmt.Errorf("%w (or set ARCHIVE_DIR for a local archive)", err)
	}
	return cfg, nil
}

// runJob runs the job as a Weir job binary: configured by WEIR_* variables
// and flags, until SIGTERM.
func runJob() {
	cfg, err := configFromEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, "clickstream:", err)
		os.Exit(2)
	}
	job := engine.NewJob("clickstream", engine.FromEnv())
	Build(job, cfg)
	job.Main()
}

func generateCmd(args []string) error {
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	n := fs.Int("n", 10000, "page views to write")
	seed := fs.Uint64("seed", 1, "the generator's seed: the same seed gives the same views")
	start := fs.String("start", "", "event time of the first view (RFC 3339; default: n/10 seconds ago)")
	topic := fs.String("topic", cmp.Or(os.Getenv("VIEWS_TOPIC"), "page-views"), "input topic")
	if err := fs.Parse(args); err != nil {
		return err
	}
	brokers := os.Getenv("WEIR_BROKERS")
	if brokers == "" {
		return errors.New("set WEIR_BROKERS")
	}
	at := time.Now().Add(-time.Duration(*n) * 100 * time.Millisecond)
	if *start != "" {
		var err error
		if at, err = time.Parse(time.RFC3339, *start); err != nil {
			return fmt.Errorf("-start: %w", err)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	recs := Generate(*topic, *n, *seed, at)
	for i := 0; i < len(recs); i += 1000 {
		if err := cl.ProduceSync(ctx, recs[i:min(i+1000, len(recs))]...).FirstErr(); err != nil {
			return fmt.Errorf("writing to %s: %w", *topic, err)
		}
	}
	fmt.Printf("wrote %d page views to %s, from %s\n", len(recs), *topic, at.UTC().Format(time.RFC3339))
	return nil
}
