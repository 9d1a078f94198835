// Command demo runs a clickstream job end to end with nothing but Go.
//
// Without WEIR_BROKERS it starts franz-go's in-process Kafka (kfake), so
// `make demo` needs no broker; with WEIR_BROKERS (as in docker-compose.yml)
// it uses that cluster and creates its topics if they are missing.
//
// A generator writes page views at a steady rate (WEIR_DEMO_RATE per
// second, default 200) to "pageviews". The job drops bot traffic, tags each
// view with the site section its page belongs to and writes the result,
// keyed by user, to "enriched-pageviews"; a reader prints what arrives.
// Ctrl-C stops it cleanly.
package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/time/rate"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/operators"
)

const (
	viewsTopic    = "pageviews"
	enrichedTopic = "enriched-pageviews"
	partitions    = 4
)

// PageView is what the site's front end emits.
type PageView struct {
	User      string    `json:"user"`
	Page      string    `json:"page"`
	UserAgent string    `json:"user_agent"`
	At        time.Time `json:"at"`
}

// EnrichedView is a human page view tagged with its site section.
type EnrichedView struct {
	User    string    `json:"user"`
	Page    string    `json:"page"`
	Section string    `json:"section"`
	At      time.Time `json:"at"`
}

// sections maps page prefixes to the site section they belong to: the
// static enrichment table of the demo.
var sections = []struct{ prefix, section string }{
	{"/products/", "catalog"},
	{"/cart", "checkout"},
	{"/checkout", "checkout"},
	{"/blog/", "content"},
	{"/about", "company"},
}

func sectionOf(page string) string {
	if page == "/" {
		return "home"
	}
	for _, s := range sections {
		if strings.HasPrefix(page, s.prefix) {
			return s.section
		}
	}
	return "other"
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run() error {
	rateLimit := 200
	if s := os.Getenv("WEIR_DEMO_RATE"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return fmt.Errorf("WEIR_DEMO_RATE=%q: want a positive number of records per second", s)
		}
		rateLimit = n
	}
	log := demoLogger()
	var brokers []string
	if env := os.Getenv("WEIR_BROKERS"); env != "" {
		brokers = strings.Split(env, ",")
		if err := ensureTopics(brokers); err != nil {
			return err
		}
	} else {
		cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, viewsTopic, enrichedTopic))
		if err != nil {
			return fmt.Errorf("starting the embedded broker: %w", err)
		}
		defer cluster.Close()
		brokers = cluster.ListenAddrs()
		fmt.Printf("embedded Kafka (kfake) at %s\n", strings.Join(brokers, ","))
	}

	job := engine.NewJob("clickstream-demo", engine.WithBrokers(brokers...), engine.WithLogger(log), engine.FromEnv())
	views := connectors.KafkaSource(job, viewsTopic, codec.JSON[PageView]())
	humans := operators.Filter(views, func(v PageView) bool {
		return !strings.Contains(strings.ToLower(v.UserAgent), "bot")
	}).Named("drop-bots")
	enriched := operators.Map(humans, func(v PageView) (EnrichedView, error) {
		return EnrichedView{User: v.User, Page: v.Page, Section: sectionOf(v.Page), At: v.At}, nil
	}).Named("tag-section")
	connectors.KafkaSink(enriched, enrichedTopic, codec.JSON[EnrichedView]())

	if addr := job.Config().MetricsAddr; addr != "" {
		fmt.Printf("metrics: http://localhost%s/metrics   probes: /healthz /readyz\n", portOf(addr))
	}
	fmt.Printf("generating %d page views/s into %q; the job writes %q. Ctrl-C to stop.\n\n", rateLimit, viewsTopic, enrichedTopic)

	ctx, stop := signalContext()
	defer stop()
	var produced atomic.Int64
	genDone := make(chan error, 1)
	go func() { genDone <- generate(ctx, brokers, rateLimit, &produced) }()
	go printOutputs(ctx, brokers, &produced)

	err := job.Run(ctx)
	stop()
	if genErr := <-genDone; genErr != nil && !errors.Is(genErr, context.Canceled) && err == nil {
		err = genErr
	}
	return err
}

func portOf(addr string) string {
	if i := strings.LastIndex(addr, ":"); i >= 0 {
		return addr[i:]
	}
	return addr
}

// generate writes page views at a steady rate until ctx is done.
func generate(ctx context.Context, brokers []string, perSecond int, produced *atomic.Int64) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	if err != nil {
		return err
	}
	defer cl.Close()
	pages := []string{"/", "/products/42", "/products/7", "/cart", "/checkout", "/blog/weir-1-0", "/about"}
	agents := []string{"Mozilla/5.0", "Mozilla/5.0 (iPhone)", "curl/8.0", "Googlebot/2.1"}
	lim := rate.NewLimiter(rate.Limit(perSecond), max(1, perSecond/10))
	rng := rand.New(rand.NewPCG(1, 2))
	c := codec.JSON[PageView]()
	for {
		if err := lim.Wait(ctx); err != nil {
			return err
		}
		agent := agents[rng.IntN(len(agents)-1)]
		if rng.IntN(20) == 0 {
			agent = agents[len(agents)-1] // about one view in twenty is a crawler
		}
		v := PageView{User: "user-" + strconv.Itoa(rng.IntN(100)), Page: pages[rng.IntN(len(pages))], UserAgent: agent, At: time.Now()}
		b, err := c.Encode(v)
		if err != nil {
			return err
		}
		cl.Produce(ctx, &kgo.Record{Topic: viewsTopic, Key: []byte(v.User), Value: b}, func(_ *kgo.Record, err error) {
			if err == nil {
				produced.Add(1)
			}
		})
	}
}

// printOutputs reads the job's output as a downstream consumer would
// (read_committed) and prints a sample line per output partition batch and
// a running total each second.
func printOutputs(ctx context.Context, brokers []string, produced *atomic.Int64) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(enrichedTopic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo reader:", err)
		return
	}
	defer cl.Close()
	c := codec.JSON[EnrichedView]()
	var total int64
	bySection := map[string]int{}
	lastReport := time.Now()
	printed := 0
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			v, err := c.Decode(r.Value)
			if err != nil {
				return
			}
			total++
			bySection[v.Section]++
			if printed < 3 {
				printed++
				fmt.Printf("  out p%d  %-9s %-16s -> %s\n", r.Partition, v.User, v.Page, v.Section)
			}
		})
		if time.Since(lastReport) >= time.Second {
			fmt.Printf("[%s] generated %d views, read %d enriched (crawlers dropped, the rest in flight) by section %v\n",
				time.Now().Format("15:04:05"), produced.Load(), total, bySection)
			lastReport, printed = time.Now(), 0
		}
	}
}

func ensureTopics(brokers []string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := kadm.NewClient(cl).CreateTopics(ctx, partitions, -1, nil, viewsTopic, enrichedTopic)
	if err != nil {
		return fmt.Errorf("creating demo topics: %w", err)
	}
	for _, r := range resp {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("creating topic %s: %w", r.Topic, r.Err)
		}
	}
	return nil
}

func demoLogger() *zap.Logger {
	cfg := zap.NewDevelopmentConfig()
	cfg.Level = zap.NewAtomicLevelAt(zap.InfoLevel)
	cfg.DisableStacktrace = true
	cfg.EncoderConfig.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05")
	l, err := cfg.Build()
	if err != nil {
		return zap.NewNop()
	}
	return l.WithOptions(zap.IncreaseLevel(zap.WarnLevel)).Named("weir")
}
