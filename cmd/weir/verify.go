package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/weirstream/weir/verify"
)

// defaultBroker is used when neither --brokers nor WEIR_BROKERS is set.
const defaultBroker = "localhost:9092"

// verifyFlags are the command-line settings of weir verify.
type verifyFlags struct {
	brokers           []string
	output            []string
	input             []string
	maxExamples       int
	json              bool
	requireProvenance bool
	timeout           time.Duration
}

// newVerifyCmd builds weir verify, a thin shell over package verify: it
// turns flags into a verify.Config, runs it, and prints the report.
func newVerifyCmd() *cobra.Command {
	var f verifyFlags
	cmd := &cobra.Command{
		Use:   "verify --output TOPIC [--output TOPIC ...] [--input TOPIC ...] [flags]",
		Short: "Check a Weir job's output topics for exactly-once violations",
		Long: `verify checks the committed records of a Weir job's output topics for
exactly-once violations, using the provenance headers the job writes when it
runs with provenance on (WEIR_PROVENANCE=true):

  duplicates        two records of one output topic with the same origin
                    (weir.src) and path (weir.path)
  order violations  records of one output partition with the same key and
                    origin partition whose origin offsets go back
  missing           with --input: input records that no output came from
  phantoms          with --input: outputs whose origin is no input record
  malformed         provenance headers that do not parse

Records without provenance (from processing-time timers, or a job without
provenance) are counted; --require-provenance makes them violations.

Topics are read with read_committed isolation up to their last stable
offsets, taken when verify starts: records of aborted or still-open
transactions are not counted. While the job runs, input records it has not
processed yet show as missing: use --input once the job has caught up, and
only for jobs whose every input record produces an output.

Exit status: 0 no violations, 1 violations found, 2 usage or connection error.`,
		Example: `  weir verify --brokers kafka:9092 --output orders-enriched
  weir verify --output out-a --output out-b --input orders --json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unexpected argument %q: name topics with --output and --input", args[0])}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runVerify(cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&f.brokers, "brokers", nil, "seed brokers, host:port, comma-separated or repeated (default $WEIR_BROKERS, else "+defaultBroker+")")
	fl.StringSliceVar(&f.output, "output", nil, "output topic to check; repeat for more (required)")
	fl.StringSliceVar(&f.input, "input", nil, "input topic of the job, to check for missing and phantom records; repeat for more")
	fl.IntVar(&f.maxExamples, "max-examples", 10, "examples to show per kind of violation")
	fl.BoolVar(&f.json, "json", false, "print the report as JSON")
	fl.BoolVar(&f.requireProvenance, "require-provenance", false, "count output records without provenance headers as violations")
	fl.DurationVar(&f.timeout, "timeout", 2*time.Minute, "give up after this long")
	return cmd
}

func runVerify(cmd *cobra.Command, f verifyFlags) error {
	switch {
	case len(f.output) == 0:
		return usageError{errors.New("no output topic: name at least one with --output")}
	case f.maxExamples < 0:
		return usageError{fmt.Errorf("--max-examples %d is negative", f.maxExamples)}
	case f.timeout <= 0:
		return usageError{fmt.Errorf("--timeout %v is not positive", f.timeout)}
	}
	brokers := f.brokers
	if !cmd.Flags().Changed("brokers") {
		brokers = brokersFromEnv()
	}
	brokers = nonEmpty(brokers)
	if len(brokers) == 0 {
		return usageError{errors.New("no brokers: --brokers is empty")}
	}

	ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
	defer cancel()
	rep, err := verify.Run(ctx, verify.Config{
		Brokers:           brokers,
		Output:            f.output,
		Input:             f.input,
		MaxExamples:       f.maxExamples,
		RequireProvenance: f.requireProvenance,
	}, kafkaOpts(nil)[1:]...)
	if err != nil {
		return err
	}

	out := cmd.OutOrStdout()
	if f.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	} else {
		err = rep.WriteText(out)
	}
	if err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	if !rep.OK() {
		return errViolations
	}
	return nil
}

// brokersFromEnv returns the brokers in WEIR_BROKERS, else the default.
func brokersFromEnv() []string {
	if env := os.Getenv("WEIR_BROKERS"); strings.TrimSpace(env) != "" {
		return strings.Split(env, ",")
	}
	return []string{defaultBroker}
}

// nonEmpty returns the trimmed, non-empty entries of list.
func nonEmpty(list []string) []string {
	var out []string
	for _, s := range list {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
