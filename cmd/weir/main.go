// Command weir is Weir's operations CLI: tools that work on the Kafka data
// of Weir jobs from outside them: verify (verify.go) checks outputs for
// exactly once, dlq (dlq.go) shows and replays dead letters, breaker
// (breaker.go) reads and resumes a replica's circuit breaker, offsets
// (offsets.go) describes a job's offsets and resets them with its state.
//
// This file owns the process: arguments, signals and the exit code. The
// commands are put together in root.go.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// Exit codes.
const (
	exitOK         = 0 // the command succeeded; for verify: no violations
	exitViolations = 1 // verify found exactly-once violations
	exitError      = 2 // bad usage, or the command could not do its work
)

// errViolations is returned by a command that ran fine but found
// violations; it maps to exitViolations.
var errViolations = errors.New("exactly-once violations found")

// usageError is a mistake in the command line.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// run runs the CLI with args (without the program name), writing results
// to stdout and diagnostics to stderr, and returns the exit code. An
// interrupt (SIGINT, SIGTERM) cancels the running command.
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errViolations):
		return exitViolations
	}
	fmt.Fprintf(stderr, "weir: %v\n", err)
	if errors.As(err, new(usageError)) || cmd == root {
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return exitError
}
