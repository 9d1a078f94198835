// Command sessions is the session-window job the end-to-end tests run as
// real processes: shared.BuildSessions from $JOB_INPUT to $JOB_OUTPUT,
// configured by the usual WEIR_* variables.
package main

import (
	"fmt"
	"os"

	"github.com/weirstream/weir/e2e/jobs/shared"
	"github.com/weirstream/weir/engine"
)

func main() {
	in, out := os.Getenv("JOB_INPUT"), os.Getenv("JOB_OUTPUT")
	if in == "" || out == "" {
		fmt.Fprintln(os.Stderr, "sessions: set JOB_INPUT and JOB_OUTPUT")
		os.Exit(2)
	}
	job := engine.NewJob("e2e-sessions", engine.FromEnv())
	shared.BuildSessions(job, in, out)
	job.Main()
}
