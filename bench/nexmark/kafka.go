package nexmark

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// WriteTopic writes the first n events of cfg's stream to topic, one record
// per event, in order: the value is the event's JSON (EventCodec), the key
// is nil, and the record's timestamp is the event's dateTime. It returns
// once every record is acknowledged, with the first error any had.
//
// Records without a key go where cl's partitioner puts them: franz-go's
// default sticky partitioner fills a batch per partition, and
// kgo.RecordPartitioner(kgo.RoundRobinPartitioner()) spreads them one by
// one as nexmark-flink's Kafka sink does ('sink.partitioner' =
// 'round-robin'). No query relies on the partitioning: each one keys what
// it needs itself. Within a partition, events keep their order, so each
// partition's event time never goes back.
func WriteTopic(ctx context.Context, cl *kgo.Client, topic string, n int, cfg Config) error {
	return WriteEvents(ctx, cl, topic, 0, n, cfg)
}

// WriteEvents is WriteTopic for events from, from+1, ... from+n-1 of cfg's
// stream: a later batch of the same stream, with the ids and times it has
// there (cfg.BaseTime is the time of event 0, not of event from).
func WriteEvents(ctx context.Context, cl *kgo.Client, topic string, from int64, n int, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if n < 0 || from < 0 {
		return fmt.Errorf("nexmark: cannot write %d events from event %d", n, from)
	}
	g := NewGenerator(cfg)
	g.SkipTo(from)
	var (
		mu    sync.Mutex
		first error
	)
	promise := func(r *kgo.Record, err error) {
		if err != nil {
			mu.Lock()
			if first == nil {
				first = fmt.Errorf("nexmark: writing event at %s to %s: %w", r.Timestamp.UTC().Format(DateTimeLayout), topic, err)
			}
			mu.Unlock()
		}
	}
	for range n {
		if err := ctx.Err(); err != nil {
			break
		}
		e := g.Next()
		cl.Produce(ctx, &kgo.Record{Topic: topic, Value: AppendEvent(make([]byte, 0, 256), e), Timestamp: e.Time()}, promise)
	}
	flushErr := cl.Flush(ctx)
	mu.Lock()
	defer mu.Unlock()
	if first != nil {
		return first
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("nexmark: writing %s: %w", topic, err)
	}
	if flushErr != nil && !errors.Is(flushErr, context.Canceled) {
		return fmt.Errorf("nexmark: flushing %s: %w", topic, flushErr)
	}
	return nil
}
