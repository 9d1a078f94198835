package main

// weir offsets: describe a job's committed offsets, and rewind them with
// the job's state following (reprocessing).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/engine"
)

func newOffsetsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "offsets",
		Short: "Describe a job's committed offsets, and rewind them with its state (reprocessing)",
		Long: `A Weir job commits, per input partition, the offset of the next record to
process, and in the offset's metadata the checkpoint its state matches.
describe shows them; reset moves them (to a time, the start, the end, an
offset, or by a shift) and resets the job's state to match: the state
starts empty at the new offsets, not from the future.`,
	}
	cmd.AddCommand(newOffsetsDescribeCmd(), newOffsetsResetCmd())
	return cmd
}

type offsetsFlags struct {
	dlqFlags
	group  string
	output string
}

func (f *offsetsFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringSliceVar(&f.brokers, "brokers", nil, "seed brokers, host:port, comma-separated or repeated (default $WEIR_BROKERS, else "+defaultBroker+")")
	fl.StringVar(&f.group, "group", "", "the job's consumer group (WEIR_GROUP; required)")
	fl.StringVar(&f.output, "output", "table", "table or json")
	fl.DurationVar(&f.timeout, "timeout", time.Minute, "give up after this long")
}

func (f *offsetsFlags) check() error {
	if f.group == "" {
		return usageError{errors.New("--group is required")}
	}
	if f.output != "table" && f.output != "json" {
		return usageError{fmt.Errorf("--output %q: want table or json", f.output)}
	}
	return nil
}

// connect returns the command's context, bounded by --timeout, and a
// client of the brokers; done releases both.
func (f *offsetsFlags) connect(cmd *cobra.Command) (ctx context.Context, cl *kgo.Client, done func(), err error) {
	cl, err = kgo.NewClient(kafkaOpts(f.seeds())...)
	if err != nil {
		return nil, nil, nil, usageError{err}
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
	return ctx, cl, func() { cancel(); cl.Close() }, nil
}

// partitionRow is one input partition of a job.
type partitionRow struct {
	Topic      string `json:"topic"`
	Partition  int32  `json:"partition"`
	Internal   bool   `json:"internal"` // a repartition topic of the job
	Committed  int64  `json:"committed"`
	End        int64  `json:"end"`
	Lag        int64  `json:"lag"`
	Checkpoint int64  `json:"checkpoint"` // -1: no Weir checkpoint
	meta       string
}

// groupView is what describe shows of a job's group.
type groupView struct {
	Group      string         `json:"group"`
	State      string         `json:"state"`
	Members    []string       `json:"members"`
	Partitions []partitionRow `json:"partitions"`
	Changelogs []string       `json:"changelog_topics"`
	// At is when the offsets were read.
	At time.Time `json:"-"`
}

func isRepartition(topic, group string) bool {
	return strings.HasPrefix(topic, group+"-") && strings.HasSuffix(topic, "-repartition")
}

// loadGroup reads the group's members, committed offsets and internal
// topics. A group with neither members nor offsets is an error.
func loadGroup(ctx context.Context, adm *kadm.Client, group string) (groupView, error) {
	v := groupView{Group: group, Members: []string{}}
	gs, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return v, fmt.Errorf("describing group %s: %w", group, err)
	}
	g, ok := gs[group]
	if ok && errors.Is(g.Err, kerr.GroupIDNotFound) {
		return v, fmt.Errorf("group %s is unknown: the cluster has no such consumer group (is --group the job's WEIR_GROUP?)", group)
	}
	if ok && g.Err != nil {
		return v, fmt.Errorf("describing group %s: %w", group, g.Err)
	}
	v.State = g.State
	for _, m := range g.Members {
		name := m.MemberID
		if m.InstanceID != nil {
			name = *m.InstanceID
		}
		v.Members = append(v.Members, fmt.Sprintf("%s (client %s on %s)", name, m.ClientID, m.ClientHost))
	}
	slices.Sort(v.Members)
	v.At = time.Now()
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return v, fmt.Errorf("fetching the offsets of group %s: %w", group, err)
	}
	if err := offs.Error(); err != nil {
		return v, fmt.Errorf("fetching the offsets of group %s: %w", group, err)
	}
	topics := slices.Sorted(maps.Keys(offs))
	if len(topics) == 0 && len(v.Members) == 0 {
		return v, fmt.Errorf("group %s is unknown: it has no members and no committed offsets (is --group the job's WEIR_GROUP?)", group)
	}
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return v, fmt.Errorf("listing end offsets: %w", err)
	}
	for _, topic := range topics {
		for _, p := range slices.Sorted(maps.Keys(offs[topic])) {
			o := offs[topic][p]
			row := partitionRow{Topic: topic, Partition: p, Internal: isRepartition(topic, group), Committed: o.At, End: -1, Checkpoint: -1, meta: o.Metadata}
			if e, ok := ends.Lookup(topic, p); ok && e.Err == nil {
				row.End = e.Offset
				row.Lag = max(0, e.Offset-o.At)
			}
			if m, ok, err := engine.ParseCommitMetadata(o.Metadata, group); ok && err == nil {
				row.Checkpoint = m.Checkpoint
			}
			v.Partitions = append(v.Partitions, row)
		}
	}
	all, err := adm.ListTopics(ctx)
	if err != nil {
		return v, fmt.Errorf("listing topics: %w", err)
	}
	for _, name := range all.Names() {
		if strings.HasPrefix(name, group+"-") && strings.HasSuffix(name, "-changelog") {
			v.Changelogs = append(v.Changelogs, name)
		}
	}
	slices.Sort(v.Changelogs)
	return v, nil
}

func printGroup(w io.Writer, v groupView) {
	members := "none"
	if len(v.Members) > 0 {
		members = strings.Join(v.Members, ", ")
	}
	fmt.Fprintf(w, "group %s, %s, members: %s\n", v.Group, strings.ToLower(v.State), members)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tCOMMITTED\tEND\tLAG\tCHECKPOINT")
	for _, r := range v.Partitions {
		topic := r.Topic
		if r.Internal {
			topic += " (repartition)"
		}
		cp := "-"
		if r.Checkpoint >= 0 {
			cp = strconv.FormatInt(r.Checkpoint, 10)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\n", topic, r.Partition, r.Committed, r.End, r.Lag, cp)
	}
	_ = tw.Flush()
	if len(v.Changelogs) > 0 {
		fmt.Fprintf(w, "state changelogs: %s\n", strings.Join(v.Changelogs, ", "))
	}
}

func newOffsetsDescribeCmd() *cobra.Command {
	var f offsetsFlags
	cmd := &cobra.Command{
		Use:   "describe",
		Short: "Show a job's committed offsets, lag and checkpoints, and its group's live members",
		Example: `  weir offsets describe --brokers kafka:9092 --group clicks
  weir offsets describe --group clicks --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.check(); err != nil {
				return err
			}
			ctx, cl, done, err := f.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			v, err := loadGroup(ctx, kadm.NewClient(cl), f.group)
			if err != nil {
				return err
			}
			if f.output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(v)
			}
			printGroup(cmd.OutOrStdout(), v)
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

type resetFlags struct {
	offsetsFlags
	topics      []string
	toDatetime  string
	toEarliest  bool
	toLatest    bool
	toOffset    int64
	shiftBy     int64
	byDuration  time.Duration
	toSavepoint string
	emptyState  bool
	execute     bool
}

// planRow is one partition's move.
type planRow struct {
	Topic       string `json:"topic"`
	Partition   int32  `json:"partition"`
	Current     int64  `json:"current"`
	New         int64  `json:"new"`
	Reprocessed int64  `json:"records_to_reprocess"` // negative: skipped
}

// resetPlan is what reset does.
type resetPlan struct {
	Group      string    `json:"group"`
	Moves      []planRow `json:"moves"`
	Changelogs []string  `json:"changelog_topics_emptied"`
	Repartions []string  `json:"repartition_topics_skipped_to_end"`
	// Savepoint is the savepoint whose state, offsets and in-flight
	// records the reset restores; nil: the state starts empty.
	Savepoint *savepointMeta `json:"savepoint,omitempty"`
	// NoSavepoint says why a reset to a time found no savepoint to use.
	NoSavepoint string `json:"no_savepoint,omitempty"`
	Executed    bool   `json:"executed"`
}

func newOffsetsResetCmd() *cobra.Command {
	var f resetFlags
	cmd := &cobra.Command{
		Use:   "reset",
		Short: "Rewind (or move) a stopped job's offsets, its state following: a dry run unless --execute",
		Long: `reset moves the committed offsets of a job's input topics, with the flags of
Kafka's kafka-consumer-groups tool, and resets the job's state to match:
every key of its changelog topics gets a tombstone (Kafka refuses to delete
records of a compacted topic), its repartition topics' offsets move to
their end, the offsets' metadata says where the empty state stands and that
event time starts afresh, and every replica's local state store reads the
deletions at its next start. The restarted job computes
from the new offsets on empty state, as a job started there would; outputs
of the reprocessed range are written again to its sinks.

With --to-savepoint (weir savepoint), state, offsets and event time are
restored as the savepoint kept them instead, and the records it held
between stages are written to the repartition topics again; --to-datetime
does the same with the newest savepoint at or before that time, when there
is one (--empty-state: start empty all the same).

Without --execute it changes nothing and prints the plan. With it, it
refuses while the group has live members: stop every replica first.`,
		Example: `  weir offsets reset --group clicks --to-datetime 2026-12-04T12:00:00Z
  weir offsets reset --group clicks --to-datetime 2026-12-04T12:00:00Z --execute
  weir offsets reset --group clicks --topic clicks:0,1 --shift-by -1000 --execute
  weir offsets reset --group clicks --to-savepoint latest --execute`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.check(); err != nil {
				return err
			}
			modes := 0
			for _, set := range []string{"to-datetime", "to-earliest", "to-latest", "to-offset", "shift-by", "by-duration", "to-savepoint"} {
				if cmd.Flags().Changed(set) {
					modes++
				}
			}
			if modes != 1 {
				return usageError{errors.New("give exactly one of --to-datetime, --to-earliest, --to-latest, --to-offset, --shift-by, --by-duration, --to-savepoint")}
			}
			if f.toSavepoint != "" && len(f.topics) > 0 {
				return usageError{errors.New("--to-savepoint restores the whole job: it takes no --topic")}
			}
			var at time.Time
			if cmd.Flags().Changed("to-datetime") {
				var err error
				if at, err = parseDatetime(f.toDatetime); err != nil {
					return usageError{err}
				}
			}
			if cmd.Flags().Changed("by-duration") {
				at = time.Now().Add(-f.byDuration)
			}
			ctx, cl, done, err := f.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			adm := kadm.NewClient(cl)
			v, err := loadGroup(ctx, adm, f.group)
			if err != nil {
				return err
			}
			var plan resetPlan
			if f.toSavepoint != "" {
				sp, err := findSavepoint(ctx, f.seeds(), f.group, f.toSavepoint)
				if err != nil {
					return err
				}
				if plan, err = planSavepointReset(v, sp); err != nil {
					return err
				}
			} else {
				sel, err := selectPartitions(v, f.topics)
				if err != nil {
					return err
				}
				if plan, err = planReset(ctx, adm, v, sel, &f, cmd, at); err != nil {
					return err
				}
				if !at.IsZero() && !f.emptyState {
					if plan, err = withSavepointBefore(ctx, f.seeds(), v, plan, len(f.topics) > 0); err != nil {
						return err
					}
				}
			}
			if f.execute {
				if len(v.Members) > 0 {
					return fmt.Errorf("group %s has live members: %s; stop every replica of the job first", f.group, strings.Join(v.Members, ", "))
				}
				exec := executeReset
				if plan.Savepoint != nil {
					exec = executeSavepointReset
				}
				if err := exec(ctx, f.seeds(), adm, v, plan); err != nil {
					return err
				}
				plan.Executed = true
			}
			if f.output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(plan)
			}
			printPlan(cmd.OutOrStdout(), plan)
			return nil
		},
	}
	f.register(cmd)
	fl := cmd.Flags()
	fl.StringSliceVar(&f.topics, "topic", nil, "an input topic to move, T or T:0,1,2 (repeatable; default: every input topic of the group)")
	fl.StringVar(&f.toDatetime, "to-datetime", "", "to the first record at or after this time (RFC 3339, or YYYY-MM-DDTHH:mm:SS[.sss] in UTC)")
	fl.BoolVar(&f.toEarliest, "to-earliest", false, "to the earliest retained record")
	fl.BoolVar(&f.toLatest, "to-latest", false, "to the end (skip what is there)")
	fl.Int64Var(&f.toOffset, "to-offset", 0, "to this offset")
	fl.Int64Var(&f.shiftBy, "shift-by", 0, "by this many records (negative: back)")
	fl.DurationVar(&f.byDuration, "by-duration", 0, "to this long before now")
	fl.StringVar(&f.toSavepoint, "to-savepoint", "", "to a savepoint (its id, or latest): state, offsets and event time as it kept them (see weir savepoint)")
	fl.BoolVar(&f.emptyState, "empty-state", false, "with --to-datetime or --by-duration: start on empty state even if a savepoint before that time exists")
	fl.BoolVar(&f.execute, "execute", false, "apply the plan (default: a dry run that changes nothing)")
	return cmd
}

func parseDatetime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.000", "2006-01-02T15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--to-datetime %q: want RFC 3339 (2026-12-04T12:00:00Z) or YYYY-MM-DDTHH:mm:SS[.sss] in UTC", s)
}

// selectPartitions returns the input partitions to move: the non-internal
// committed partitions of the group, narrowed by --topic.
func selectPartitions(v groupView, topics []string) ([]partitionRow, error) {
	var inputs []partitionRow
	for _, r := range v.Partitions {
		if !r.Internal {
			inputs = append(inputs, r)
		}
	}
	if len(topics) == 0 {
		return inputs, nil
	}
	var sel []partitionRow
	for _, spec := range topics {
		topic, parts, hasParts := strings.Cut(spec, ":")
		var want []int32
		if hasParts {
			for p := range strings.SplitSeq(parts, ",") {
				n, err := strconv.ParseInt(p, 10, 32)
				if err != nil {
					return nil, usageError{fmt.Errorf("--topic %q: partition %q is not a number", spec, p)}
				}
				want = append(want, int32(n))
			}
		}
		found := map[int32]bool{}
		for _, r := range inputs {
			if r.Topic == topic && (!hasParts || slices.Contains(want, r.Partition)) {
				sel = append(sel, r)
				found[r.Partition] = true
			}
		}
		if !slices.ContainsFunc(inputs, func(r partitionRow) bool { return r.Topic == topic }) {
			return nil, fmt.Errorf("--topic %q: group %s has no committed offsets for that topic (its input topics: %s)", spec, v.Group, inputTopics(inputs))
		}
		for _, p := range want {
			if !found[p] {
				return nil, fmt.Errorf("--topic %q: group %s has no committed offset for partition %d of %s", spec, v.Group, p, topic)
			}
		}
	}
	return sel, nil
}

func inputTopics(rows []partitionRow) string {
	var ts []string
	for _, r := range rows {
		if !slices.Contains(ts, r.Topic) {
			ts = append(ts, r.Topic)
		}
	}
	return strings.Join(ts, ", ")
}

// planReset computes each selected partition's new offset.
func planReset(ctx context.Context, adm *kadm.Client, v groupView, sel []partitionRow, f *resetFlags, cmd *cobra.Command, at time.Time) (resetPlan, error) {
	plan := resetPlan{Group: v.Group, Changelogs: v.Changelogs}
	for _, r := range v.Partitions {
		if r.Internal && !slices.Contains(plan.Repartions, r.Topic) {
			plan.Repartions = append(plan.Repartions, r.Topic)
		}
	}
	topics := slices.Compact(slices.Sorted(func(yield func(string) bool) {
		for _, r := range sel {
			if !yield(r.Topic) {
				return
			}
		}
	}))
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		return plan, fmt.Errorf("listing start offsets: %w", err)
	}
	var byTime kadm.ListedOffsets
	if !at.IsZero() {
		if byTime, err = adm.ListOffsetsAfterMilli(ctx, at.UnixMilli(), topics...); err != nil {
			return plan, fmt.Errorf("listing offsets at %s: %w", at.Format(time.RFC3339), err)
		}
	}
	var errs []error
	for _, r := range sel {
		start := int64(0)
		if o, ok := starts.Lookup(r.Topic, r.Partition); ok && o.Err == nil {
			start = o.Offset
		}
		clamp := func(n int64) int64 { return min(max(n, start), r.End) }
		var n int64
		switch {
		case !at.IsZero():
			o, ok := byTime.Lookup(r.Topic, r.Partition)
			if !ok || o.Err != nil {
				errs = append(errs, fmt.Errorf("%s/%d: no offset for %s", r.Topic, r.Partition, at.Format(time.RFC3339)))
				continue
			}
			if start > 0 && o.Offset == start && o.Timestamp > at.UnixMilli() {
				errs = append(errs, fmt.Errorf("%s/%d: %s is before the earliest retained record (%s, offset %d): the records before it were deleted",
					r.Topic, r.Partition, at.UTC().Format(time.RFC3339), time.UnixMilli(o.Timestamp).UTC().Format(time.RFC3339), start))
				continue
			}
			n = o.Offset
		case cmd.Flags().Changed("to-earliest"):
			n = start
		case cmd.Flags().Changed("to-latest"):
			n = r.End
		case cmd.Flags().Changed("to-offset"):
			if f.toOffset < start || f.toOffset > r.End {
				errs = append(errs, fmt.Errorf("%s/%d: offset %d is outside the retained records [%d, %d]", r.Topic, r.Partition, f.toOffset, start, r.End))
				continue
			}
			n = f.toOffset
		case cmd.Flags().Changed("shift-by"):
			n = clamp(r.Committed + f.shiftBy)
		}
		plan.Moves = append(plan.Moves, planRow{Topic: r.Topic, Partition: r.Partition, Current: r.Committed, New: n, Reprocessed: r.Committed - n})
	}
	if len(errs) > 0 {
		return plan, fmt.Errorf("nothing changed: %w", errors.Join(errs...))
	}
	return plan, nil
}

// executeReset empties the job's state and commits the new offsets with
// metadata saying where the empty state stands. A changelog is compacted,
// and Kafka refuses to delete records of a compacted topic, so its state
// is emptied the way a job deletes a key: a tombstone for every key it
// holds. A replica's local store then catches up to empty too (or, behind
// by longer than the tombstones are kept, restores in full, as any store
// that far behind does). Repartition topics keep their records and their
// offsets move to the end, so the stages downstream start with what the
// rewound stages write.
func executeReset(ctx context.Context, seeds []string, adm *kadm.Client, v groupView, plan resetPlan) error {
	ends := kadm.ListedOffsets{}
	if len(v.Changelogs) > 0 {
		if err := tombstoneChangelogs(ctx, seeds, adm, v.Changelogs); err != nil {
			return fmt.Errorf("emptying the job's state (nothing committed yet; run the reset again): %w", err)
		}
	}
	if internal := append(slices.Clone(v.Changelogs), plan.Repartions...); len(internal) > 0 {
		var err error
		if ends, err = adm.ListEndOffsets(ctx, internal...); err == nil {
			err = ends.Error()
		}
		if err != nil {
			return fmt.Errorf("listing the internal topics' ends: %w", err)
		}
	}
	// The state of every task starts empty where the changelogs now end.
	meta := func(r partitionRow) string {
		m, ok, err := engine.ParseCommitMetadata(r.meta, v.Group)
		cl := map[string]int64{}
		if ok && err == nil {
			for topic := range m.Changelog {
				if o, ok := ends.Lookup(topic, r.Partition); ok {
					cl[topic] = o.Offset
				}
			}
		}
		return engine.CommitMetadata{Checkpoint: m.Checkpoint + 1, Changelog: cl}.Encode(v.Group)
	}
	commit := kadm.Offsets{}
	for _, r := range v.Partitions {
		o := kadm.Offset{Topic: r.Topic, Partition: r.Partition, At: r.Committed, LeaderEpoch: -1, Metadata: meta(r)}
		if r.Internal {
			if e, ok := ends.Lookup(r.Topic, r.Partition); ok {
				o.At = e.Offset
			}
		}
		for _, mv := range plan.Moves {
			if mv.Topic == r.Topic && mv.Partition == r.Partition {
				o.At = mv.New
			}
		}
		commit.Add(o)
	}
	resp, err := adm.CommitOffsets(ctx, v.Group, commit)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return fmt.Errorf("committing the new offsets (the job's state was emptied: run the reset again): %w", err)
	}
	return nil
}

// liveChangelogKeys returns, per changelog partition, the keys the
// changelog topics hold a value for (their committed records, read to
// their end).
func liveChangelogKeys(ctx context.Context, seeds []string, adm *kadm.Client, topics []string) (map[tp]map[string]bool, error) {
	ends, err := adm.ListCommittedOffsets(ctx, topics...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("listing the changelogs' ends: %w", err)
	}
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("listing the changelogs' starts: %w", err)
	}
	ranges := map[tp][2]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		s, _ := starts.Lookup(o.Topic, o.Partition)
		ranges[tp{o.Topic, o.Partition}] = [2]int64{s.Offset, o.Offset}
	})
	live := map[tp]map[string]bool{}
	err = readRanges(ctx, seeds, ranges, func(r *kgo.Record) {
		k := tp{r.Topic, r.Partition}
		if live[k] == nil {
			live[k] = map[string]bool{}
		}
		if r.Value == nil {
			delete(live[k], string(r.Key))
		} else {
			live[k][string(r.Key)] = true
		}
	})
	return live, err
}

// tombstoneChangelogs writes a tombstone for every key the changelog
// topics hold.
func tombstoneChangelogs(ctx context.Context, seeds []string, adm *kadm.Client, topics []string) error {
	live, err := liveChangelogKeys(ctx, seeds, adm, topics)
	if err != nil {
		return err
	}
	var tombstones []*kgo.Record
	for k, keys := range live {
		for key := range keys {
			tombstones = append(tombstones, &kgo.Record{Topic: k.topic, Partition: k.p, Key: []byte(key)})
		}
	}
	return produceAll(ctx, seeds, tombstones)
}

// produceAll writes recs to the partitions they name.
func produceAll(ctx context.Context, seeds []string, recs []*kgo.Record) error {
	if len(recs) == 0 {
		return nil
	}
	pcl, err := kgo.NewClient(append(kafkaOpts(seeds), kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		return err
	}
	defer pcl.Close()
	return pcl.ProduceSync(ctx, recs...).FirstErr()
}

func printPlan(w io.Writer, plan resetPlan) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tCURRENT\tNEW\tTO REPROCESS")
	var total int64
	for _, m := range plan.Moves {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\n", m.Topic, m.Partition, m.Current, m.New, m.Reprocessed)
		total += m.Reprocessed
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "%d records to reprocess in all.\n", total)
	if sp := plan.Savepoint; sp != nil {
		fmt.Fprintf(w, "State: as savepoint %d kept it (taken %s), with its offsets and event time:\n", sp.ID, sp.Created.UTC().Format(time.RFC3339))
		fmt.Fprintf(w, "  the changelog topics hold its %d keys (every other key deleted): %s\n", sp.StateRecords, strings.Join(plan.Changelogs, ", "))
		if len(plan.Repartions) > 0 {
			fmt.Fprintf(w, "  repartition topics' offsets moved to their end, where its %d in-flight records are written again: %s\n", sp.InFlight, strings.Join(plan.Repartions, ", "))
		}
		fmt.Fprintln(w, "  every replica's local state store reads the changes at its next start.")
		fmt.Fprintln(w, "Outputs: the job's sinks receive the results after the savepoint again; run the job with WEIR_OUTPUT_SUFFIX=-v2 to write new versions of its output topics instead.")
		if plan.Executed {
			fmt.Fprintf(w, "Done: group %s reset to savepoint %d. Start the job again.\n", plan.Group, sp.ID)
		} else {
			fmt.Fprintln(w, "Dry run: nothing changed. Add --execute to apply.")
		}
		return
	}
	if plan.NoSavepoint != "" {
		fmt.Fprintf(w, "No savepoint used: %s.\n", plan.NoSavepoint)
	}
	fmt.Fprintln(w, "State: the job's state starts empty at the new offsets, and event time afresh:")
	if len(plan.Changelogs) > 0 {
		fmt.Fprintf(w, "  every key of the changelog topics deleted (a tombstone each): %s\n", strings.Join(plan.Changelogs, ", "))
	}
	if len(plan.Repartions) > 0 {
		fmt.Fprintf(w, "  repartition topics' offsets moved to their end: %s\n", strings.Join(plan.Repartions, ", "))
	}
	fmt.Fprintln(w, "  every replica's local state store reads the deletions at its next start.")
	fmt.Fprintln(w, "Outputs: the job's sinks receive the reprocessed range's results again; run the job with WEIR_OUTPUT_SUFFIX=-v2 to write new versions of its output topics instead.")
	if plan.Executed {
		fmt.Fprintf(w, "Done: group %s reset. Start the job again.\n", plan.Group)
	} else {
		fmt.Fprintln(w, "Dry run: nothing changed. Add --execute to apply.")
	}
}
