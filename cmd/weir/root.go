package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/internal/kafkaconn"
)

// kafkaOpts are the client options of every command: the seed brokers,
// then TLS and SASL from the WEIR_KAFKA_* variables and files, as a
// job's. The root command has checked those variables already.
func kafkaOpts(seeds []string) []kgo.Opt {
	sec, _ := kafkaconn.FromEnv(os.LookupEnv)
	return append([]kgo.Opt{kgo.SeedBrokers(seeds...)}, sec.Opts()...)
}

// newRootCmd builds the weir command and its subcommands, writing to
// stdout and stderr. Errors are not printed by cobra but returned, for run
// to print and map to an exit code. Flag mistakes come back as usageError;
// the root command only fails on usage (an unknown command).
func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "weir",
		Short: "Weir's operations CLI: inspect and check the Kafka data of Weir jobs, handle their failures, reprocess",
		Long: `weir is Weir's operations CLI: it inspects and checks, from outside, the
Kafka topics Weir jobs read and write, handles their dead letters and
circuit breakers, and rewinds them for reprocessing.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		// The connection's TLS and SASL settings come from the
		// environment and files (never flags: a command line is
		// world-readable); a mistake in them stops every command
		// before it connects.
		PersistentPreRunE: func(*cobra.Command, []string) error {
			if _, err := kafkaconn.FromEnv(os.LookupEnv); err != nil {
				return usageError{fmt.Errorf("kafka security: %w", err)}
			}
			return nil
		},
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return usageError{err}
	})
	root.AddCommand(newVerifyCmd(), newDLQCmd(), newBreakerCmd(), newOffsetsCmd(), newSavepointCmd())
	return root
}
