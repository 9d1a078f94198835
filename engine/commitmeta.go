package engine

import (
	"fmt"
	"maps"
	"math"
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
// (an empty string, another tool's) is not Weir's. Earlier formats are
// still read: commitMetaPrefixV1 (decimal numbers, whole topic names) and
// commitMetaPrefixV2, which wrote the task's own watermark under "~task",
// the short form of the topic <group>-task, and so read it back as that
// topic: a restarted task lost its watermark. V3 writes it under
// taskWatermarkKey, which no topic name can be.
const (
	commitMetaPrefix   = "weir3 "
	commitMetaPrefixV2 = "weir2 "
	commitMetaPrefixV1 = "weir1 "
	v2TaskWatermarkKey = "~task"
)

// maxCommitMeta is Kafka's default offset.metadata.max.bytes. A job whose
// metadata could grow past it does not start (see Job.checkCommitMetaFits):
// the broker would refuse every commit.
const maxCommitMeta = 4096

// encode formats m as "weir2 cp=<id> cl=<topic>:<offset>,...
// et=<topic>:<state>;...", topics sorted. Kafka topic names have none of
// the separators. To fit more upstream tasks and changelogs into Kafka's
// limit, a topic named <group>-<rest> is written ~<rest> ('~' is not
// allowed in topic names), and the numbers of the event-time states are
// written in base 36.
func (m commitMeta) encode(group string) string {
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
			b.WriteString(shortTopic(topic, group))
			b.WriteByte(':')
			b.WriteString(strconv.FormatInt(m.changelog[topic], 10))
		}
	}
	if len(m.eventTime) > 0 {
		b.WriteString(" et=")
		for i, topic := range slices.Sorted(maps.Keys(m.eventTime)) {
			if i > 0 {
				b.WriteByte(';')
			}
			b.WriteString(shortTopic(topic, group))
			b.WriteByte(':')
			b.WriteString(rebaseNumbers(m.eventTime[topic], 10, 36))
		}
	}
	return b.String()
}

// shortTopic writes topic <group>-<rest> as ~<rest>; longTopic reads it.
func shortTopic(topic, group string) string {
	if rest, ok := strings.CutPrefix(topic, group+"-"); ok && group != "" {
		return "~" + rest
	}
	return topic
}

func longTopic(s, group string) string {
	if rest, ok := strings.CutPrefix(s, "~"); ok {
		return group + "-" + rest
	}
	return s
}

// rebaseNumbers rewrites every integer in an event-time state (integers,
// each maybe followed by '!', separated by ',') from base from to base to.
// A token that is not an integer is left as it is, for restoreEventTime
// to reject.
func rebaseNumbers(s string, from, to int) string {
	var b strings.Builder
	for i, tok := range strings.Split(s, ",") {
		if i > 0 {
			b.WriteByte(',')
		}
		num, idle := strings.CutSuffix(tok, "!")
		if v, err := strconv.ParseInt(num, from, 64); err == nil {
			num = strconv.FormatInt(v, to)
		}
		b.WriteString(num)
		if idle {
			b.WriteByte('!')
		}
	}
	return b.String()
}

// parseCommitMeta parses what encode wrote for a job in group. ok is false
// for metadata that is not Weir's; err is set for Weir metadata that does
// not parse.
func parseCommitMeta(s, group string) (m commitMeta, ok bool, err error) {
	version := 3
	rest, ok := strings.CutPrefix(s, commitMetaPrefix)
	if !ok {
		if rest, ok = strings.CutPrefix(s, commitMetaPrefixV2); ok {
			version = 2
		} else if rest, ok = strings.CutPrefix(s, commitMetaPrefixV1); ok {
			version = 1
		} else {
			return commitMeta{}, false, nil
		}
	}
	v1 := version == 1
	bad := func(what string) error { return fmt.Errorf("commit metadata %q: %s", s, what) }
	topic := func(t string) string {
		switch {
		case v1:
			return t
		case version == 2 && t == v2TaskWatermarkKey:
			return taskWatermarkKey
		}
		return longTopic(t, group)
	}
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
				m.changelog[topic(entry[:i])] = off
			}
		case "et":
			for entry := range strings.SplitSeq(v, ";") {
				t, state, ok := strings.Cut(entry, ":")
				if !ok || t == "" {
					return commitMeta{}, true, bad("event time entry " + entry)
				}
				if !v1 {
					state = rebaseNumbers(state, 36, 10)
				}
				m.eventTime[topic(t)] = state
			}
		}
	}
	return m, true, nil
}

// checkCommitMetaFits checks that the metadata of every stage's tasks fits
// Kafka's limit at its largest: the highest checkpoint id and offsets, an
// event-time state for every input topic, every upstream task's watermark
// the lowest there is. What grows is the number of upstream tasks a stage
// reading repartition topics hears from (about 16 bytes each) and of
// changelogs (the operator's name and 20 bytes each).
func (j *Job) checkCommitMetaFits(group string) error {
	const widest = math.MinInt64 // the longest number, in any base
	for stage := range j.stages {
		m := commitMeta{cp: math.MaxInt64, changelog: map[string]int64{}, eventTime: map[string]string{}}
		for _, topic := range j.taskChangelogs(stage) {
			m.changelog[topic] = math.MaxInt64
		}
		m.eventTime[taskWatermarkKey] = strconv.FormatInt(widest, 10)
		for _, s := range j.sources {
			if s.stage != stage {
				continue
			}
			if s.internal == nil {
				m.eventTime[s.topic] = strconv.FormatInt(widest, 10)
				continue
			}
			ups := make([]string, j.partitions)
			for i := range ups {
				ups[i] = strconv.FormatInt(widest, 10) + "!"
			}
			m.eventTime[s.internal.name] = strings.Join(ups, ",")
		}
		if n := len(m.encode(group)); n > maxCommitMeta {
			return fmt.Errorf("%w: the checkpoint metadata of stage %d can reach %d bytes, over Kafka's %d-byte limit on offset metadata: "+
				"it carries the watermark of each of the %d upstream tasks of each repartition topic it reads and the position of each of its %d changelogs; "+
				"use fewer partitions, fewer operators in that stage or a shorter group name",
				ErrTopology, stage, n, maxCommitMeta, j.partitions, len(m.changelog))
		}
	}
	return nil
}

// CommitMetadata is what a Weir job writes into the metadata of each
// committed input offset (see commitMeta): for tools that read or rewrite
// a job's offsets from outside, as weir offsets does.
type CommitMetadata struct {
	// Checkpoint is the id of the checkpoint that committed the offset.
	Checkpoint int64
	// Changelog is, per changelog topic of the partition's task, the
	// offset after the last changelog record the checkpoint's state
	// includes: where a restore of the task's state stops.
	Changelog map[string]int64
	// EventTime is the task's event-time state by input topic; nil starts
	// event time afresh.
	EventTime map[string]string
}

// ParseCommitMetadata parses the metadata of an offset committed by a job
// in group. ok is false for metadata that is not Weir's (another tool's,
// or none).
func ParseCommitMetadata(s, group string) (m CommitMetadata, ok bool, err error) {
	cm, ok, err := parseCommitMeta(s, group)
	if !ok || err != nil {
		return CommitMetadata{}, ok, err
	}
	return CommitMetadata{Checkpoint: cm.cp, Changelog: cm.changelog, EventTime: cm.eventTime}, true, nil
}

// Encode formats m as a job in group writes it.
func (m CommitMetadata) Encode(group string) string {
	return commitMeta{cp: m.Checkpoint, changelog: m.Changelog, eventTime: m.EventTime}.encode(group)
}
