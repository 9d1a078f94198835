package engine_test

import (
	"flag"
	"fmt"
	"time"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/weirtest"
)

// A job is a topology built in code, then run with Main (a program) or
// Run: the configuration comes from options, then WEIR_* variables, then
// flags. Here a flag of the job's own picks its input topic.
func ExampleJob_RegisterFlags() {
	fs := flag.NewFlagSet("clicks", flag.ContinueOnError)
	topic := fs.String("topic", "clicks", "topic to read")
	job := engine.NewJob("clicks", engine.WithCheckpointInterval(time.Second))
	job.RegisterFlags(fs)
	_ = fs.Parse([]string{"--topic", "clicks-eu", "--brokers", "kafka-0:9092,kafka-1:9092", "--guarantee", "at-least-once"})

	clicks := connectors.KafkaSource(job, *topic, codec.String())
	connectors.KafkaSink(clicks, "clicks-copy", codec.String())
	cfg := job.Config()
	fmt.Println(*topic, cfg.Brokers, cfg.Guarantee, cfg.CheckpointInterval)
	// In a program: job.Main()
	// Output:
	// clicks-eu [kafka-0:9092 kafka-1:9092] at-least-once 1s
}

// OnError sets an operator's error policy: with dead-letter, a record its
// function fails on goes to the job's dead-letter topic (<job>-dlq by
// default) with headers saying where and why, and the job goes on.
func ExampleOnError() {
	job := engine.NewJob("parse")
	raw := connectors.KafkaSource(job, "amounts", codec.String())
	parsed := engine.OnError(operators.Map(raw, func(s string) (int, error) {
		var n int
		_, err := fmt.Sscan(s, &n)
		return n, err
	}), engine.DeadLetter)
	connectors.KafkaSink(parsed, "parsed", codec.JSON[int]())

	h, _ := weirtest.Start(job)
	defer h.Close()
	at := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, s := range []string{"12", "twelve", "30"} {
		_ = weirtest.SendValue(h, "amounts", codec.String(), "k", s, at)
	}
	for _, r := range weirtest.ReadOutputs(h, "parsed", codec.JSON[int]()) {
		fmt.Println("parsed", r.Value)
	}
	for _, r := range h.ReadOutput("parse-dlq") {
		headers := map[string]string{}
		for _, hd := range r.Headers {
			headers[hd.Key] = string(hd.Value)
		}
		fmt.Println("dead letter", string(r.Value), "from", headers[engine.HeaderErrorTopic], "at", headers[engine.HeaderErrorOperator])
	}
	// Output:
	// parsed 12
	// parsed 30
	// dead letter twelve from amounts at map
}
