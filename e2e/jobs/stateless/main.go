// Command stateless is the job the end-to-end tests run as a real process:
// it reads JSON events from $JOB_INPUT, drops bots, tags the rest and writes
// them, keyed as they came, to $JOB_OUTPUT. Everything else is configured
// by the usual WEIR_* variables.
package main

import (
	"fmt"
	"os"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/e2e/jobs/shared"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/operators"
)

func main() {
	in, out := os.Getenv("JOB_INPUT"), os.Getenv("JOB_OUTPUT")
	if in == "" || out == "" {
		fmt.Fprintln(os.Stderr, "stateless: set JOB_INPUT and JOB_OUTPUT")
		os.Exit(2)
	}
	job := engine.NewJob("e2e-stateless", engine.FromEnv())
	events := connectors.KafkaSource(job, in, codec.JSON[shared.Event]())
	humans := operators.Filter(events, func(e shared.Event) bool { return !e.Bot })
	tagged := operators.Map(humans, shared.Tag)
	connectors.KafkaSink(tagged, out, codec.JSON[shared.Tagged]())
	job.Main()
}
