// Package verify checks a Weir job's committed output for exactly-once
// violations, using the provenance headers (package provenance) the job
// adds to every output record when provenance is on. It is the library
// behind `weir verify`; it knows nothing about the job itself.
//
// Run reads every output topic from its start up to its last stable offset
// with read_committed isolation, so records of aborted or still-open
// transactions are never counted, and reports:
//
//   - duplicates: two committed records of one output topic with the same
//     origin (weir.src) and path (weir.path);
//   - order violations: in one output partition, records with the same key
//     and the same origin partition whose origin offsets decrease;
//   - missing records and phantoms, when input topics are given: input
//     records that are the origin of no output, and outputs whose origin is
//     not a record of the input;
//   - malformed provenance headers, and records without provenance
//     (unattributed; a violation only with Config.RequireProvenance).
//
// Ownership: Run owns the Kafka clients it creates and closes them before
// it returns; the Report it returns belongs to the caller.
package verify

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Config says what to verify. Brokers and Output are required.
type Config struct {
	// Brokers are the seed brokers, host:port.
	Brokers []string
	// Output are the job's output topics. Each topic is checked on its
	// own: two topics may hold records with the same origin and path.
	Output []string
	// Input are the job's input topics. When set, every input record must
	// be the origin of at least one output record (else it is missing),
	// and every output naming an input topic as its origin must name a
	// record that exists (else it is a phantom). Leave it empty for jobs
	// that drop or aggregate records: their inputs have no output each.
	Input []string
	// MaxExamples caps the examples kept per kind of violation; 0 keeps
	// none (the counts are always complete).
	MaxExamples int
	// RequireProvenance makes every output record without a weir.src
	// header a violation. Without it such records (from processing-time
	// timers, or a job running without provenance) are only counted.
	RequireProvenance bool
}

// ErrTopicNotFound is wrapped by the error Run returns when an output or
// input topic does not exist.
var ErrTopicNotFound = errors.New("topic not found")

// Run verifies the topics in cfg and returns the report. opts are extra
// client options (TLS, SASL, tests); they are applied after Run's own, so
// they may override them. An error means the verification could not be
// done (bad config, unreachable brokers, missing topic, timeout through
// ctx); violations are not errors but are in the Report (see Report.OK).
//
// Snapshots: Run first takes the end offsets (last stable offsets) of the
// output topics and then those of the input topics, and reads each topic
// only up to its snapshot. Outputs are snapshot first so that every origin
// an output in the snapshot names was already committed to its input when
// the input snapshot was taken: phantoms are never an artifact of timing
// (the job reads its inputs read_committed). While a job is
// still running, input records it has not processed yet are reported
// missing: check for missing records once the job has caught up.
//
// Reading waits for each partition's records up to its snapshot. A
// transaction left open at the snapshot can hold a read_committed reader
// back until it commits, aborts or times out (the broker's transaction
// timeout); ctx bounds the wait.
func Run(ctx context.Context, cfg Config, opts ...kgo.Opt) (*Report, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	outputs, inputs := dedupe(cfg.Output), dedupe(cfg.Input)
	clientOpts := append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, opts...)

	adminClient, err := kgo.NewClient(clientOpts...)
	if err != nil {
		return nil, fmt.Errorf("verify: creating client: %w", err)
	}
	defer adminClient.Close()
	if err := adminClient.Ping(ctx); err != nil {
		return nil, fmt.Errorf("verify: cannot reach brokers %v: %w", cfg.Brokers, err)
	}
	adm := kadm.NewClient(adminClient)
	outSpans, err := snapshot(ctx, adm, "output", outputs)
	if err != nil {
		return nil, err
	}
	inSpans, err := snapshot(ctx, adm, "input", inputs)
	if err != nil {
		return nil, err
	}

	c := newChecker(cfg.MaxExamples, cfg.RequireProvenance, inSpans)
	if len(inputs) > 0 {
		if err := readTopics(ctx, clientOpts, inSpans, c.addInput); err != nil {
			return nil, err
		}
	}
	if err := readTopics(ctx, clientOpts, outSpans, c.addOutput); err != nil {
		return nil, err
	}
	return c.report(outputs, inputs, outSpans, inSpans), nil
}

func (cfg *Config) validate() error {
	if len(cfg.Brokers) == 0 {
		return errors.New("verify: no brokers given")
	}
	if len(cfg.Output) == 0 {
		return errors.New("verify: no output topic given")
	}
	for _, t := range slices.Concat(cfg.Output, cfg.Input) {
		if t == "" {
			return errors.New("verify: empty topic name")
		}
	}
	if cfg.MaxExamples < 0 {
		return fmt.Errorf("verify: MaxExamples %d is negative", cfg.MaxExamples)
	}
	return nil
}

// dedupe returns topics without repeats, in first-seen order.
func dedupe(topics []string) []string {
	var out []string
	for _, t := range topics {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}
