package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/bench/nexmark"
)

func TestGen(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	brokers := strings.Join(cluster.ListenAddrs(), ",")
	var out bytes.Buffer
	if err := run(ctx, []string{"gen", "-brokers", brokers, "-topic", "events", "-events", "300", "-partitions", "2"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "wrote 300 events to events") {
		t.Errorf("gen printed %q", out.String())
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumeTopics("events"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for n := 0; n < 300; {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("after %d records: %v", n, err)
		}
		for _, r := range fs.Records() {
			if _, err := nexmark.DecodeEvent(r.Value); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
}

func TestUsage(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"list"}, &out); err != nil || !strings.Contains(out.String(), "q12\n") {
		t.Errorf("list: %q, %v", out.String(), err)
	}
	for _, args := range [][]string{nil, {"nope"}, {"run", "-query", "q4"}, {"gen", "-rate", "-1"}, {"gen", "-bogus"},
		{"gen", "-base-time", "yesterday"}, {"gen", "-start-event", "-5"}, {"bare"},
		{"bare", "--input", "a", "--output", "b", "--group", "g", "--guarantee", "maybe"},
		{"bare", "--query", "q1", "--input", "a", "--output", "b", "--group", "g"},
		{"dump"}, {"bench", "-engines", "spark"}, {"bench", "-queries", "q4"}, {"bench", "-alo-queries", "q99"},
		{"bench", "-producer-compression", "brotli"}, {"bench", "-producer-batch-bytes", "0"},
		{"bench", "-scripts", "flink-old"}, {"bench", "-engines", "x", "-scripts", "x=/no/such/launcher"},
		{"run", "-query", "q1", "-producer-linger-ms", "-1"},
		{"bare", "--input", "a", "--output", "b", "--group", "g", "--producer-compression", "lzma"}} {
		var u usageError
		if err := run(context.Background(), args, &out); !errors.As(err, &u) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}
