package engine

// This file owns the job's topics at start: waiting for the cluster,
// checking that the inputs and outputs exist and are co-partitioned,
// creating the internal topics (repartition, changelog, late data, dead
// letters) and reading the sink topics' limits.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
)

// checkTopics waits for the broker, retrying with backoff while it is
// unreachable, then checks that every topic exists and that the source
// topics are co-partitioned. It returns the number of partitions.
func (rt *runtime) checkTopics(ctx context.Context) (int, error) {
	admin, err := kgo.NewClient(append(slices.Clone(rt.cfg.kgoOpts), kgo.SeedBrokers(rt.cfg.Brokers...), kgo.WithLogger(kgoLogger{rt.log}))...)
	if err != nil {
		return 0, fmt.Errorf("%w: kafka client: %w", ErrConfig, err)
	}
	defer admin.Close()
	adm := kadm.NewClient(admin)
	topics := append(rt.job.userSourceTopics(), slices.Sorted(maps.Keys(rt.job.sinks))...)
	rt.setNotReady("waiting for the Kafka cluster")
	// What the ACLs refuse is said first, and finally: retrying would not
	// grant it.
	err = rt.retry(ctx, "checking the job's permissions", 10*time.Second, func(err error) bool {
		var ke *kerr.Error
		return !errors.Is(err, ErrNotAuthorized) && (!errors.As(err, &ke) || ke.Retriable)
	}, func(ctx context.Context) error { return rt.checkAccess(ctx, admin) })
	if err != nil {
		return 0, err
	}
	var details kadm.TopicDetails
	err = rt.retryTransient(ctx, "reaching the Kafka cluster", func(ctx context.Context) error {
		d, err := adm.ListTopics(ctx, topics...)
		details = d
		return err
	})
	if err != nil {
		return 0, err
	}
	var missing []string
	counts := map[string]int{}
	for _, t := range topics {
		d, ok := details[t]
		if !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
			missing = append(missing, t)
			continue
		}
		if d.Err != nil {
			return 0, fmt.Errorf("describing topic %q: %w", t, d.Err)
		}
		counts[t] = len(d.Partitions)
	}
	if len(missing) > 0 {
		return 0, fmt.Errorf("%w: topics do not exist: %v (create them first; Weir does not rely on auto-creation)", ErrTopology, missing)
	}
	n := -1
	for _, t := range rt.job.stageTopics(0) {
		if n == -1 {
			n = counts[t]
		} else if counts[t] != n {
			return 0, fmt.Errorf("%w: topics read together are not co-partitioned: %v partitions per topic", ErrTopology, counts)
		}
	}
	// Topics read beside a repartition topic (a join's table) must be
	// partitioned like it: every stage has the first stage's count.
	for stage := 1; stage < rt.job.stages; stage++ {
		for _, t := range rt.job.stageTopics(stage) {
			if c, ok := counts[t]; ok && c != n {
				return 0, fmt.Errorf("%w: topic %s has %d partitions but is joined in a stage with %d: it is not co-partitioned", ErrTopology, t, c, n)
			}
		}
	}
	// Before anything is created: a job whose commits the broker would
	// refuse must not leave topics behind.
	rt.job.partitions = int32(n)
	if err := rt.job.checkCommitMetaFits(rt.cfg.Group); err != nil {
		return 0, err
	}
	if err := rt.ensureInternalTopics(ctx, adm, n); err != nil {
		return 0, err
	}
	if rt.job.dlq.name != "" {
		rt.job.dlq.partitions = int32(n) // Weir's own: the first stage's count
		if c, ok := counts[rt.job.dlq.name]; ok {
			rt.job.dlq.partitions = int32(c)
		}
	}
	if err := rt.describeSinks(ctx, adm); err != nil {
		return 0, err
	}
	return n, nil
}

// sinkTopic is what a sink checks its outputs against: the topic's
// retention.ms (0 for none), and the largest record it takes.
type sinkTopic struct {
	retention time.Duration
	maxBytes  int
}

// producerMaxBatchBytes is franz-go's default ProducerBatchMaxBytes: no
// record larger than it can be produced, whatever the topic takes.
const producerMaxBatchBytes = 1000012

// describeSinks reads the sink topics' retention.ms and max.message.bytes,
// and warns about a sink whose retention deletes by time: outputs carry
// their event time, so a replay of old data writes records the broker may
// delete minutes later.
func (rt *runtime) describeSinks(ctx context.Context, adm *kadm.Client) error {
	topics := slices.Sorted(maps.Keys(rt.job.sinks))
	if len(topics) == 0 {
		return nil
	}
	var rcs kadm.ResourceConfigs
	err := rt.retryTransient(ctx, "describing the sink topics", func(ctx context.Context) error {
		var err error
		rcs, err = adm.DescribeTopicConfigs(ctx, topics...)
		return err
	})
	rt.job.sinkTopics = map[string]sinkTopic{}
	if errors.Is(err, kerr.TopicAuthorizationFailed) {
		// DescribeConfigs is not granted: the job runs with the
		// broker's defaults for what it would have checked.
		rt.log.Warn("the sink topics' configurations may not be read (no DescribeConfigs ACL): outputs are not checked against their max.message.bytes and retention.ms",
			zap.Strings("topics", topics), zap.Error(err))
		for _, t := range topics {
			rt.job.sinkTopics[t] = sinkTopic{maxBytes: producerMaxBatchBytes}
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("describing the sink topics: %w", err)
	}
	for _, rc := range rcs {
		st := sinkTopic{maxBytes: producerMaxBatchBytes}
		if rc.Err != nil {
			rt.log.Warn("describing a sink topic's configuration", zap.String("topic", rc.Name), zap.Error(rc.Err))
			rt.job.sinkTopics[rc.Name] = st
			continue
		}
		for _, c := range rc.Configs {
			if c.Value == nil {
				continue
			}
			switch c.Key {
			case "retention.ms":
				if ms, err := strconv.ParseInt(*c.Value, 10, 64); err == nil && ms > 0 {
					st.retention = time.Duration(ms) * time.Millisecond
				}
			case "max.message.bytes":
				if n, err := strconv.Atoi(*c.Value); err == nil && n > 0 {
					st.maxBytes = min(n, producerMaxBatchBytes)
				}
			}
		}
		rt.job.sinkTopics[rc.Name] = st
		if st.retention > 0 && rc.Name != rt.job.dlq.name {
			rt.log.Info("sink topic deletes records by time: outputs carry their event time, so outputs older than its retention may be deleted soon after they are written (weir_sink_records_past_retention_total counts them; connectors.WithProcessingTime stamps them now)",
				zap.String("topic", rc.Name), zap.Duration("retention", st.retention))
		}
	}
	return nil
}

// internalTopicConfig is how Weir creates its internal topics. Records
// keep their event time as their Kafka timestamp, so replaying last
// year's data writes last year's timestamps: with time-based retention
// the broker would delete them before the next stage reads them (Kafka
// rolls and deletes even the active segment once its newest timestamp is
// past retention). Kafka Streams creates its repartition topics with
// infinite retention for the same reason.
var internalTopicConfig = map[string]*string{
	"retention.ms":   kadm.StringPtr("-1"),
	"cleanup.policy": kadm.StringPtr("delete"),
}

// changelogTopicConfig is how Weir creates changelog topics: compacted,
// so the latest value (or tombstone) of every state key stays, whatever
// its age.
var changelogTopicConfig = map[string]*string{
	"cleanup.policy": kadm.StringPtr("compact"),
}

// ensureInternalTopics creates the job's repartition topics, each with the
// partition count of the stage writing it, or checks the count of those
// that exist: a mismatch would send a key's records to two tasks.
func (rt *runtime) ensureInternalTopics(ctx context.Context, adm *kadm.Client, firstStage int) error {
	if len(rt.job.internal) == 0 {
		return nil
	}
	stagePartitions := map[int]int{0: firstStage}
	for _, it := range rt.job.internal { // internal topics are declared upstream first
		want, ok := stagePartitions[it.from]
		if !ok {
			return fmt.Errorf("%w: internal topic %s is written by stage %d, which reads nothing", ErrTopology, it.name, it.from)
		}
		conf := internalTopicConfig
		if it.compact {
			conf = changelogTopicConfig
		}
		err := rt.retryTransient(ctx, "creating internal topic "+it.name, func(ctx context.Context) error {
			resp, err := adm.CreateTopic(ctx, int32(want), -1, conf, it.name)
			if err == nil {
				err = resp.Err
			}
			return err
		})
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("creating internal topic %s: %w", it.name, err)
		}
		if err != nil { // it exists: check it
			// Another replica may have just created it; until the metadata
			// has caught up it shows no partitions, which is not a mismatch.
			got, err := backoff.Retry(ctx, func() (int, error) {
				d, err := adm.ListTopics(ctx, it.name)
				if err != nil {
					return 0, err
				}
				n := len(d[it.name].Partitions)
				if n == 0 {
					return 0, fmt.Errorf("internal topic %s shows no partitions yet", it.name)
				}
				return n, nil
			}, backoff.WithBackOff(backoff.NewExponentialBackOff()), backoff.WithMaxElapsedTime(time.Minute))
			if err != nil {
				return fmt.Errorf("describing internal topic %s: %w", it.name, err)
			}
			if got != want {
				return fmt.Errorf("%w: internal topic %s has %d partitions, stage %d has %d", ErrTopology, it.name, got, it.from, want)
			}
		} else {
			rt.log.Info("created internal topic", zap.String("topic", it.name), zap.Int("partitions", want))
		}
		for _, s := range rt.job.sources {
			if s.internal == it {
				stagePartitions[s.stage] = want
			}
		}
	}
	return nil
}

// retryTransient calls fn until it succeeds, fails with an error Kafka
// calls final (a topic that exists, a policy violation, a missing ACL), or
// ctx ends. A broker that cannot be reached, a request that times out and
// a retriable Kafka error are waited out with backoff: a replica starting
// while the broker restarts waits for it, as it does in checkTopics,
// instead of exiting. Each call gets 10 s.
func (rt *runtime) retryTransient(ctx context.Context, what string, fn func(context.Context) error) error {
	return rt.retry(ctx, what, 10*time.Second, notFinal, fn)
}

// notFinal reports whether err may pass if tried again: anything but an
// error Kafka calls non-retriable (a transport error, a timeout, a
// retriable Kafka error).
func notFinal(err error) bool {
	var ke *kerr.Error
	return !errors.As(err, &ke) || ke.Retriable
}

// retry calls fn, each call bounded by attempt (0: not bounded), until it
// succeeds, fails with an error again says not to retry, or ctx ends,
// with a growing pause (100 ms to 5 s) between calls, each failure logged.
func (rt *runtime) retry(ctx context.Context, what string, attempt time.Duration, again func(error) bool, fn func(context.Context) error) error {
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		callCtx, cancel := ctx, context.CancelFunc(func() {})
		if attempt > 0 {
			callCtx, cancel = context.WithTimeout(ctx, attempt)
		}
		defer cancel()
		err := fn(callCtx)
		switch {
		case err == nil:
			return struct{}{}, nil
		case ctx.Err() != nil || !again(err):
			return struct{}{}, backoff.Permanent(err)
		}
		rt.log.Warn(what+" failed, retrying", zap.Error(err))
		return struct{}{}, err
	}, backoff.WithBackOff(&backoff.ExponentialBackOff{
		InitialInterval: 100 * time.Millisecond, RandomizationFactor: 0.5, Multiplier: 2, MaxInterval: 5 * time.Second,
	}), backoff.WithMaxElapsedTime(0))
	return err
}
