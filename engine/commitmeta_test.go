package engine

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"
)

func TestCommitMetaRoundTrip(t *testing.T) {
	for _, m := range []commitMeta{
		{cp: 0},
		{cp: 7, changelog: map[string]int64{"g-counts-changelog": 42}},
		{cp: 1 << 40, changelog: map[string]int64{"g-a-changelog": 0, "g-b-changelog": 9}, eventTime: map[string]string{
			"in":                    "1709283600000",
			"g-by-user-repartition": "-9223372036854775808,1709283600000!,5",
			taskWatermarkKey:        "1709283600000",
			"g-task":                "1709283600007", // a source topic named like the task's watermark
		}},
	} {
		s := m.encode("g")
		got, ok, err := parseCommitMeta(s, "g")
		if err != nil || !ok {
			t.Fatalf("parse(%q): ok %v, %v", s, ok, err)
		}
		if got.cp != m.cp || !maps.Equal(got.changelog, m.changelog) || !maps.Equal(got.eventTime, m.eventTime) {
			t.Errorf("round trip of %+v gave %+v (via %q)", m, got, s)
		}
	}
}

func TestCommitMetaNotWeirs(t *testing.T) {
	for _, s := range []string{"", "kgo-member-1234", "weir9 cp=1"} {
		if _, ok, err := parseCommitMeta(s, "g"); ok || err != nil {
			t.Errorf("parse(%q): ok %v, err %v; want not Weir's", s, ok, err)
		}
	}
}

func TestCommitMetaCorrupt(t *testing.T) {
	for _, s := range []string{"weir1 cp=x", "weir1 cp=1 cl=topic", "weir1 cp=1 cl=t:-3", "weir1 cp=1 et=:5"} {
		if _, ok, err := parseCommitMeta(s, "g"); !ok || err == nil {
			t.Errorf("parse(%q): ok %v, err %v; want a Weir parse error", s, ok, err)
		}
	}
}

// TestCommitMetaV1StillReads: offsets committed by the previous format
// (decimal, whole topic names) restore after an upgrade.
func TestCommitMetaV1StillReads(t *testing.T) {
	got, ok, err := parseCommitMeta("weir1 cp=4 cl=g-x-changelog:5 et=g-r-repartition:1709283600000,-3!", "g")
	if err != nil || !ok || got.cp != 4 || got.changelog["g-x-changelog"] != 5 || got.eventTime["g-r-repartition"] != "1709283600000,-3!" {
		t.Fatalf("got %+v, %v, %v", got, ok, err)
	}
}

// TestCommitMetaV2TaskWatermarkStillReads: the previous format wrote the
// task's own watermark as "~task", which it also read back as the topic
// <group>-task, so a restarted task lost its watermark (it came back at
// the minimum, and records late before the restart re-created windows that
// had fired: the crash test's windows counted low). Offsets committed by
// it must restore the watermark after the upgrade.
func TestCommitMetaV2TaskWatermarkStillReads(t *testing.T) {
	got, ok, err := parseCommitMeta("weir2 cp=4 cl=~x-changelog:5 et=~r-repartition:lt8fbmo0;~task:lt8fbmo0", "g")
	if err != nil || !ok || got.eventTime[taskWatermarkKey] != "1709283600000" || got.eventTime["g-r-repartition"] != "1709283600000" {
		t.Fatalf("got %+v, %v, %v", got, ok, err)
	}
}

// TestCommitMetaIsCompact: the group prefix and decimal timestamps, which
// every entry repeats, are what the encoding saves on.
func TestCommitMetaIsCompact(t *testing.T) {
	m := commitMeta{cp: 3, changelog: map[string]int64{"g-x-changelog": 5}, eventTime: map[string]string{"g-r-repartition": "1709283600000,1709283600001!"}}
	if s, want := m.encode("g"), "weir3 cp=3 cl=~x-changelog:5 et=~r-repartition:lt8fbmo0,lt8fbmo1!"; s != want {
		t.Fatalf("encoded %q, want %q", s, want)
	}
}

// TestCommitMetaFitsKafkaOrTheJobDoesNotStart: the metadata of a task that
// hears from every upstream task must fit Kafka's limit at its largest; a
// job where it cannot is refused before it starts, instead of having its
// commits refused (or its event time dropped) once running. The README
// states the figures this checks.
func TestCommitMetaFitsKafkaOrTheJobDoesNotStart(t *testing.T) {
	job := func(partitions int32, repartitions int) *Job {
		j := NewJob("fits")
		for i := range repartitions {
			j.addInternalSource(fmt.Sprintf("by-key-%d-repartition", i), 0, 1, "src", nil)
		}
		j.AddStatefulOperator("counts", 1)
		j.AddStatefulOperator("totals", 1)
		j.stages = 2
		j.resolveInternalTopics("orders-enrichment")
		j.partitions = partitions
		return j
	}
	for _, tc := range []struct {
		partitions   int32
		repartitions int
		fits         bool
	}{{64, 1, true}, {240, 1, true}, {256, 1, false}, {120, 2, true}, {128, 2, false}} {
		err := job(tc.partitions, tc.repartitions).checkCommitMetaFits("orders-enrichment")
		if tc.fits && err != nil {
			t.Errorf("%d partitions, %d repartition topics: %v", tc.partitions, tc.repartitions, err)
		}
		if !tc.fits && (!errors.Is(err, ErrTopology) || !strings.Contains(err.Error(), "4096-byte limit")) {
			t.Errorf("%d partitions, %d repartition topics: %v, want an ErrTopology naming the limit", tc.partitions, tc.repartitions, err)
		}
	}
}

func TestConfigGuarantee(t *testing.T) {
	for _, tc := range []struct {
		opts []Opt
		want string
	}{
		{[]Opt{WithGuarantee("twice")}, `guarantee "twice"`},
		{[]Opt{WithIsolation("dirty")}, `isolation "dirty"`},
		{[]Opt{WithCheckpointInterval(20 * time.Second)}, "must exceed the checkpoint interval"},
		{[]Opt{WithReplicaID("a b")}, "whitespace"},
	} {
		j := NewJob("g", tc.opts...)
		if err := j.cfg.validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: want an error naming %q", err, tc.want)
		}
	}
	j := NewJob("alo", WithGuarantee(AtLeastOnce), WithCheckpointInterval(20*time.Second))
	if err := j.cfg.validate(); err != nil {
		t.Errorf("at least once has no transaction to time out: %v", err)
	}
}

func TestOriginRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		in        string
		topic     string
		partition int32
		cp        int64
		bad       bool
	}{
		{in: "clicks:3@17", topic: "clicks", partition: 3, cp: 17},
		{in: "a:b:c:0@0", topic: "a:b:c", partition: 0, cp: 0},
		{in: "t@email.com:2@5", topic: "t@email.com", partition: 2, cp: 5},
		{in: "clicks:3", bad: true},
		{in: "clicks@3", bad: true},
		{in: "clicks:x@3", bad: true},
		{in: "", bad: true},
	} {
		topic, p, cp, err := ParseOrigin([]byte(tc.in))
		if tc.bad != (err != nil) || (!tc.bad && (topic != tc.topic || p != tc.partition || cp != tc.cp)) {
			t.Errorf("ParseOrigin(%q) = %q %d %d %v", tc.in, topic, p, cp, err)
		}
	}
}
