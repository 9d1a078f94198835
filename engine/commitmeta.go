package engine

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// commitMeta is what a checkpoint writes into the offset-commit metadata of
// each input partition of a task, in the same transaction as the offsets:
// the checkpoint's id and, per changelog topic of the task, the offset
// after the last changelog record the checkpoint's state includes.
//
// It is how a task that starts finds its state in Kafka: the committed
// offsets say where to read the input from, and this says up to where
// the changelog holds the matching state. A restarted replica whose local
// store is behind (it crashed between the Kafka commit and the Pebble
// commit, or the task ran elsewhere since) restores the changelog from its
// local position up to exactly these offsets; records past them belong to
// transactions that aborted or, at-least-once, to work that was never
// committed and will be redone.
//
// It also carries the task's event time by input topic (see
// Task.saveEventTime), so a restarted task resumes its watermarks where
// the committed offsets leave its inputs.
type commitMeta struct {
	cp        int64
	changelog map[string]int64
	eventTime map[string]string
}

// commitMetaPrefix starts every metadata string Weir writes; anything else
// (an empty string, another tool's) is not Weir's.
const commitMetaPrefix = "weir1 "

// maxCommitMeta is Kafka's default offset.metadata.max.bytes.
const maxCommitMeta = 4096

// encode formats m as "weir1 cp=<id> cl=<topic>:<offset>,...
// et=<topic>:<state>;...", topics sorted. Kafka topic names have none of
// the separators. If that is longer than Kafka takes by default, the event
// time is left out (a restart then waits for its inputs to tell it again).
func (m commitMeta) encode() string {
	if s := m.encodeWith(true); len(s) <= maxCommitMeta {
		return s
	}
	return m.encodeWith(false)
}

func (m commitMeta) encodeWith(eventTime bool) string {
	var b strings.Builder
	b.WriteString(commitMetaPrefix)
	b.WriteString("cp=")
	b.WriteString(strconv.FormatInt(m.cp, 10))
	if len(m.changelog) > 0 {
		b.WriteString(" cl=")
		for i, topic := range slices.Sorted(maps.Keys(m.changelog)) {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(topic)
			b.WriteByte(':')
			b.WriteString(strconv.FormatInt(m.changelog[topic], 10))
		}
	}
	if eventTime && len(m.eventTime) > 0 {
		b.WriteString(" et=")
		for i, topic := range slices.Sorted(maps.Keys(m.eventTime)) {
			if i > 0 {
				b.WriteByte(';')
			}
			b.WriteString(topic)
			b.WriteByte(':')
			b.WriteString(m.eventTime[topic])
		}
	}
	return b.String()
}

// parseCommitMeta parses what encode wrote. ok is false for metadata that
// is not Weir's; err is set for Weir metadata that does not parse.
func parseCommitMeta(s string) (m commitMeta, ok bool, err error) {
	rest, ok := strings.CutPrefix(s, commitMetaPrefix)
	if !ok {
		return commitMeta{}, false, nil
	}
	bad := func(what string) error { return fmt.Errorf("commit metadata %q: %s", s, what) }
	m.changelog = map[string]int64{}
	m.eventTime = map[string]string{}
	for field := range strings.FieldsSeq(rest) {
		k, v, _ := strings.Cut(field, "=")
		switch k {
		case "cp":
			if m.cp, err = strconv.ParseInt(v, 10, 64); err != nil {
				return commitMeta{}, true, bad("checkpoint id")
			}
		case "cl":
			for entry := range strings.SplitSeq(v, ",") {
				i := strings.LastIndexByte(entry, ':')
				if i <= 0 {
					return commitMeta{}, true, bad("changelog entry " + entry)
				}
				off, err := strconv.ParseInt(entry[i+1:], 10, 64)
				if err != nil || off < 0 {
					return commitMeta{}, true, bad("changelog offset " + entry)
				}
				m.changelog[entry[:i]] = off
			}
		case "et":
			for entry := range strings.SplitSeq(v, ";") {
				topic, state, ok := strings.Cut(entry, ":")
				if !ok || topic == "" {
					return commitMeta{}, true, bad("event time entry " + entry)
				}
				m.eventTime[topic] = state
			}
		}
	}
	return m, true, nil
}
