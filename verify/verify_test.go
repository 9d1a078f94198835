package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/internal/kafkatest"
	"github.com/weirstream/weir/provenance"
)

// out builds an output record for partition part with the given key and
// provenance; empty src, path or cp leave that header out.
func out(topic string, part int32, key, src, path, cp string) *kgo.Record {
	r := &kgo.Record{Topic: topic, Partition: part, Value: []byte("v")}
	if key != "" {
		r.Key = []byte(key)
	}
	for _, h := range [][2]string{{provenance.SourceHeader, src}, {provenance.PathHeader, path}, {provenance.CheckpointHeader, cp}} {
		if h[1] != "" {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: h[0], Value: []byte(h[1])})
		}
	}
	return r
}

func in(topic string, part int32, key string) *kgo.Record {
	return &kgo.Record{Topic: topic, Partition: part, Key: []byte(key), Value: []byte("v")}
}

// produce writes recs, each to the partition it names.
func produce(t *testing.T, brokers []string, recs ...*kgo.Record) {
	t.Helper()
	cl := kafkatest.Client(t, brokers, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	kafkatest.ProduceSync(t, cl, recs...)
}

func run(t *testing.T, cfg Config) *Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if cfg.MaxExamples == 0 {
		cfg.MaxExamples = 10
	}
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatalf("WriteText: %v", err)
	}
	t.Logf("report:\n%s", text.String())
	return rep
}

// cleanJob writes 5 records to each of the 2 partitions of "in" and one
// output per input record to "out", keyed like its input, in the same
// partition and order.
func cleanJob(t *testing.T, brokers []string) {
	t.Helper()
	var recs []*kgo.Record
	for p := range int32(2) {
		for o := range 5 {
			key := "k" + string(rune('a'+o%2))
			recs = append(recs, in("in", p, key))
			origin := provenance.Origin{Topic: "in", Partition: p, Offset: int64(o)}
			recs = append(recs, out("out", p, key, origin.String(), "0", provenance.Checkpoint("0_0", 1)))
		}
	}
	produce(t, brokers, recs...)
}

func TestCleanOutputPasses(t *testing.T) {
	brokers := kafkatest.Fake(t, 2, "in", "out")
	cleanJob(t, brokers)
	rep := run(t, Config{Brokers: brokers, Output: []string{"out"}, Input: []string{"in"}})
	if !rep.OK() {
		t.Fatalf("clean output reported violations: %+v", rep)
	}
	want := []TopicStats{{Topic: "out", Partitions: 2, Records: 10}}
	if len(rep.Outputs) != 1 || rep.Outputs[0] != want[0] {
		t.Errorf("outputs = %+v, want %+v", rep.Outputs, want)
	}
	if len(rep.Inputs) != 1 || rep.Inputs[0] != (TopicStats{Topic: "in", Partitions: 2, Records: 10}) {
		t.Errorf("inputs = %+v", rep.Inputs)
	}
}

func TestDuplicateReported(t *testing.T) {
	brokers := kafkatest.Fake(t, 2, "in", "out")
	cleanJob(t, brokers)
	// A second copy of in/0/2's output, in the other partition, from a
	// later checkpoint; and an extra output of in/0/3 with another path,
	// which is no duplicate.
	produce(t, brokers,
		out("out", 1, "ka", "in/0/2", "0", "0_0@2"),
		out("out", 0, "kb", "in/0/3", "1", "0_0@2"),
	)
	rep := run(t, Config{Brokers: brokers, Output: []string{"out"}, Input: []string{"in"}})
	if rep.OK() || rep.Duplicates != 1 || rep.Violations() != 1 {
		t.Fatalf("duplicates = %d, violations = %d, want 1 and 1", rep.Duplicates, rep.Violations())
	}
	d := rep.Examples.Duplicates[0]
	if d.First.Origin != "in/0/2" || d.First.Path != "0" || d.Second.Origin != "in/0/2" {
		t.Errorf("example = %+v", d)
	}
	copies := map[string]string{d.First.String(): d.First.Checkpoint, d.Second.String(): d.Second.Checkpoint}
	want := map[string]string{"out/0@2": "0_0@1", "out/1@5": "0_0@2"}
	for k, v := range want {
		if copies[k] != v {
			t.Errorf("copies = %v, want %v", copies, want)
			break
		}
	}
}

func TestReorderReported(t *testing.T) {
	brokers := kafkatest.Fake(t, 1, "out")
	produce(t, brokers,
		out("out", 0, "k", "in/0/3", "0", "t@1"),
		out("out", 0, "other", "in/0/9", "0", "t@1"), // another key: its own sequence
		out("out", 0, "k", "in/1/0", "0", "t@1"),     // another origin partition
		out("out", 0, "k", "in/0/3", "1", "t@1"),     // equal origin offset is fine
		out("out", 0, "k", "in/0/1", "0", "t@1"),     // goes back: violation
		out("out", 0, "k", "in/0/2", "0", "t@1"),     // forward again from 1: fine
		out("out", 0, "", "in/0/0", "0", "t@1"),      // keyless: not checked
	)
	rep := run(t, Config{Brokers: brokers, Output: []string{"out"}})
	if rep.OrderViolations != 1 || rep.Violations() != 1 {
		t.Fatalf("order violations = %d, violations = %d, want 1 and 1", rep.OrderViolations, rep.Violations())
	}
	o := rep.Examples.OrderViolations[0]
	if o.Key != "k" || o.Earlier.Offset != 3 || o.Earlier.Origin != "in/0/3" || o.Later.Offset != 4 || o.Later.Origin != "in/0/1" {
		t.Errorf("example = %+v", o)
	}
}

func TestMissingAndPhantomReported(t *testing.T) {
	brokers := kafkatest.Fake(t, 1, "in", "out")
	produce(t, brokers, in("in", 0, "a"), in("in", 0, "b"), in("in", 0, "c"))
	produce(t, brokers,
		out("out", 0, "a", "in/0/0", "0", "t@1"),
		out("out", 0, "c", "in/0/2", "0", "t@1"),
		out("out", 0, "x", "in/0/7", "0", "t@1"),    // beyond the input's end
		out("out", 0, "y", "in/3/0", "0", "t@1"),    // no such input partition
		out("out", 0, "z", "other/0/9", "0", "t@1"), // not an input topic: not checked
	)
	rep := run(t, Config{Brokers: brokers, Output: []string{"out"}, Input: []string{"in"}})
	if rep.Missing != 1 || rep.Phantoms != 2 || rep.Violations() != 3 {
		t.Fatalf("missing = %d, phantoms = %d, violations = %d; want 1, 2, 3", rep.Missing, rep.Phantoms, rep.Violations())
	}
	if m := rep.Examples.Missing[0]; m != (Record{Topic: "in", Partition: 0, Offset: 1}) {
		t.Errorf("missing example = %+v", m)
	}
	if p := rep.Examples.Phantoms; p[0].Origin != "in/0/7" || p[1].Origin != "in/3/0" {
		t.Errorf("phantom examples = %+v", p)
	}

	// Without inputs, neither is checked.
	rep = run(t, Config{Brokers: brokers, Output: []string{"out"}})
	if !rep.OK() {
		t.Errorf("without inputs: violations = %d, want 0", rep.Violations())
	}
}

func TestUnattributedCounted(t *testing.T) {
	brokers := kafkatest.Fake(t, 1, "out")
	produce(t, brokers,
		out("out", 0, "a", "in/0/0", "0", "t@1"),
		out("out", 0, "b", "", "", "t@1"), // a timer's output: weir.cp only
		out("out", 0, "c", "", "", ""),    // no provenance at all
	)
	rep := run(t, Config{Brokers: brokers, Output: []string{"out"}})
	if !rep.OK() || rep.Unattributed != 2 {
		t.Fatalf("OK = %v, unattributed = %d; want true, 2", rep.OK(), rep.Unattributed)
	}
	rep = run(t, Config{Brokers: brokers, Output: []string{"out"}, RequireProvenance: true})
	if rep.OK() || rep.Violations() != 2 || len(rep.Examples.Unattributed) != 2 {
		t.Fatalf("with RequireProvenance: violations = %d, examples = %d; want 2, 2", rep.Violations(), len(rep.Examples.Unattributed))
	}
}

func TestMalformedReported(t *testing.T) {
	brokers := kafkatest.Fake(t, 1, "out")
	twice := out("out", 0, "e", "in/0/4", "0", "t@1")
	twice.Headers = append(twice.Headers, kgo.RecordHeader{Key: provenance.SourceHeader, Value: []byte("in/0/5")})
	produce(t, brokers,
		out("out", 0, "a", "garbage", "0", "t@1"),
		out("out", 0, "b", "in/0/1", "x", "t@1"),
		out("out", 0, "c", "in/0/2", "", "t@1"),
		out("out", 0, "d", "in/0/3", "0", "no-at-sign"),
		twice,
		out("out", 0, "f", "in/0/6", "2.0", "t@1"), // fine
	)
	rep := run(t, Config{Brokers: brokers, Output: []string{"out"}, MaxExamples: 3})
	if rep.Malformed != 5 || rep.Violations() != 5 {
		t.Fatalf("malformed = %d, violations = %d; want 5, 5", rep.Malformed, rep.Violations())
	}
	if len(rep.Examples.Malformed) != 3 {
		t.Errorf("examples = %d, want MaxExamples 3", len(rep.Examples.Malformed))
	}
	if m := rep.Examples.Malformed[0]; m.Record.Offset != 0 || !strings.Contains(m.Reason, "garbage") {
		t.Errorf("first example = %+v", m)
	}
}

func TestMissingTopicIsAnError(t *testing.T) {
	brokers := kafkatest.Fake(t, 1, "out")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := Run(ctx, Config{Brokers: brokers, Output: []string{"out", "nope"}})
	if !errors.Is(err, ErrTopicNotFound) || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("err = %v, want ErrTopicNotFound naming nope", err)
	}
	_, err = Run(ctx, Config{Brokers: brokers, Output: []string{"out"}, Input: []string{"gone"}})
	if !errors.Is(err, ErrTopicNotFound) || !strings.Contains(err.Error(), "gone") {
		t.Fatalf("err = %v, want ErrTopicNotFound naming gone", err)
	}
}

func TestBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{Output: []string{"out"}},
		{Brokers: []string{"b:9092"}},
		{Brokers: []string{"b:9092"}, Output: []string{""}},
		{Brokers: []string{"b:9092"}, Output: []string{"out"}, MaxExamples: -1},
	} {
		if _, err := Run(context.Background(), cfg); err == nil {
			t.Errorf("Run(%+v) succeeded, want an error", cfg)
		}
	}
}

func TestEmptyTopicsAreClean(t *testing.T) {
	brokers := kafkatest.Fake(t, 3, "in", "out")
	rep := run(t, Config{Brokers: brokers, Output: []string{"out", "out"}, Input: []string{"in"}})
	if !rep.OK() || len(rep.Outputs) != 1 || rep.Outputs[0].Records != 0 || rep.Outputs[0].Partitions != 3 {
		t.Fatalf("report = %+v", rep)
	}
}

func TestReportJSON(t *testing.T) {
	rep := &Report{
		Outputs:    []TopicStats{{Topic: "out", Partitions: 1, Records: 2}},
		Duplicates: 1,
		Examples: Examples{Duplicates: []Duplicate{{
			First:  Record{Topic: "out", Offset: 0, Origin: "in/0/0", Path: "0"},
			Second: Record{Topic: "out", Offset: 1, Origin: "in/0/0", Path: "0"},
		}}},
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		OK bool `json:"ok"`
		Report
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if got.OK || got.Duplicates != 1 || got.Examples.Duplicates[0].Second.Offset != 1 {
		t.Errorf("round trip of %s gave %+v", b, got)
	}
}

func TestCheckPath(t *testing.T) {
	for p, ok := range map[string]bool{
		"0": true, "12": true, "2.0": true, "1.2.3": true,
		"": false, ".": false, "1.": false, ".1": false, "1..2": false, "a": false, "-1": false, "1 ": false,
	} {
		if err := checkPath([]byte(p)); (err == nil) != ok {
			t.Errorf("checkPath(%q) = %v, want ok %v", p, err, ok)
		}
	}
}

func TestPrintableKey(t *testing.T) {
	for k, want := range map[string]string{"user-1": "user-1", "": "", "a\x00": "0x6100", "\xff": "0xff"} {
		if got := printableKey([]byte(k)); got != want {
			t.Errorf("printableKey(%q) = %q, want %q", k, got, want)
		}
	}
}
