package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/time/rate"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors/archive"
	"github.com/weirstream/weir/engine"
)

// demo runs everything in one process: an embedded Kafka (franz-go's
// kfake), the page catalog on loopback, down 15 s of every 45, a generator
// of live page views, the job, and a reader of what it commits.
func demo(args []string) error {
	fset := flag.NewFlagSet("demo", flag.ContinueOnError)
	perSecond := fset.Int("rate", 200, "page views per second")
	dir := fset.String("archive", os.Getenv("ARCHIVE_DIR"), "archive directory (default: a new temporary one)")
	if err := fset.Parse(args); err != nil {
		return err
	}
	if *perSecond <= 0 {
		return errors.New("-rate: want a positive number of views per second")
	}
	if *dir == "" {
		var err error
		if *dir, err = os.MkdirTemp("", "weir-clickstream-archive-"); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, "page-views", "page-counts"))
	if err != nil {
		return fmt.Errorf("starting the embedded broker: %w", err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()

	catalog := &Catalog{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: catalog, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	go outages(ctx, catalog)

	job := engine.NewJob("clickstream", engine.WithBrokers(brokers...), engine.WithLogger(demoLogger()),
		engine.WithMetricsAddr(cmp.Or(os.Getenv("WEIR_METRICS_ADDR"), ":9464")))
	Build(job, Config{Views: "page-views", Counts: "page-counts", Catalog: "http://" + ln.Addr().String(),
		Archive: archive.LocalDir(*dir), ArchiveOpts: []archive.Opt{archive.RollInterval(15 * time.Second)}})

	fmt.Printf("embedded Kafka at %s; page catalog at http://%s (down 15 s of every 45)\n", strings.Join(brokers, ","), ln.Addr())
	fmt.Printf("%d page views/s into page-views; per-page counts of each minute into page-counts once the minute\n", *perSecond)
	fmt.Printf("is over; the enriched views archived as Parquet under %s every 15 s.\n", *dir)
	fmt.Println("metrics: http://localhost:9464/metrics. Ctrl-C to stop.")
	fmt.Println()
	go func() {
		if err := produceLive(ctx, brokers, *perSecond); err != nil && ctx.Err() == nil {
			fmt.Fprintln(os.Stderr, "generator:", err)
		}
	}()
	go printCounts(ctx, brokers)
	go watchArchive(ctx, *dir)
	return job.Run(ctx)
}

// outages takes the catalog down for 15 s of every 45.
func outages(ctx context.Context, c *Catalog) {
	for {
		for _, phase := range []struct {
			down bool
			d    time.Duration
		}{{false, 30 * time.Second}, {true, 15 * time.Second}} {
			c.Down.Store(phase.down)
			if phase.down {
				fmt.Printf("[%s] catalog DOWN: views get the fallback (category \"unknown\", degraded)\n", time.Now().Format("15:04:05"))
			} else if c.Calls.Load() > 0 {
				fmt.Printf("[%s] catalog UP again\n", time.Now().Format("15:04:05"))
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(phase.d):
			}
		}
	}
}

// produceLive writes page views stamped now, at a steady rate.
func produceLive(ctx context.Context, brokers []string, perSecond int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	lim := rate.NewLimiter(rate.Limit(perSecond), max(1, perSecond/10))
	rng := rand.New(rand.NewPCG(1, 2))
	c := codec.JSON[PageView]()
	for {
		if err := lim.Wait(ctx); err != nil {
			return err
		}
		v := PageView{User: fmt.Sprintf("user-%02d", rng.IntN(50)), Page: pages[rng.IntN(len(pages))], At: time.Now().UTC()}
		b, err := c.Encode(v)
		if err != nil {
			return err
		}
		cl.Produce(ctx, &kgo.Record{Topic: "page-views", Key: []byte(v.User), Value: b}, nil)
	}
}

// printCounts reads page-counts as a downstream consumer would
// (read_committed) and prints each minute's counts.
func printCounts(ctx context.Context, brokers []string) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("page-counts"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		fmt.Fprintln(os.Stderr, "reader:", err)
		return
	}
	defer cl.Close()
	c := codec.JSON[PageCount]()
	for ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			if pc, err := c.Decode(r.Value); err == nil {
				fmt.Printf("[%s] minute %s  %-18s %5d views\n", time.Now().Format("15:04:05"), pc.Minute.Format("15:04"), pc.Page, pc.Views)
			}
		})
	}
}

// watchArchive prints each new archive file with its views, and how many
// of them the fallback described.
func watchArchive(ctx context.Context, dir string) {
	seen := map[string]bool{}
	for ctx.Err() == nil {
		var files []string
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(p, ".parquet") && !seen[p] {
				files = append(files, p)
			}
			return nil
		})
		slices.Sort(files)
		for _, p := range files {
			seen[p] = true
			rows, err := parquet.ReadFile[View](p)
			if err != nil {
				continue
			}
			degraded := 0
			for _, v := range rows {
				if v.Degraded {
					degraded++
				}
			}
			rel, _ := filepath.Rel(dir, p)
			fmt.Printf("[%s] archived %s: %d views, %d degraded\n", time.Now().Format("15:04:05"), rel, len(rows), degraded)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func demoLogger() *zap.Logger {
	cfg := zap.NewDevelopmentConfig()
	cfg.Level = zap.NewAtomicLevelAt(zap.WarnLevel)
	cfg.DisableStacktrace = true
	cfg.EncoderConfig.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05")
	l, err := cfg.Build()
	if err != nil {
		return zap.NewNop()
	}
	return l.Named("weir")
}
