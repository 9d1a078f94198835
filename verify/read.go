package verify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// span is the part of a partition that is read: offsets [start, end), end
// being the partition's last stable offset when the snapshot was taken.
type span struct{ start, end int64 }

// spans holds the span of every partition of some topics, by topic and
// partition.
type spans map[string]map[int32]span

type topicPartition struct {
	topic     string
	partition int32
}

func (tp topicPartition) String() string { return fmt.Sprintf("%s/%d", tp.topic, tp.partition) }

// snapshot returns the span of every partition of topics: from the log
// start offset to the last stable offset (ListOffsets with read_committed
// isolation), which excludes every still-open transaction.
// kind ("output" or "input") names the topics in errors.
func snapshot(ctx context.Context, adm *kadm.Client, kind string, topics []string) (spans, error) {
	out := spans{}
	if len(topics) == 0 {
		return out, nil
	}
	details, err := adm.ListTopics(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("verify: describing topics %s: %w", strings.Join(topics, ", "), err)
	}
	for _, t := range topics {
		td, ok := details[t]
		if !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition) {
			return nil, fmt.Errorf("verify: %s topic %q: %w", kind, t, ErrTopicNotFound)
		}
		if td.Err != nil {
			return nil, fmt.Errorf("verify: describing %s topic %q: %w", kind, t, td.Err)
		}
	}
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("verify: listing start offsets of %s: %w", strings.Join(topics, ", "), err)
	}
	ends, err := adm.ListCommittedOffsets(ctx, topics...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("verify: listing last stable offsets of %s: %w", strings.Join(topics, ", "), err)
	}
	for _, t := range topics {
		out[t] = map[int32]span{}
		for p := range details[t].Partitions {
			s, okStart := starts.Lookup(t, p)
			e, okEnd := ends.Lookup(t, p)
			if !okStart || !okEnd {
				return nil, fmt.Errorf("verify: no offsets listed for %s/%d", t, p)
			}
			// Retention may have moved the start past the end since the
			// end was listed: then nothing is left to read.
			out[t][p] = span{start: min(s.Offset, e.Offset), end: e.Offset}
		}
	}
	return out, nil
}

// readTopics reads every partition of sp from its start to its end with
// read_committed isolation, consuming the partitions directly (no group),
// and calls fn with each committed data record, in offset order within a
// partition. It returns once every partition reached its end. It owns the
// consumer it creates and closes it before returning.
//
// The client keeps control records (commit and abort markers), which fn
// never sees: a partition's last offset before the last stable offset is
// often a marker, and seeing it is how the reader knows it is done. When
// the records just below the end belong to an aborted transaction whose
// marker lies beyond the end, the partition is done only once a record at
// or beyond the end shows up, when the transaction open at the snapshot
// ends.
func readTopics(ctx context.Context, clientOpts []kgo.Opt, sp spans, fn func(*kgo.Record)) error {
	type cursor struct{ next, end int64 }
	pending := map[topicPartition]*cursor{}
	consume := map[string]map[int32]kgo.Offset{}
	for t, ps := range sp {
		for p, s := range ps {
			if s.start >= s.end {
				continue
			}
			if consume[t] == nil {
				consume[t] = map[int32]kgo.Offset{}
			}
			consume[t][p] = kgo.NewOffset().At(s.start)
			pending[topicPartition{t, p}] = &cursor{next: s.start, end: s.end}
		}
	}
	if len(pending) == 0 {
		return nil
	}

	opts := append(slices.Clone(clientOpts),
		kgo.ConsumePartitions(consume),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("verify: creating consumer: %w", err)
	}
	defer cl.Close()

	for len(pending) > 0 {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			var left []string
			for tp, c := range pending {
				left = append(left, fmt.Sprintf("%s (at offset %d, reading to %d)", tp, c.next, c.end))
			}
			sort.Strings(left)
			return fmt.Errorf("verify: reading stopped before the end of %s: %w "+
				"(a transaction still open may be holding read_committed readers back until it ends or times out)",
				strings.Join(left, ", "), err)
		}
		for _, fe := range fetches.Errors() {
			if _, ok := pending[topicPartition{fe.Topic, fe.Partition}]; ok || fe.Topic == "" {
				return fmt.Errorf("verify: reading %s/%d: %w", fe.Topic, fe.Partition, fe.Err)
			}
		}
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			tp := topicPartition{p.Topic, p.Partition}
			c, ok := pending[tp]
			if !ok || len(p.Records) == 0 {
				return
			}
			for _, r := range p.Records {
				if r.Offset >= c.end {
					break
				}
				if !r.Attrs.IsControl() {
					fn(r)
				}
			}
			c.next = p.Records[len(p.Records)-1].Offset + 1
			if c.next >= c.end {
				delete(pending, tp)
				cl.PauseFetchPartitions(map[string][]int32{tp.topic: {tp.partition}})
			}
		})
	}
	return nil
}

// ReadCommitted calls fn with every committed data record of topics, from
// each partition's start to its last stable offset at the call, in offset
// order within a partition: what a read_committed consumer sees of the
// topics now. opts configure the clients it creates (at least the seed
// brokers).
func ReadCommitted(ctx context.Context, topics []string, fn func(*kgo.Record), opts ...kgo.Opt) error {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("verify: creating client: %w", err)
	}
	sp, err := snapshot(ctx, kadm.NewClient(cl), "output", topics)
	cl.Close()
	if err != nil {
		return err
	}
	return readTopics(ctx, opts, sp, fn)
}

// Span is the offsets [Start, End) of a partition to read.
type Span struct{ Start, End int64 }

// ReadCommittedSpans calls fn with every committed data record of the
// given spans, by topic and partition, in offset order within a partition,
// and returns once each partition is read to its span's end. An end past
// the partition's last stable offset waits for the records to come (or
// ctx to end). opts configure the client it creates (at least the seed
// brokers).
func ReadCommittedSpans(ctx context.Context, read map[string]map[int32]Span, fn func(*kgo.Record), opts ...kgo.Opt) error {
	sp := spans{}
	for t, ps := range read {
		sp[t] = map[int32]span{}
		for p, s := range ps {
			sp[t][p] = span{start: s.Start, end: s.End}
		}
	}
	return readTopics(ctx, opts, sp, fn)
}
