package connectors_test

import (
	"testing"
	"time"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/weirtest"
)

// A job run with an output suffix (a reprocessing run writing new
// versions of its outputs) writes to the suffixed topic, not the declared
// one.
func TestOutputSuffix(t *testing.T) {
	job := engine.NewJob("suffix", engine.WithOutputSuffix("-v2"))
	src := connectors.KafkaSource(job, "in", codec.String())
	connectors.KafkaSink(src, "out", codec.String())
	h := weirtest.New(t, job)
	if err := weirtest.SendValue(h, "in", codec.String(), "k", "v", time.Now()); err != nil {
		t.Fatal(err)
	}
	if got := h.ReadOutput("out-v2"); len(got) != 1 || string(got[0].Value) != "v" {
		t.Fatalf("out-v2: %v, want the record", got)
	}
	if got := h.ReadOutput("out"); len(got) != 0 {
		t.Fatalf("out: %v, want nothing", got)
	}
}
