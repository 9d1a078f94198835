package engine

import (
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
		}},
	} {
		s := m.encode()
		got, ok, err := parseCommitMeta(s)
		if err != nil || !ok {
			t.Fatalf("parse(%q): ok %v, %v", s, ok, err)
		}
		if got.cp != m.cp || !maps.Equal(got.changelog, m.changelog) || !maps.Equal(got.eventTime, m.eventTime) {
			t.Errorf("round trip of %+v gave %+v (via %q)", m, got, s)
		}
	}
}

func TestCommitMetaNotWeirs(t *testing.T) {
	for _, s := range []string{"", "kgo-member-1234", "weir2 cp=1"} {
		if _, ok, err := parseCommitMeta(s); ok || err != nil {
			t.Errorf("parse(%q): ok %v, err %v; want not Weir's", s, ok, err)
		}
	}
}

func TestCommitMetaCorrupt(t *testing.T) {
	for _, s := range []string{"weir1 cp=x", "weir1 cp=1 cl=topic", "weir1 cp=1 cl=t:-3", "weir1 cp=1 et=:5"} {
		if _, ok, err := parseCommitMeta(s); !ok || err == nil {
			t.Errorf("parse(%q): ok %v, err %v; want a Weir parse error", s, ok, err)
		}
	}
}

// TestCommitMetaFitsKafka: when event time would push the metadata past
// Kafka's default limit, it is left out, and the changelog positions,
// which correctness needs, stay.
func TestCommitMetaFitsKafka(t *testing.T) {
	up := strings.Repeat("1709283600000,", 400)
	m := commitMeta{cp: 3, changelog: map[string]int64{"g-x-changelog": 5}, eventTime: map[string]string{"g-r-repartition": up[:len(up)-1]}}
	s := m.encode()
	if len(s) > maxCommitMeta {
		t.Fatalf("metadata of %d bytes, over Kafka's %d", len(s), maxCommitMeta)
	}
	got, _, err := parseCommitMeta(s)
	if err != nil || got.changelog["g-x-changelog"] != 5 || len(got.eventTime) != 0 {
		t.Fatalf("got %+v, %v", got, err)
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
