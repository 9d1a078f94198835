package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/engine"
)

// newDLQCmd builds weir dlq: show a dead-letter topic's records, and
// replay chosen ones into the topics they came from.
func newDLQCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "Show a job's dead letters, and replay chosen ones into their input topics",
		Long: `A job whose error policy is dead-letter writes each record it could not
process to its dead-letter topic (default <group>-dlq): the record as it was
read, plus weir.error.* headers naming its topic, partition and offset, the
operator that failed, the error class and message, the attempts and the time.`,
	}
	cmd.AddCommand(newDLQShowCmd(), newDLQReplayCmd())
	return cmd
}

type dlqFlags struct {
	brokers []string
	topic   string
	timeout time.Duration
}

func (f *dlqFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringSliceVar(&f.brokers, "brokers", nil, "seed brokers, host:port, comma-separated or repeated (default $WEIR_BROKERS, else "+defaultBroker+")")
	fl.StringVar(&f.topic, "topic", "", "the dead-letter topic, e.g. <group>-dlq (required)")
	fl.DurationVar(&f.timeout, "timeout", time.Minute, "give up after this long")
}

func (f *dlqFlags) seeds() []string {
	if len(f.brokers) > 0 {
		return f.brokers
	}
	if s := os.Getenv("WEIR_BROKERS"); s != "" {
		return strings.Split(s, ",")
	}
	return []string{defaultBroker}
}

// deadLetter is one dead letter as weir dlq shows it.
type deadLetter struct {
	ID        string            `json:"id"` // partition@offset in the dead-letter topic
	Topic     string            `json:"source_topic"`
	Partition string            `json:"source_partition"`
	Offset    string            `json:"source_offset"`
	Operator  string            `json:"operator"`
	Class     string            `json:"class"`
	Message   string            `json:"message"`
	Attempts  string            `json:"attempts"`
	Time      string            `json:"time"`
	Key       string            `json:"key"`
	Value     string            `json:"value"`
	Timestamp time.Time         `json:"timestamp"`
	Headers   map[string]string `json:"headers,omitempty"` // the record's own
	rec       *kgo.Record
}

func parseDeadLetter(r *kgo.Record) deadLetter {
	d := deadLetter{ID: fmt.Sprintf("%d@%d", r.Partition, r.Offset), Key: string(r.Key), Value: string(r.Value), Timestamp: r.Timestamp, rec: r}
	for _, h := range r.Headers {
		v := string(h.Value)
		switch h.Key {
		case engine.HeaderErrorTopic:
			d.Topic = v
		case engine.HeaderErrorPartition:
			d.Partition = v
		case engine.HeaderErrorOffset:
			d.Offset = v
		case engine.HeaderErrorOperator:
			d.Operator = v
		case engine.HeaderErrorClass:
			d.Class = v
		case engine.HeaderErrorMessage:
			d.Message = v
		case engine.HeaderErrorAttempts:
			d.Attempts = v
		case engine.HeaderErrorTime:
			d.Time = v
		default:
			if !strings.HasPrefix(h.Key, "weir.error.") {
				if d.Headers == nil {
					d.Headers = map[string]string{}
				}
				d.Headers[h.Key] = v
			}
		}
	}
	return d
}

// readDeadLetters reads the topic's committed records, from its start
// until nothing new arrives for a second.
func readDeadLetters(ctx context.Context, seeds []string, topic string) ([]deadLetter, error) {
	cl, err := kgo.NewClient(append(kafkaOpts(seeds), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))...)
	if err != nil {
		return nil, usageError{err}
	}
	defer cl.Close()
	var out []deadLetter
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		for _, e := range fs.Errors() {
			if !errors.Is(e.Err, context.DeadlineExceeded) {
				return nil, fmt.Errorf("reading %s: %w", topic, e.Err)
			}
		}
		if fs.NumRecords() == 0 {
			break
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, parseDeadLetter(r)) })
	}
	slices.SortFunc(out, func(a, b deadLetter) int {
		if c := int(a.rec.Partition - b.rec.Partition); c != 0 {
			return c
		}
		return int(a.rec.Offset - b.rec.Offset)
	})
	return out, nil
}

func newDLQShowCmd() *cobra.Command {
	var f dlqFlags
	var asJSON bool
	var maxValue int
	cmd := &cobra.Command{
		Use:     "show --topic TOPIC [flags]",
		Short:   "Print a dead-letter topic's records: where each came from and why it failed",
		Example: `  weir dlq show --brokers kafka:9092 --topic orders-job-dlq`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.topic == "" {
				return usageError{errors.New("--topic is required")}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
			defer cancel()
			dls, err := readDeadLetters(ctx, f.seeds(), f.topic)
			if err != nil {
				return err
			}
			return printDeadLetters(cmd.OutOrStdout(), dls, asJSON, maxValue)
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object per dead letter")
	cmd.Flags().IntVar(&maxValue, "max-value", 200, "longest key and value shown, in bytes (0: all)")
	return cmd
}

func clip(s string, n int) string {
	if n > 0 && len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func printDeadLetters(w io.Writer, dls []deadLetter, asJSON bool, maxValue int) error {
	if asJSON {
		enc := json.NewEncoder(w)
		for _, d := range dls {
			if err := enc.Encode(d); err != nil {
				return err
			}
		}
		return nil
	}
	for _, d := range dls {
		fmt.Fprintf(w, "%s  from %s/%s@%s  %s in %s (attempts %s, at %s)\n    error: %s\n    key: %q\n    value: %q\n",
			d.ID, d.Topic, d.Partition, d.Offset, d.Class, d.Operator, d.Attempts, d.Time, d.Message,
			clip(d.Key, maxValue), clip(d.Value, maxValue))
	}
	fmt.Fprintf(w, "%d dead letters\n", len(dls))
	return nil
}

// parseSelection parses ids like 0@12 and 1@40-45, comma separated.
func parseSelection(specs []string) (func(p int32, off int64) bool, error) {
	type span struct {
		p      int32
		lo, hi int64
	}
	var spans []span
	for _, s := range specs {
		ps, os, ok := strings.Cut(s, "@")
		p, err := strconv.ParseInt(ps, 10, 32)
		if !ok || err != nil {
			return nil, fmt.Errorf("record %q: want PARTITION@OFFSET or PARTITION@FIRST-LAST", s)
		}
		los, his, isRange := strings.Cut(os, "-")
		lo, err1 := strconv.ParseInt(los, 10, 64)
		hi := lo
		var err2 error
		if isRange {
			hi, err2 = strconv.ParseInt(his, 10, 64)
		}
		if err1 != nil || err2 != nil || hi < lo {
			return nil, fmt.Errorf("record %q: want PARTITION@OFFSET or PARTITION@FIRST-LAST", s)
		}
		spans = append(spans, span{int32(p), lo, hi})
	}
	return func(p int32, off int64) bool {
		for _, s := range spans {
			if s.p == p && off >= s.lo && off <= s.hi {
				return true
			}
		}
		return false
	}, nil
}

func newDLQReplayCmd() *cobra.Command {
	var f dlqFlags
	var records []string
	var all, dryRun bool
	var to string
	cmd := &cobra.Command{
		Use:   "replay --topic TOPIC (--records P@O[,P@A-B...] | --all) [flags]",
		Short: "Write chosen dead letters back into the topics they were read from",
		Long: `replay writes the chosen dead letters (by their partition@offset in the
dead-letter topic, as weir dlq show prints them) back to the topic each was
read from (or --to), with its key, value, timestamp and its own headers, the
weir.error.* headers removed: once the cause is fixed, the job processes them
like any new record. The writes are idempotent; run it once per fix.`,
		Example: `  weir dlq replay --topic orders-job-dlq --records 0@12,3@40-45 --dry-run
  weir dlq replay --topic orders-job-dlq --all`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.topic == "" {
				return usageError{errors.New("--topic is required")}
			}
			if all == (len(records) > 0) {
				return usageError{errors.New("choose the records with --records, or --all")}
			}
			pick := func(int32, int64) bool { return true }
			if !all {
				var err error
				if pick, err = parseSelection(records); err != nil {
					return usageError{err}
				}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
			defer cancel()
			dls, err := readDeadLetters(ctx, f.seeds(), f.topic)
			if err != nil {
				return err
			}
			var out []*kgo.Record
			for _, d := range dls {
				if !pick(d.rec.Partition, d.rec.Offset) {
					continue
				}
				topic := d.Topic
				if to != "" {
					topic = to
				}
				if topic == "" {
					return fmt.Errorf("dead letter %s (a failed timer) has no input topic to go back to; use --to, or leave it out", d.ID)
				}
				r := &kgo.Record{Topic: topic, Key: d.rec.Key, Value: d.rec.Value, Timestamp: d.rec.Timestamp}
				for _, h := range d.rec.Headers {
					if !strings.HasPrefix(h.Key, "weir.error.") {
						r.Headers = append(r.Headers, h)
					}
				}
				out = append(out, r)
				fmt.Fprintf(cmd.OutOrStdout(), "%s -> %s (from %s/%s@%s, %s in %s)\n", d.ID, topic, d.Topic, d.Partition, d.Offset, d.Class, d.Operator)
			}
			if dryRun {
				fmt.Fprintf(cmd.OutOrStdout(), "dry run: %d of %d dead letters would be replayed\n", len(out), len(dls))
				return nil
			}
			cl, err := kgo.NewClient(kafkaOpts(f.seeds())...)
			if err != nil {
				return usageError{err}
			}
			defer cl.Close()
			if err := cl.ProduceSync(ctx, out...).FirstErr(); err != nil {
				return fmt.Errorf("replaying: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "replayed %d of %d dead letters\n", len(out), len(dls))
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().StringSliceVar(&records, "records", nil, "dead letters to replay, PARTITION@OFFSET or PARTITION@FIRST-LAST, comma-separated or repeated")
	cmd.Flags().BoolVar(&all, "all", false, "replay every dead letter")
	cmd.Flags().StringVar(&to, "to", "", "write them to this topic instead of the ones they came from")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print what would be replayed, write nothing")
	return cmd
}
