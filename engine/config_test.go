package engine

import (
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestConfigPrecedenceCodeEnvFlags(t *testing.T) {
	t.Setenv("WEIR_BROKERS", "env-a:9092, env-b:9092")
	t.Setenv("WEIR_CHECKPOINT_INTERVAL", "250ms")
	t.Setenv("WEIR_GROUP", "from-env")
	j := NewJob("precedence", WithGroup("from-code"), WithCheckpointInterval(time.Second), WithStateDir("/code"))
	FromEnv().apply(&j.cfg)
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	j.cfg.registerFlags(fs)
	if err := fs.Parse([]string{"--group=from-flag"}); err != nil {
		t.Fatal(err)
	}
	c := j.cfg
	if got := strings.Join(c.Brokers, ","); got != "env-a:9092,env-b:9092" {
		t.Errorf("brokers %q: env should override the default", got)
	}
	if c.CheckpointInterval != 250*time.Millisecond {
		t.Errorf("checkpoint interval %v: env should override code", c.CheckpointInterval)
	}
	if c.Group != "from-flag" {
		t.Errorf("group %q: flag should override env and code", c.Group)
	}
	if c.StateDir != "/code" {
		t.Errorf("state dir %q: code value should stand when nothing overrides it", c.StateDir)
	}
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigErrorsAreReportedTogether(t *testing.T) {
	t.Setenv("WEIR_CHECKPOINT_INTERVAL", "soon")
	j := NewJob("bad", FromEnv(), WithStartOffset("middle"), WithTaskQueueRecords(0))
	err := j.cfg.validate()
	if !errors.Is(err, ErrConfig) {
		t.Fatalf("want ErrConfig, got %v", err)
	}
	for _, want := range []string{`WEIR_CHECKPOINT_INTERVAL="soon"`, `start offset "middle"`, "task queue records 0"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestInboxPausesAboveHighAndResumesAtHalf(t *testing.T) {
	var pauses, resumes int
	q := newInbox(100, func() { pauses++ }, func() { resumes++ })
	batchOf := func(n int) batch { return batch{topic: "t", records: make([]*kgo.Record, n)} }
	q.push(batchOf(60))
	if pauses != 0 {
		t.Fatal("paused below the threshold")
	}
	q.push(batchOf(60)) // 120 queued
	q.push(batchOf(10)) // still paused: no second pause
	if pauses != 1 {
		t.Fatalf("%d pauses, want 1", pauses)
	}
	q.pop() // 70 left: above half
	if resumes != 0 {
		t.Fatal("resumed above half the threshold")
	}
	q.pop() // 10 left
	if resumes != 1 {
		t.Fatalf("%d resumes, want 1", resumes)
	}
	if b, ok := q.pop(); !ok || len(b.records) != 10 {
		t.Fatal("lost a batch")
	}
	if _, ok := q.pop(); ok {
		t.Fatal("popped from an empty inbox")
	}
}
