package main

// weir savepoint: consistent copies of a stopped job's committed state,
// offsets and in-flight records, kept in Kafka, for offsets reset to
// restore (see resetToSavepoint).

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
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/verify"
)

// A savepoint lives in two topics of the job, each of one partition, with
// deletion by time and size turned off: <group>-savepoints holds one
// record per savepoint (savepointMeta, JSON), <group>-savepoint-data their
// records, each savepoint's in one range. Both are written in one Kafka
// transaction, so a savepoint is whole or absent. weir savepoint prune
// deletes the oldest (Kafka deletes a log's records from its start).
func savepointTopic(group string) string     { return group + "-savepoints" }
func savepointDataTopic(group string) string { return group + "-savepoint-data" }

// Headers of a savepoint's data records.
const (
	spKind      = "weir.savepoint.kind" // "state" or "in-flight"
	spTopic     = "weir.savepoint.topic"
	spPartition = "weir.savepoint.partition"
)

// savepointMeta describes one savepoint.
type savepointMeta struct {
	ID      int64         `json:"id"`
	Group   string        `json:"group"`
	Created time.Time     `json:"created"`
	Offsets []savedOffset `json:"offsets"`
	// DataFrom and DataTo bound the savepoint's records in the data topic.
	DataFrom int64 `json:"data_from"`
	DataTo   int64 `json:"data_to"`
	// StateRecords are the keys of the changelogs, InFlight the records
	// the repartition topics held past their committed offsets.
	StateRecords int   `json:"state_records"`
	StateBytes   int64 `json:"state_bytes"`
	InFlight     int   `json:"in_flight_records"`
	// Running says the job had live members when the savepoint was taken.
	Running bool `json:"running,omitempty"`
	// offset is the savepoint's record in the index topic.
	offset int64
}

// savedOffset is a committed offset of the job at its savepoint, with the
// checkpoint metadata that says where its task's state and event time
// stood.
type savedOffset struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Metadata  string `json:"metadata"`
	Internal  bool   `json:"internal,omitempty"`
}

func newSavepointCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "savepoint",
		Short: "Keep consistent copies of a job's state and offsets in Kafka, to rewind to",
		Long: `A savepoint is a copy of a job's committed state (every key of its
changelog topics, as of the checkpoint its offsets' metadata names), its
committed offsets with that metadata (event time included), and the records
its repartition topics held between stages. It is kept in Kafka, in the
topics <group>-savepoints and <group>-savepoint-data, written in one
transaction: whole or absent.

weir offsets reset --to-savepoint ID restores state, offsets and event time
together, so the rewound job reproduces exactly what it computed after the
savepoint; reset --to-datetime uses the latest savepoint at or before that
time, when there is one, and replays from its offsets.

A savepoint may be taken while the job runs (a Kubernetes CronJob running
"weir savepoint create" makes them periodic: deploy/kubernetes). It is
the job as of one read of the group's committed offsets: each task's state
up to the changelog positions its offsets name, and of the records between
stages, those written in checkpoints those offsets include (each carries
its writer's checkpoint, engine.HeaderOrigin). For an at-least-once job a
savepoint of a running job may hold a few records twice, as a restart
would.`,
	}
	cmd.AddCommand(newSavepointCreateCmd(), newSavepointListCmd(), newSavepointPruneCmd())
	return cmd
}

func newSavepointCreateCmd() *cobra.Command {
	var (
		f    offsetsFlags
		keep int
	)
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Take a savepoint of a job, running or stopped",
		Example: `  weir savepoint create --brokers kafka:9092 --group clicks
  weir savepoint create --group clicks --keep 24   # hourly, from a CronJob: a day of them`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.check(); err != nil {
				return err
			}
			if keep < 0 {
				return usageError{fmt.Errorf("--keep %d: want 0 (keep all) or more", keep)}
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
			if testHookOffsetsRead != nil {
				testHookOffsetsRead(v)
			}
			sp, err := createSavepoint(ctx, f.seeds(), adm, v)
			if err != nil {
				return err
			}
			if f.output == "json" {
				if keep > 0 {
					if err := pruneSavepoints(ctx, io.Discard, f.seeds(), adm, f.group, keep); err != nil {
						return err
					}
				}
				return writeJSON(cmd.OutOrStdout(), sp)
			}
			running := ""
			if sp.Running {
				running = " (the job was running: as of its offsets at " + sp.Created.Format(time.RFC3339) + ")"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "savepoint %d of group %s%s: %d state records (%d bytes) and %d in-flight records, at these offsets:\n",
				sp.ID, sp.Group, running, sp.StateRecords, sp.StateBytes, sp.InFlight)
			printSavedOffsets(cmd.OutOrStdout(), sp)
			fmt.Fprintf(cmd.OutOrStdout(), "Rewind to it: weir offsets reset --group %s --to-savepoint %d --execute\n", sp.Group, sp.ID)
			if keep > 0 {
				return pruneSavepoints(ctx, cmd.OutOrStdout(), f.seeds(), adm, f.group, keep)
			}
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().IntVar(&keep, "keep", 0, "then delete all but the newest N savepoints (0: keep all)")
	return cmd
}

func newSavepointListCmd() *cobra.Command {
	var f offsetsFlags
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List a job's savepoints",
		Example: `  weir savepoint list --group clicks`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.check(); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
			defer cancel()
			sps, err := loadSavepoints(ctx, f.seeds(), f.group)
			if err != nil {
				return err
			}
			if f.output == "json" {
				return writeJSON(cmd.OutOrStdout(), sps)
			}
			if len(sps) == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "group %s has no savepoints\n", f.group)
				return nil
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tCREATED\tSTATE RECORDS\tSTATE BYTES\tIN FLIGHT\tINPUT OFFSETS")
			for _, sp := range sps {
				var offs []string
				for _, o := range sp.Offsets {
					if !o.Internal {
						offs = append(offs, fmt.Sprintf("%s/%d:%d", o.Topic, o.Partition, o.Offset))
					}
				}
				fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%d\t%s\n", sp.ID, sp.Created.UTC().Format(time.RFC3339), sp.StateRecords, sp.StateBytes, sp.InFlight, strings.Join(offs, " "))
			}
			return tw.Flush()
		},
	}
	f.register(cmd)
	return cmd
}

func newSavepointPruneCmd() *cobra.Command {
	var (
		f    offsetsFlags
		keep int
	)
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Delete a job's oldest savepoints, keeping the newest --keep",
		Long: `Savepoints are kept until pruned: their topics delete nothing by time or
size. prune deletes the records of every savepoint but the newest --keep
(Kafka deletes a log's records from its start, and savepoints are written
in order).`,
		Example: `  weir savepoint prune --group clicks --keep 3`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.check(); err != nil {
				return err
			}
			if keep < 1 {
				return usageError{fmt.Errorf("--keep %d: keep at least one savepoint", keep)}
			}
			ctx, cl, done, err := f.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			return pruneSavepoints(ctx, cmd.OutOrStdout(), f.seeds(), kadm.NewClient(cl), f.group, keep)
		},
	}
	f.register(cmd)
	cmd.Flags().IntVar(&keep, "keep", 0, "how many of the newest savepoints to keep (required)")
	return cmd
}

// pruneSavepoints deletes every savepoint of group but the newest keep.
func pruneSavepoints(ctx context.Context, w io.Writer, seeds []string, adm *kadm.Client, group string, keep int) error {
	sps, err := loadSavepoints(ctx, seeds, group)
	if err != nil {
		return err
	}
	if len(sps) <= keep {
		fmt.Fprintf(w, "group %s has %d savepoints: nothing to prune\n", group, len(sps))
		return nil
	}
	first := sps[len(sps)-keep]
	del := kadm.Offsets{}
	del.Add(kadm.Offset{Topic: savepointTopic(group), Partition: 0, At: first.offset})
	del.Add(kadm.Offset{Topic: savepointDataTopic(group), Partition: 0, At: first.DataFrom})
	resp, err := adm.DeleteRecords(ctx, del)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return fmt.Errorf("deleting savepoints before %d: %w", first.ID, err)
	}
	fmt.Fprintf(w, "deleted %d savepoints of group %s; kept %d (from savepoint %d)\n", len(sps)-keep, group, keep, first.ID)
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printSavedOffsets(w io.Writer, sp savepointMeta) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tOFFSET\tCHECKPOINT")
	for _, o := range sp.Offsets {
		topic := o.Topic
		if o.Internal {
			topic += " (repartition)"
		}
		cp := "-"
		if m, ok, err := engine.ParseCommitMetadata(o.Metadata, sp.Group); ok && err == nil {
			cp = strconv.FormatInt(m.Checkpoint, 10)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", topic, o.Partition, o.Offset, cp)
	}
	_ = tw.Flush()
}

// tp names a partition.
type tp struct {
	topic string
	p     int32
}

// readRanges reads, committed records only, each partition of ranges from
// its first offset up to (not including) its second, calling fn in offset
// order per partition (verify.ReadCommittedSpans: a partition is done when
// its reader passes the end, transaction markers included).
func readRanges(ctx context.Context, seeds []string, ranges map[tp][2]int64, fn func(*kgo.Record)) error {
	read := map[string]map[int32]verify.Span{}
	for k, r := range ranges {
		if read[k.topic] == nil {
			read[k.topic] = map[int32]verify.Span{}
		}
		read[k.topic][k.p] = verify.Span{Start: r[0], End: r[1]}
	}
	return verify.ReadCommittedSpans(ctx, read, fn, kafkaOpts(seeds)...)
}

// changelogTargets returns, per changelog partition, where the committed
// checkpoint of its task says its state ends.
func changelogTargets(v groupView) (map[tp]int64, error) {
	targets := map[tp]int64{}
	for _, r := range v.Partitions {
		m, ok, err := engine.ParseCommitMetadata(r.meta, v.Group)
		if err != nil {
			return nil, fmt.Errorf("%s/%d: %w", r.Topic, r.Partition, err)
		}
		if !ok {
			continue
		}
		for topic, pos := range m.Changelog {
			k := tp{topic, r.Partition}
			if prev, ok := targets[k]; ok && prev != pos {
				return nil, fmt.Errorf("changelog %s/%d: the task's offsets name two positions, %d and %d (a commit in progress?)", topic, r.Partition, prev, pos)
			}
			targets[k] = pos
		}
	}
	return targets, nil
}

// createSavepoint reads the job's committed state and in-flight records
// as of v's committed offsets (one read of the group's offsets: a
// consistent cut, the job running or not) and writes them, with those
// offsets, as the next savepoint.
func createSavepoint(ctx context.Context, seeds []string, adm *kadm.Client, v groupView) (savepointMeta, error) {
	sp := savepointMeta{Group: v.Group, Created: v.At.UTC(), Running: len(v.Members) > 0}
	targets, err := changelogTargets(v)
	if err != nil {
		return sp, err
	}
	ranges := map[tp][2]int64{}
	if len(targets) > 0 {
		starts, err := adm.ListStartOffsets(ctx, slices.Collect(maps.Keys(topicSet(targets)))...)
		if err == nil {
			err = starts.Error()
		}
		if err != nil {
			return sp, fmt.Errorf("listing the changelogs' starts: %w", err)
		}
		for k, pos := range targets {
			s, _ := starts.Lookup(k.topic, k.p)
			ranges[k] = [2]int64{s.Offset, pos}
		}
	}
	state := map[tp]map[string][]byte{}
	err = readRanges(ctx, seeds, ranges, func(r *kgo.Record) {
		k := tp{r.Topic, r.Partition}
		if state[k] == nil {
			state[k] = map[string][]byte{}
		}
		if r.Value == nil {
			delete(state[k], string(r.Key))
		} else {
			state[k][string(r.Key)] = r.Value
		}
	})
	if err != nil {
		return sp, fmt.Errorf("reading the job's state: %w", err)
	}
	var data []*kgo.Record
	for _, k := range slices.SortedFunc(maps.Keys(state), compareTP) {
		for _, key := range slices.Sorted(maps.Keys(state[k])) {
			val := state[k][key]
			data = append(data, &kgo.Record{Key: []byte(key), Value: val, Headers: spHeaders("state", k)})
			sp.StateRecords++
			sp.StateBytes += int64(len(key) + len(val))
		}
	}
	// What the repartition topics hold past their committed offsets is
	// between stages: the upstream stage committed the input it came from.
	// Of a running job, only what the upstream tasks wrote in checkpoints
	// v's offsets include: the topics' ends move past them meanwhile.
	committedCp := map[tp]int64{}
	for _, r := range v.Partitions {
		if m, ok, err := engine.ParseCommitMetadata(r.meta, v.Group); err == nil && ok {
			committedCp[tp{r.Topic, r.Partition}] = m.Checkpoint
		}
	}
	inflight := map[tp][2]int64{}
	var internal []string
	for _, r := range v.Partitions {
		sp.Offsets = append(sp.Offsets, savedOffset{Topic: r.Topic, Partition: r.Partition, Offset: r.Committed, Metadata: r.meta, Internal: r.Internal})
		if r.Internal {
			inflight[tp{r.Topic, r.Partition}] = [2]int64{r.Committed, -1}
			if !slices.Contains(internal, r.Topic) {
				internal = append(internal, r.Topic)
			}
		}
	}
	// A task between stages that has committed nothing yet (common while
	// the job runs) reads its partition from the start: all of it is in
	// flight.
	all, err := adm.ListTopics(ctx)
	if err != nil {
		return sp, fmt.Errorf("listing the repartition topics: %w", err)
	}
	for _, topic := range all.Names() {
		if !isRepartition(topic, v.Group) {
			continue
		}
		if !slices.Contains(internal, topic) {
			internal = append(internal, topic)
		}
		for _, p := range all[topic].Partitions.Numbers() {
			if _, ok := inflight[tp{topic, p}]; !ok {
				inflight[tp{topic, p}] = [2]int64{0, -1}
				sp.Offsets = append(sp.Offsets, savedOffset{Topic: topic, Partition: p, Offset: -1, Internal: true})
			}
		}
	}
	if len(internal) > 0 {
		ends, err := adm.ListCommittedOffsets(ctx, internal...)
		if err == nil {
			err = ends.Error()
		}
		if err != nil {
			return sp, fmt.Errorf("listing the repartition topics' ends: %w", err)
		}
		for k, r := range inflight {
			e, _ := ends.Lookup(k.topic, k.p)
			inflight[k] = [2]int64{r[0], e.Offset}
		}
	}
	var unstamped int
	err = readRanges(ctx, seeds, inflight, func(r *kgo.Record) {
		switch in, ok := committedAsOf(r, committedCp); {
		case !ok:
			unstamped++
		case !in:
			return
		}
		hs := append(slices.Clone(r.Headers), spHeaders("in-flight", tp{r.Topic, r.Partition})...)
		data = append(data, &kgo.Record{Key: r.Key, Value: r.Value, Headers: hs, Timestamp: r.Timestamp})
		sp.InFlight++
	})
	if err != nil {
		return sp, fmt.Errorf("reading the repartition topics: %w", err)
	}
	if unstamped > 0 && sp.Running {
		return sp, fmt.Errorf("%d records between stages do not say which checkpoint wrote them (a Weir older than its savepoints of running jobs wrote them): stop every replica of the job (%s) and take the savepoint then", unstamped, strings.Join(v.Members, ", "))
	}
	if err := ensureSavepointTopics(ctx, adm, v.Group); err != nil {
		return sp, err
	}
	prior, err := loadSavepoints(ctx, seeds, v.Group)
	if err != nil {
		return sp, err
	}
	sp.ID = 1
	if len(prior) > 0 {
		sp.ID = prior[len(prior)-1].ID + 1
	}
	return sp, writeSavepoint(ctx, seeds, &sp, data)
}

func topicSet(m map[tp]int64) map[string]bool {
	s := map[string]bool{}
	for k := range m {
		s[k.topic] = true
	}
	return s
}

func compareTP(a, b tp) int {
	if c := strings.Compare(a.topic, b.topic); c != 0 {
		return c
	}
	return int(a.p) - int(b.p)
}

func spHeaders(kind string, k tp) []kgo.RecordHeader {
	return []kgo.RecordHeader{
		{Key: spKind, Value: []byte(kind)},
		{Key: spTopic, Value: []byte(k.topic)},
		{Key: spPartition, Value: []byte(strconv.Itoa(int(k.p)))},
	}
}

// ensureSavepointTopics creates the savepoint topics if they are missing:
// one partition each, nothing deleted by time or size.
func ensureSavepointTopics(ctx context.Context, adm *kadm.Client, group string) error {
	configs := map[string]*string{"retention.ms": new("-1"), "retention.bytes": new("-1"), "cleanup.policy": new("delete")}
	for _, topic := range []string{savepointTopic(group), savepointDataTopic(group)} {
		resp, err := adm.CreateTopic(ctx, 1, -1, configs, topic)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !strings.Contains(err.Error(), "TOPIC_ALREADY_EXISTS") {
			return fmt.Errorf("creating %s: %w", topic, err)
		}
	}
	return nil
}

// writeSavepoint writes data and then sp (its range in the data topic
// filled in) in one transaction.
func writeSavepoint(ctx context.Context, seeds []string, sp *savepointMeta, data []*kgo.Record) error {
	cl, err := kgo.NewClient(append(kafkaOpts(seeds), kgo.TransactionalID("weir-savepoint-"+sp.Group),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.BeginTransaction(); err != nil {
		return fmt.Errorf("writing the savepoint: %w", err)
	}
	fail := func(err error) error {
		actx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = cl.EndTransaction(actx, kgo.TryAbort)
		return fmt.Errorf("writing the savepoint (nothing was kept): %w", err)
	}
	dataTopic := savepointDataTopic(sp.Group)
	for _, r := range data {
		r.Topic, r.Partition = dataTopic, 0
	}
	if err := cl.ProduceSync(ctx, data...).FirstErr(); err != nil {
		return fail(err)
	}
	if len(data) > 0 {
		sp.DataFrom, sp.DataTo = data[0].Offset, data[len(data)-1].Offset+1
	}
	meta, err := json.Marshal(sp)
	if err != nil {
		return fail(err)
	}
	rec := &kgo.Record{Topic: savepointTopic(sp.Group), Key: []byte(strconv.FormatInt(sp.ID, 10)), Value: meta}
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fail(err)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return fmt.Errorf("committing the savepoint: %w", err)
	}
	sp.offset = rec.Offset
	// EndTransaction returns once the coordinator has decided; the
	// markers that make the records readable follow. Return only once a
	// read_committed reader sees the savepoint, so that list, prune and
	// offsets reset right after create find it.
	adm := kadm.NewClient(cl)
	for topic, upTo := range map[string]int64{savepointTopic(sp.Group): rec.Offset, dataTopic: sp.DataTo - 1} {
		for {
			ends, err := adm.ListCommittedOffsets(ctx, topic)
			if err != nil {
				return fmt.Errorf("waiting for the savepoint to be readable: %w", err)
			}
			if e, ok := ends.Lookup(topic, 0); ok && e.Err == nil && e.Offset > upTo {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("waiting for the savepoint to be readable: %w", ctx.Err())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

// loadSavepoints returns the group's savepoints, oldest first.
func loadSavepoints(ctx context.Context, seeds []string, group string) ([]savepointMeta, error) {
	cl, err := kgo.NewClient(kafkaOpts(seeds)...)
	if err != nil {
		return nil, usageError{err}
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	topic := savepointTopic(group)
	ends, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", topic, err)
	}
	end, ok := ends.Lookup(topic, 0)
	if !ok || end.Err != nil {
		return nil, nil // no savepoint topic: no savepoints
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", topic, err)
	}
	start, _ := starts.Lookup(topic, 0)
	var sps []savepointMeta
	var bad error
	err = readRanges(ctx, seeds, map[tp][2]int64{{topic, 0}: {start.Offset, end.Offset}}, func(r *kgo.Record) {
		var sp savepointMeta
		if err := json.Unmarshal(r.Value, &sp); err != nil {
			bad = errors.Join(bad, fmt.Errorf("%s offset %d: %w", topic, r.Offset, err))
			return
		}
		sp.offset = r.Offset
		sps = append(sps, sp)
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return nil, fmt.Errorf("reading the savepoints of %s: %w", group, err)
	}
	return sps, nil
}

// savepointData is a savepoint's records: the state by changelog
// partition, and the in-flight records by repartition partition.
type savepointData struct {
	state    map[tp]map[string][]byte
	inflight map[tp][]*kgo.Record
}

func readSavepointData(ctx context.Context, seeds []string, sp savepointMeta) (savepointData, error) {
	d := savepointData{state: map[tp]map[string][]byte{}, inflight: map[tp][]*kgo.Record{}}
	var bad error
	err := readRanges(ctx, seeds, map[tp][2]int64{{savepointDataTopic(sp.Group), 0}: {sp.DataFrom, sp.DataTo}}, func(r *kgo.Record) {
		var kind, topic string
		p := -1
		var hs []kgo.RecordHeader
		for _, h := range r.Headers {
			switch h.Key {
			case spKind:
				kind = string(h.Value)
			case spTopic:
				topic = string(h.Value)
			case spPartition:
				p, _ = strconv.Atoi(string(h.Value))
			default:
				hs = append(hs, h)
			}
		}
		k := tp{topic, int32(p)}
		switch {
		case topic == "" || p < 0:
			bad = fmt.Errorf("savepoint %d: record at offset %d has no topic or partition", sp.ID, r.Offset)
		case kind == "state":
			if d.state[k] == nil {
				d.state[k] = map[string][]byte{}
			}
			d.state[k][string(r.Key)] = r.Value
		case kind == "in-flight":
			d.inflight[k] = append(d.inflight[k], &kgo.Record{Topic: topic, Partition: int32(p), Key: r.Key, Value: r.Value, Headers: hs, Timestamp: r.Timestamp})
		default:
			bad = fmt.Errorf("savepoint %d: record at offset %d of unknown kind %q", sp.ID, r.Offset, kind)
		}
	})
	if err == nil {
		err = bad
	}
	var n int
	for _, m := range d.state {
		n += len(m)
	}
	var f int
	for _, rs := range d.inflight {
		f += len(rs)
	}
	if err == nil && (n != sp.StateRecords || f != sp.InFlight) {
		err = fmt.Errorf("savepoint %d: read %d state and %d in-flight records, it has %d and %d (records deleted?)", sp.ID, n, f, sp.StateRecords, sp.InFlight)
	}
	return d, err
}

// findSavepoint returns the group's savepoint id ("latest": the newest).
func findSavepoint(ctx context.Context, seeds []string, group, id string) (savepointMeta, error) {
	sps, err := loadSavepoints(ctx, seeds, group)
	if err != nil {
		return savepointMeta{}, err
	}
	if id == "latest" {
		if len(sps) == 0 {
			return savepointMeta{}, fmt.Errorf("group %s has no savepoints (weir savepoint create takes one)", group)
		}
		return sps[len(sps)-1], nil
	}
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return savepointMeta{}, usageError{fmt.Errorf("--to-savepoint %q: want a savepoint id (weir savepoint list) or latest", id)}
	}
	var ids []string
	for _, sp := range sps {
		if sp.ID == n {
			return sp, nil
		}
		ids = append(ids, strconv.FormatInt(sp.ID, 10))
	}
	has := "none"
	if len(ids) > 0 {
		has = strings.Join(ids, ", ")
	}
	return savepointMeta{}, fmt.Errorf("savepoint %d of group %s does not exist (its savepoints: %s)", n, group, has)
}

// planSavepointReset plans the move of every input partition to the
// savepoint's offset.
func planSavepointReset(v groupView, sp savepointMeta) (resetPlan, error) {
	plan := resetPlan{Group: v.Group, Changelogs: v.Changelogs, Savepoint: &sp}
	saved := map[tp]int64{}
	for _, o := range sp.Offsets {
		if !o.Internal {
			saved[tp{o.Topic, o.Partition}] = o.Offset
		}
	}
	var now []string
	for _, r := range v.Partitions {
		if r.Internal {
			if !slices.Contains(plan.Repartions, r.Topic) {
				plan.Repartions = append(plan.Repartions, r.Topic)
			}
			continue
		}
		now = append(now, fmt.Sprintf("%s/%d", r.Topic, r.Partition))
		o, ok := saved[tp{r.Topic, r.Partition}]
		if !ok {
			continue
		}
		plan.Moves = append(plan.Moves, planRow{Topic: r.Topic, Partition: r.Partition, Current: r.Committed, New: o, Reprocessed: r.Committed - o})
	}
	if len(plan.Moves) != len(now) || len(saved) != len(now) {
		var then []string
		for _, k := range slices.SortedFunc(maps.Keys(saved), compareTP) {
			then = append(then, fmt.Sprintf("%s/%d", k.topic, k.p))
		}
		return plan, fmt.Errorf("nothing changed: savepoint %d was taken of other input partitions (%s) than group %s has now (%s)",
			sp.ID, strings.Join(then, " "), v.Group, strings.Join(now, " "))
	}
	return plan, nil
}

// withSavepointBefore turns a reset to a time into a reset to the newest
// savepoint whose offsets are all at or before that time's, when there is
// one: the state is then the savepoint's, and the records between it and
// the time are reprocessed onto it, instead of starting empty at the time.
func withSavepointBefore(ctx context.Context, seeds []string, v groupView, plan resetPlan, narrowed bool) (resetPlan, error) {
	sps, err := loadSavepoints(ctx, seeds, v.Group)
	if err != nil {
		return plan, err
	}
	switch {
	case len(sps) == 0:
		plan.NoSavepoint = "the group has none"
		return plan, nil
	case narrowed:
		plan.NoSavepoint = "--topic moves some partitions, and a savepoint restores the whole job"
		return plan, nil
	}
	target := map[tp]int64{}
	for _, m := range plan.Moves {
		target[tp{m.Topic, m.Partition}] = m.New
	}
	for i := len(sps) - 1; i >= 0; i-- {
		sp := sps[i]
		fits := true
		for _, o := range sp.Offsets {
			if n, ok := target[tp{o.Topic, o.Partition}]; !o.Internal && (!ok || o.Offset > n) {
				fits = false
			}
		}
		if !fits {
			continue
		}
		if p, err := planSavepointReset(v, sp); err == nil {
			return p, nil
		}
	}
	plan.NoSavepoint = fmt.Sprintf("none of the group's %d savepoints is at or before that time", len(sps))
	return plan, nil
}

// executeSavepointReset restores the plan's savepoint: the changelogs get
// its state (its keys written, every other key deleted), the repartition
// topics' offsets move to their end, where its in-flight records are
// written again, and the offsets are committed with its metadata: event
// time as it was, state where the changelogs now end. Writing it all
// before the commit makes a failed reset safe to run again.
func executeSavepointReset(ctx context.Context, seeds []string, adm *kadm.Client, v groupView, plan resetPlan) error {
	sp := *plan.Savepoint
	data, err := readSavepointData(ctx, seeds, sp)
	if err != nil {
		return fmt.Errorf("reading savepoint %d: %w", sp.ID, err)
	}
	for k := range data.state {
		if !slices.Contains(v.Changelogs, k.topic) {
			return fmt.Errorf("nothing changed: savepoint %d holds state of %s, a changelog the job no longer has (its changelogs: %s)", sp.ID, k.topic, strings.Join(v.Changelogs, ", "))
		}
	}
	for k := range data.inflight {
		if !slices.Contains(plan.Repartions, k.topic) {
			return fmt.Errorf("nothing changed: savepoint %d holds records of %s, a repartition topic the job no longer reads", sp.ID, k.topic)
		}
	}
	var recs []*kgo.Record
	if len(v.Changelogs) > 0 {
		live, err := liveChangelogKeys(ctx, seeds, adm, v.Changelogs)
		if err != nil {
			return fmt.Errorf("reading the job's state (nothing changed): %w", err)
		}
		for k, keys := range live {
			for key := range keys {
				if _, ok := data.state[k][key]; !ok {
					recs = append(recs, &kgo.Record{Topic: k.topic, Partition: k.p, Key: []byte(key)})
				}
			}
		}
	}
	for k, kv := range data.state {
		for key, val := range kv {
			recs = append(recs, &kgo.Record{Topic: k.topic, Partition: k.p, Key: []byte(key), Value: val})
		}
	}
	if err := produceAll(ctx, seeds, recs); err != nil {
		return fmt.Errorf("restoring the savepoint's state (nothing committed yet; run the reset again): %w", err)
	}
	var repEnds kadm.ListedOffsets
	if len(plan.Repartions) > 0 {
		if repEnds, err = adm.ListCommittedOffsets(ctx, plan.Repartions...); err == nil {
			err = repEnds.Error()
		}
		if err != nil {
			return fmt.Errorf("listing the repartition topics' ends (nothing committed yet; run the reset again): %w", err)
		}
		var inflight []*kgo.Record
		for _, k := range slices.SortedFunc(maps.Keys(data.inflight), compareTP) {
			inflight = append(inflight, data.inflight[k]...)
		}
		if err := produceAll(ctx, seeds, inflight); err != nil {
			return fmt.Errorf("writing the savepoint's in-flight records (nothing committed yet; run the reset again): %w", err)
		}
	}
	clEnds := kadm.ListedOffsets{}
	if len(v.Changelogs) > 0 {
		if clEnds, err = adm.ListEndOffsets(ctx, v.Changelogs...); err == nil {
			err = clEnds.Error()
		}
		if err != nil {
			return fmt.Errorf("listing the changelogs' ends (nothing committed yet; run the reset again): %w", err)
		}
	}
	saved := map[tp]savedOffset{}
	for _, o := range sp.Offsets {
		saved[tp{o.Topic, o.Partition}] = o
	}
	commit := kadm.Offsets{}
	for _, r := range v.Partitions {
		o, ok := saved[tp{r.Topic, r.Partition}]
		if !ok && r.Internal {
			// Its task had committed nothing at the savepoint: its state is
			// empty, what it is to read is among the in-flight records.
			ok = true
		}
		if !ok {
			return fmt.Errorf("nothing committed: savepoint %d has no offset for %s/%d", sp.ID, r.Topic, r.Partition)
		}
		m, _, err := engine.ParseCommitMetadata(o.Metadata, v.Group)
		if err != nil {
			return fmt.Errorf("nothing committed: savepoint %d, %s/%d: %w", sp.ID, r.Topic, r.Partition, err)
		}
		cur, _, _ := engine.ParseCommitMetadata(r.meta, v.Group)
		cl := map[string]int64{}
		for topic := range m.Changelog {
			if e, ok := clEnds.Lookup(topic, r.Partition); ok {
				cl[topic] = e.Offset
			}
		}
		meta := engine.CommitMetadata{Checkpoint: max(cur.Checkpoint, m.Checkpoint) + 1, Changelog: cl, EventTime: m.EventTime}
		at := o.Offset
		if r.Internal {
			e, _ := repEnds.Lookup(r.Topic, r.Partition)
			at = e.Offset
		}
		commit.Add(kadm.Offset{Topic: r.Topic, Partition: r.Partition, At: at, LeaderEpoch: -1, Metadata: meta.Encode(v.Group)})
	}
	resp, err := adm.CommitOffsets(ctx, v.Group, commit)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return fmt.Errorf("committing the savepoint's offsets (its state was written: run the reset again): %w", err)
	}
	return nil
}

// testHookOffsetsRead, if set, runs between the read of the group's
// offsets and the rest of a savepoint: a test lets a running job commit
// more there.
var testHookOffsetsRead func(groupView)

// committedAsOf reports whether repartition record r was written in a
// checkpoint that the committed checkpoints cps (by input partition)
// include; ok is false for a record without engine.HeaderOrigin.
func committedAsOf(r *kgo.Record, cps map[tp]int64) (in, ok bool) {
	for _, h := range r.Headers {
		if h.Key != engine.HeaderOrigin {
			continue
		}
		topic, p, cp, err := engine.ParseOrigin(h.Value)
		if err != nil {
			return false, false
		}
		committed, has := cps[tp{topic, p}]
		return has && cp <= committed, true
	}
	return false, false
}
