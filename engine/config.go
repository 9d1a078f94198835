package engine

import (
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/weirstream/weir/internal/kafkaconn"
	"github.com/weirstream/weir/observe"
)

// Config is a job's runtime configuration. Options set it in code; FromEnv
// and the flags Main parses override it, in that order (code, environment,
// flags), so a binary built with sensible defaults is tuned per deployment.
type Config struct {
	// Brokers are the Kafka seed brokers. Default: localhost:9092.
	// Environment WEIR_BROKERS (comma separated), flag --brokers.
	Brokers []string
	// Group is the consumer group the job's replicas share. Default: the
	// job's name. Environment WEIR_GROUP, flag --group.
	Group string
	// StateDir is where the replica keeps its local state store.
	// Default: ./weir-state/<job>. Environment WEIR_STATE_DIR, flag --state-dir.
	StateDir string
	// MetricsAddr is where /metrics, /healthz and /readyz are served; empty
	// disables the server. Default: :9464. Environment WEIR_METRICS_ADDR,
	// flag --metrics-addr.
	MetricsAddr string
	// CheckpointInterval is how often a checkpoint commits what the tasks
	// did: outputs, state changelog and input offsets (in one transaction
	// exactly once). It bounds the end-to-end latency exactly once, and
	// what is redone after a crash at least once. Default: 500ms.
	// Environment WEIR_CHECKPOINT_INTERVAL, flag --checkpoint-interval.
	CheckpointInterval time.Duration
	// StartOffset is where a partition with no committed offset starts:
	// "earliest" or "latest". Default: earliest. Environment
	// WEIR_START_OFFSET, flag --start-offset.
	StartOffset string
	// Until makes the run bounded (a backfill, a reprocessing, a test): each
	// partition of the job's sources ends where it stood when the replica
	// started ("end": its last committed record) or at its first record
	// stamped at or after a time (RFC 3339). A task whose inputs have all
	// ended moves its watermark to the maximum, which fires every
	// event-time window and timer, as a bounded source does in Flink, and
	// tells the stages downstream; once every task of the replica has
	// ended and its work is committed, the replica stops by itself, and
	// Run returns nil. Default: "" (unbounded). Environment WEIR_UNTIL,
	// flag --until.
	Until string
	// FeaturesFile is a file of name=value lines, or a directory of one
	// file per flag (a mounted ConfigMap), holding the job's feature flags
	// (Job.Features); it is reloaded when it changes. Default: none (the
	// WEIR_FEATURE_* variables only). Environment WEIR_FEATURES_FILE,
	// flag --features-file.
	FeaturesFile string
	// OutputSuffix is appended to the topic of every sink
	// (connectors.KafkaSink): a rewound run (weir offsets reset) writes
	// its results to new versions of its output topics (clicks-tagged-v2)
	// instead of repeating them into the old ones. The suffixed topics
	// must exist. Default: "". Environment WEIR_OUTPUT_SUFFIX, flag
	// --output-suffix.
	OutputSuffix string
	// TaskQueueRecords is the backpressure threshold: when this many
	// fetched records wait for a task, fetching its partitions pauses until
	// the task drains half of them. Default: 20000. Environment
	// WEIR_TASK_QUEUE_RECORDS, flag --task-queue-records.
	TaskQueueRecords int
	// SessionTimeout is how long the group waits to hear from a replica
	// before it moves the replica's tasks elsewhere: the time a crashed
	// replica's work stands still. The broker bounds it
	// (group.min.session.timeout.ms). Default: 45s. Environment
	// WEIR_SESSION_TIMEOUT, flag --session-timeout.
	SessionTimeout time.Duration
	// ShutdownTimeout bounds the final checkpoint on shutdown. Default: 30s.
	// Environment WEIR_SHUTDOWN_TIMEOUT, flag --shutdown-timeout.
	ShutdownTimeout time.Duration
	// LogLevel is the zap level: debug, info, warn, error. Default: info.
	// Environment WEIR_LOG_LEVEL, flag --log-level.
	LogLevel string
	// Guarantee is the processing guarantee: "exactly-once" commits each
	// checkpoint's outputs, state changelog and input offsets in one Kafka
	// transaction; "at-least-once" runs the same protocol without the
	// transaction (a crash may repeat the outputs of one checkpoint
	// interval), for idempotent sinks. Default: exactly-once. Environment
	// WEIR_GUARANTEE, flag --guarantee.
	Guarantee string
	// Isolation is how inputs are read: "read_committed" skips records of
	// aborted and open transactions, "read_uncommitted" reads everything.
	// Default: read_committed. Environment WEIR_ISOLATION, flag --isolation.
	Isolation string
	// TransactionTimeout is how long the broker keeps a replica's open
	// transaction before aborting it: after a crash, how long read_committed
	// readers of the job's outputs wait on the dead replica's transaction
	// (a restart of the same replica aborts it at once). It must exceed the
	// checkpoint interval. Default: 10s. Environment
	// WEIR_TRANSACTION_TIMEOUT, flag --transaction-timeout.
	TransactionTimeout time.Duration
	// ReplicaID names this replica: its transactional id is
	// <group>-<replica id>, so a restarted replica fences its previous
	// incarnation. Default: an id generated once and kept in the state
	// directory. Environment WEIR_REPLICA_ID, flag --replica-id.
	//
	// It is also the replica's static group membership (KIP-345): a
	// replica that crashed and restarts on its state directory rejoins as
	// the same member and takes its tasks back at once, without waiting
	// for the session timeout to expire its previous incarnation. A
	// replica that never comes back is removed after the session timeout,
	// as any member is.
	ReplicaID string
	// LeaveGroupOnShutdown makes a replica that stops cleanly (SIGTERM)
	// leave the consumer group, so its tasks move to the other replicas
	// at once. Turn it off where a stopped replica comes back on the same
	// state directory (a StatefulSet with a volume): it then takes its
	// tasks back with no rebalance, and they wait for it meanwhile, up to
	// the session timeout. Default: on. Environment
	// WEIR_LEAVE_GROUP_ON_SHUTDOWN, flag --leave-group-on-shutdown.
	LeaveGroupOnShutdown bool
	// MaxRecordsPerSecond caps the records per second the replica reads
	// from the job's inputs (repartition topics are not capped: they
	// carry what was already read), for a catch-up or reprocessing that
	// must not flood what is downstream. Fetching pauses while the replica
	// is ahead of the cap, so the backlog waits in Kafka; a source can have
	// a cap of its own (connectors.WithMaxRecordsPerSecond). Default: 0,
	// no cap. Environment WEIR_MAX_RECORDS_PER_SECOND, flag
	// --max-records-per-second.
	MaxRecordsPerSecond float64
	// MemoryLimit is the memory the replica budgets for (bytes): fetch
	// and produce buffers, task queues, the write-back state cache (a
	// checkpoint comes early when it fills), Pebble's caches, and the Go
	// runtime's soft limit (GOMEMLIMIT, unless set); see memoryBudget for
	// the shares. What does not fit waits in Kafka behind paused
	// partitions. Set it to the container's memory limit. Default: 256MiB;
	// 0 turns the budget off (franz-go's and Pebble's own defaults, no
	// heap limit). Environment WEIR_MEMORY_LIMIT (256MiB, 1GiB, 512Mi...),
	// flag --memory-limit.
	MemoryLimit int64
	// Provenance adds headers to every output naming the input record it
	// came from (see package provenance), for weir verify. Default: off.
	// Environment WEIR_PROVENANCE, flag --provenance.
	Provenance bool
	// Pprof serves Go's profiles (/debug/pprof/) on the metrics address,
	// for finding where a replica spends its CPU and memory. Default:
	// off. Environment WEIR_PPROF, flag --pprof.
	Pprof bool
	// ErrorPolicy is what happens to a record an operator cannot process
	// (it does not decode, a user function fails or panics on it, a sink
	// cannot encode it or Kafka would refuse it): "fail" stops the job at
	// it, "dead-letter" writes it to the dead-letter topic and goes on,
	// "skip" counts it and goes on. An operator can have its own
	// (engine.OnError). Default: fail. Environment WEIR_ERROR_POLICY, flag
	// --error-policy.
	ErrorPolicy ErrorPolicy
	// DeadLetterTopic is where dead letters go. Default: <group>-dlq,
	// which Weir creates like its internal topics, with the first stage's
	// partition count; a topic named here must exist. Environment
	// WEIR_DEAD_LETTER_TOPIC, flag --dead-letter-topic.
	DeadLetterTopic string
	// RetryAttempts is how many calls user code gets for a record when it
	// fails with an error marked engine.Retryable, the first included,
	// before the error policy applies; the waits between them grow from
	// RetryInitialInterval to RetryMaxInterval, with jitter. 1 turns
	// retries off. Default: 5, 100ms, 5s. Environment
	// WEIR_RETRY_ATTEMPTS, WEIR_RETRY_INITIAL_INTERVAL,
	// WEIR_RETRY_MAX_INTERVAL; flags --retry-attempts,
	// --retry-initial-interval, --retry-max-interval.
	RetryAttempts        int
	RetryInitialInterval time.Duration
	RetryMaxInterval     time.Duration
	// BreakerThreshold and BreakerWindow are the circuit breaker: when
	// more than BreakerThreshold of an operator's last BreakerWindow
	// records in a task failed (dead-lettered or skipped), the replica
	// halts: it processes and commits nothing more, /readyz says why, and
	// it stays so until resumed (POST /breaker/resume, weir breaker
	// resume) or restarted. A threshold of 0 turns the breaker off.
	// Default: 0.1 of 1000. Environment WEIR_BREAKER_THRESHOLD,
	// WEIR_BREAKER_WINDOW; flags --breaker-threshold, --breaker-window.
	BreakerThreshold float64
	BreakerWindow    int
	// LivenessTimeout is how long the replica's poll loop may go without
	// coming round before /healthz answers 503, so Kubernetes restarts a
	// wedged replica: user code that never returns holds its task, the
	// checkpoint waits for the task's barrier, and nothing moves. A halted
	// replica (circuit breaker) and one waiting for Kafka stay live.
	// Default: 5m; 0 turns the check off. Environment
	// WEIR_LIVENESS_TIMEOUT, flag --liveness-timeout.
	LivenessTimeout time.Duration

	logger    *zap.Logger
	observer  observe.Observer
	kgoOpts   []kgo.Opt
	envErrors []error
	// security is how the job reaches a secured cluster (TLS, SASL),
	// read by FromEnv from the WEIR_KAFKA_* variables and files; never
	// from flags, since a process's command line is world-readable.
	security kafkaconn.Settings
}

func defaultConfig(job string) Config {
	return Config{
		Brokers:            []string{"localhost:9092"},
		Group:              job,
		StateDir:           "weir-state/" + job,
		MetricsAddr:        ":9464",
		CheckpointInterval: 500 * time.Millisecond,
		StartOffset:        "earliest",
		Guarantee:          ExactlyOnce,
		Isolation:          "read_committed",
		TransactionTimeout: 10 * time.Second,
		TaskQueueRecords:   20000,
		SessionTimeout:     45 * time.Second,
		ShutdownTimeout:    30 * time.Second,
		LogLevel:           "info",

		LeaveGroupOnShutdown: true,
		MemoryLimit:          256 << 20,

		ErrorPolicy:          Fail,
		RetryAttempts:        5,
		RetryInitialInterval: 100 * time.Millisecond,
		RetryMaxInterval:     5 * time.Second,
		BreakerThreshold:     0.1,
		BreakerWindow:        1000,
		LivenessTimeout:      5 * time.Minute,
	}
}

// Opt configures a Job.
type Opt interface{ apply(*Config) }

type optFunc func(*Config)

func (f optFunc) apply(c *Config) { f(c) }

// WithBrokers sets the Kafka seed brokers.
func WithBrokers(brokers ...string) Opt { return optFunc(func(c *Config) { c.Brokers = brokers }) }

// WithGroup sets the consumer group.
func WithGroup(group string) Opt { return optFunc(func(c *Config) { c.Group = group }) }

// WithStateDir sets the local state directory.
func WithStateDir(dir string) Opt { return optFunc(func(c *Config) { c.StateDir = dir }) }

// WithMetricsAddr sets the address of the metrics and health server; "" disables it.
func WithMetricsAddr(addr string) Opt { return optFunc(func(c *Config) { c.MetricsAddr = addr }) }

// WithCheckpointInterval sets how often a checkpoint commits.
func WithCheckpointInterval(d time.Duration) Opt {
	return optFunc(func(c *Config) { c.CheckpointInterval = d })
}

// WithOutputSuffix sets Config.OutputSuffix.
func WithOutputSuffix(suffix string) Opt { return optFunc(func(c *Config) { c.OutputSuffix = suffix }) }

// WithUntil sets Config.Until: "end" or an RFC 3339 time bounds the run.
func WithUntil(until string) Opt { return optFunc(func(c *Config) { c.Until = until }) }

// parseUntil parses Config.Until: "" (unbounded), "end", or a time.
func parseUntil(s string) (end bool, at time.Time, err error) {
	switch s {
	case "":
		return false, time.Time{}, nil
	case "end":
		return true, time.Time{}, nil
	}
	at, err = time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return false, time.Time{}, fmt.Errorf("until %q: want end or an RFC 3339 time (2026-12-05T00:00:00Z)", s)
	}
	return false, at, nil
}

// WithStartOffset sets where partitions without a committed offset start: "earliest" or "latest".
func WithStartOffset(where string) Opt { return optFunc(func(c *Config) { c.StartOffset = where }) }

// WithTaskQueueRecords sets the per-task backpressure threshold.
func WithTaskQueueRecords(n int) Opt { return optFunc(func(c *Config) { c.TaskQueueRecords = n }) }

// WithSessionTimeout sets the consumer group session timeout.
func WithSessionTimeout(d time.Duration) Opt {
	return optFunc(func(c *Config) { c.SessionTimeout = d })
}

// WithShutdownTimeout bounds the final checkpoint on shutdown.
func WithShutdownTimeout(d time.Duration) Opt {
	return optFunc(func(c *Config) { c.ShutdownTimeout = d })
}

// Processing guarantees, for WithGuarantee.
const (
	ExactlyOnce = "exactly-once"
	AtLeastOnce = "at-least-once"
)

// WithGuarantee sets the processing guarantee: ExactlyOnce or AtLeastOnce.
func WithGuarantee(g string) Opt { return optFunc(func(c *Config) { c.Guarantee = g }) }

// WithIsolation sets how inputs are read: "read_committed" or "read_uncommitted".
func WithIsolation(level string) Opt { return optFunc(func(c *Config) { c.Isolation = level }) }

// WithTransactionTimeout sets how long the broker keeps an open transaction.
func WithTransactionTimeout(d time.Duration) Opt {
	return optFunc(func(c *Config) { c.TransactionTimeout = d })
}

// WithReplicaID names the replica (its transactional id's suffix).
func WithReplicaID(id string) Opt { return optFunc(func(c *Config) { c.ReplicaID = id }) }

// WithMemoryLimit sets Config.MemoryLimit, in bytes.
func WithMemoryLimit(bytes int64) Opt { return optFunc(func(c *Config) { c.MemoryLimit = bytes }) }

// WithMaxRecordsPerSecond sets Config.MaxRecordsPerSecond.
func WithMaxRecordsPerSecond(n float64) Opt {
	return optFunc(func(c *Config) { c.MaxRecordsPerSecond = n })
}

// WithLeaveGroupOnShutdown sets Config.LeaveGroupOnShutdown.
func WithLeaveGroupOnShutdown(on bool) Opt {
	return optFunc(func(c *Config) { c.LeaveGroupOnShutdown = on })
}

// WithProvenance adds provenance headers to every output.
func WithProvenance(on bool) Opt { return optFunc(func(c *Config) { c.Provenance = on }) }

// WithPprof serves Go's profiles (/debug/pprof/) on the metrics address.
func WithPprof(on bool) Opt { return optFunc(func(c *Config) { c.Pprof = on }) }

// WithErrorPolicy sets Config.ErrorPolicy, the policy of every operator
// without one of its own.
func WithErrorPolicy(p ErrorPolicy) Opt { return optFunc(func(c *Config) { c.ErrorPolicy = p }) }

// WithDeadLetterTopic sets Config.DeadLetterTopic.
func WithDeadLetterTopic(topic string) Opt {
	return optFunc(func(c *Config) { c.DeadLetterTopic = topic })
}

// WithRetries sets Config.RetryAttempts, RetryInitialInterval and
// RetryMaxInterval.
func WithRetries(attempts int, initial, maxInterval time.Duration) Opt {
	return optFunc(func(c *Config) {
		c.RetryAttempts, c.RetryInitialInterval, c.RetryMaxInterval = attempts, initial, maxInterval
	})
}

// WithCircuitBreaker sets Config.BreakerThreshold and BreakerWindow.
func WithCircuitBreaker(threshold float64, window int) Opt {
	return optFunc(func(c *Config) { c.BreakerThreshold, c.BreakerWindow = threshold, window })
}

// WithLivenessTimeout sets Config.LivenessTimeout.
func WithLivenessTimeout(d time.Duration) Opt {
	return optFunc(func(c *Config) { c.LivenessTimeout = d })
}

// WithLogLevel sets the log level of the logger the job builds for itself.
func WithLogLevel(level string) Opt { return optFunc(func(c *Config) { c.LogLevel = level }) }

// WithLogger makes the job log to l instead of a logger of its own.
func WithLogger(l *zap.Logger) Opt { return optFunc(func(c *Config) { c.logger = l }) }

// WithObserver makes the job report to o instead of its own Prometheus registry.
func WithObserver(o observe.Observer) Opt { return optFunc(func(c *Config) { c.observer = o }) }

// WithKafkaOpts appends franz-go client options (TLS, SASL, timeouts) to
// those Weir sets. Weir's own consumer-group and commit options win where
// they conflict, since the engine's guarantees depend on them.
func WithKafkaOpts(opts ...kgo.Opt) Opt {
	return optFunc(func(c *Config) { c.kgoOpts = append(c.kgoOpts, opts...) })
}
