package shared

import (
	"fmt"
	"os"

	"github.com/weirstream/weir/engine"
)

// Main is the main of every test job binary: it builds the job named name
// from $JOB_INPUT to $JOB_OUTPUT with build, configured by the usual
// WEIR_* variables, and runs it.
func Main(name string, build func(job *engine.Job, in, out string)) {
	in, out := os.Getenv("JOB_INPUT"), os.Getenv("JOB_OUTPUT")
	if in == "" || out == "" {
		fmt.Fprintf(os.Stderr, "%s: set JOB_INPUT and JOB_OUTPUT\n", name)
		os.Exit(2)
	}
	job := engine.NewJob(name, engine.FromEnv())
	build(job, in, out)
	job.Main()
}
