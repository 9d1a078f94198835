package main

import (
	"io"

	"github.com/spf13/cobra"
)

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
