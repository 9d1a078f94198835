package weirtest_test

import (
	"fmt"
	"strings"
	"time"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/weirtest"
)

// A harness runs the whole job in the caller's goroutine. Checkpoint
// commits what came before it; Crash goes back to the last checkpoint and
// replays what came after, as a job restarted after a crash would:
// ReadOutputs reads what is new, as a read_uncommitted consumer does,
// CommittedOutputs what a read_committed consumer sees.
func ExampleStart() {
	job := engine.NewJob("upper")
	words := connectors.KafkaSource(job, "words", codec.String())
	connectors.KafkaSink(operators.Map(words, func(s string) (string, error) { return strings.ToUpper(s), nil }), "upper", codec.String())

	h, err := weirtest.Start(job) // in a test: weirtest.New(t, job)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer h.Close()
	at := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	_ = weirtest.SendValue(h, "words", codec.String(), "k", "kafka", at)
	_ = h.Checkpoint()
	_ = weirtest.SendValue(h, "words", codec.String(), "k", "flink", at)
	fmt.Println("read:", values(weirtest.ReadOutputs(h, "upper", codec.String())))
	_ = h.Crash()
	fmt.Println("after the crash:", values(weirtest.ReadOutputs(h, "upper", codec.String())))
	_ = h.Checkpoint()
	fmt.Println("committed:", values(weirtest.CommittedOutputs(h, "upper", codec.String())))
	// Output:
	// read: [KAFKA FLINK]
	// after the crash: [FLINK]
	// committed: [KAFKA FLINK]
}

func values(rs []weirtest.Record[string]) []string {
	var vs []string
	for _, r := range rs {
		vs = append(vs, r.Value)
	}
	return vs
}
