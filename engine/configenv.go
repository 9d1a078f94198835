package engine

// This file owns the configuration's outside names: the WEIR_* variables
// (FromEnv) and the command-line flags (Job.RegisterFlags) that set Config's
// fields, one table for both, and the validation of the result.

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/weirstream/weir/internal/kafkaconn"
)

// FromEnv overrides the configuration from WEIR_* environment variables
// (see Config). A malformed value is reported when the job starts.
func FromEnv() Opt {
	return optFunc(func(c *Config) {
		for _, v := range configVars(c) {
			if s, ok := os.LookupEnv(v.env); ok {
				if err := v.set(s); err != nil {
					c.envErrors = append(c.envErrors, fmt.Errorf("%s=%q: %w", v.env, s, err))
				}
			}
		}
		sec, err := kafkaconn.FromEnv(os.LookupEnv)
		if err != nil {
			c.envErrors = append(c.envErrors, fmt.Errorf("kafka security: %w", err))
			return
		}
		c.security = sec
		c.kgoOpts = append(c.kgoOpts, sec.Opts()...)
	})
}

// configVar ties one setting to its environment variable and flag, so the
// two can never drift apart.
type configVar struct {
	env, flag, usage string
	get              func() string
	set              func(string) error
}

func configVars(c *Config) []configVar {
	str := func(p *string) (func() string, func(string) error) {
		return func() string { return *p }, func(s string) error { *p = s; return nil }
	}
	dur := func(p *time.Duration) (func() string, func(string) error) {
		return func() string { return p.String() }, func(s string) error {
			d, err := time.ParseDuration(s)
			if err != nil {
				return err
			}
			*p = d
			return nil
		}
	}
	integer := func(p *int) (func() string, func(string) error) {
		return func() string { return strconv.Itoa(*p) }, func(s string) error {
			n, err := strconv.Atoi(s)
			if err != nil {
				return err
			}
			*p = n
			return nil
		}
	}
	v := func(env, flag, usage string, get func() string, set func(string) error) configVar {
		return configVar{env, flag, usage, get, set}
	}
	bget := func() string { return strings.Join(c.Brokers, ",") }
	bset := func(s string) error {
		var bs []string
		for b := range strings.SplitSeq(s, ",") {
			if b = strings.TrimSpace(b); b != "" {
				bs = append(bs, b)
			}
		}
		c.Brokers = bs
		return nil
	}
	g, gs := str(&c.Group)
	sd, sds := str(&c.StateDir)
	ma, mas := str(&c.MetricsAddr)
	so, sos := str(&c.StartOffset)
	un, uns := str(&c.Until)
	ff, ffs := str(&c.FeaturesFile)
	osf, osfs := str(&c.OutputSuffix)
	ll, lls := str(&c.LogLevel)
	ci, cis := dur(&c.CheckpointInterval)
	st, sts := dur(&c.ShutdownTimeout)
	se, ses := dur(&c.SessionTimeout)
	tq, tqs := integer(&c.TaskQueueRecords)
	gu, gus := str(&c.Guarantee)
	is, iss := str(&c.Isolation)
	tt, tts := dur(&c.TransactionTimeout)
	ri, ris := str(&c.ReplicaID)
	boolean := func(p *bool) (func() string, func(string) error) {
		return func() string { return strconv.FormatBool(*p) }, func(s string) error {
			b, err := strconv.ParseBool(s)
			if err != nil {
				return err
			}
			*p = b
			return nil
		}
	}
	pv, pvs := boolean(&c.Provenance)
	lg, lgs := boolean(&c.LeaveGroupOnShutdown)
	pp, pps := boolean(&c.Pprof)
	ml := func() string { return formatBytes(c.MemoryLimit) }
	mls := func(s string) error {
		n, err := parseBytes(s)
		c.MemoryLimit = n
		return err
	}
	ep := func() string { return string(c.ErrorPolicy) }
	eps := func(s string) error {
		p, err := parseErrorPolicy(s)
		c.ErrorPolicy = p
		return err
	}
	dl, dls := str(&c.DeadLetterTopic)
	ra, ras := integer(&c.RetryAttempts)
	rii, riis := dur(&c.RetryInitialInterval)
	rmi, rmis := dur(&c.RetryMaxInterval)
	bw, bws := integer(&c.BreakerWindow)
	lt, lts := dur(&c.LivenessTimeout)
	bt := func() string { return strconv.FormatFloat(c.BreakerThreshold, 'f', -1, 64) }
	bts := func(s string) error {
		f, err := strconv.ParseFloat(s, 64)
		c.BreakerThreshold = f
		return err
	}
	mr := func() string { return strconv.FormatFloat(c.MaxRecordsPerSecond, 'f', -1, 64) }
	mrs := func(s string) error {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return err
		}
		c.MaxRecordsPerSecond = f
		return nil
	}
	return []configVar{
		v("WEIR_BROKERS", "brokers", "Kafka seed brokers, comma separated", bget, bset),
		v("WEIR_GROUP", "group", "consumer group shared by the job's replicas", g, gs),
		v("WEIR_STATE_DIR", "state-dir", "local state directory", sd, sds),
		v("WEIR_METRICS_ADDR", "metrics-addr", "address serving /metrics, /healthz, /readyz (empty disables)", ma, mas),
		v("WEIR_CHECKPOINT_INTERVAL", "checkpoint-interval", "how often a checkpoint commits outputs, state and offsets", ci, cis),
		v("WEIR_START_OFFSET", "start-offset", "where partitions without a committed offset start: earliest or latest", so, sos),
		v("WEIR_UNTIL", "until", "end a bounded run: at the sources' ends when it starts (end) or at a time (RFC 3339)", un, uns),
		v("WEIR_FEATURES_FILE", "features-file", "feature flags: a file of name=value lines or a directory of one file per flag, reloaded on change", ff, ffs),
		v("WEIR_OUTPUT_SUFFIX", "output-suffix", "appended to every sink topic: a reprocessing run writes new versions of its outputs", osf, osfs),
		v("WEIR_TASK_QUEUE_RECORDS", "task-queue-records", "fetched records a task may queue before its partitions pause", tq, tqs),
		v("WEIR_SESSION_TIMEOUT", "session-timeout", "how long the group waits for a silent replica before moving its tasks", se, ses),
		v("WEIR_SHUTDOWN_TIMEOUT", "shutdown-timeout", "bound on the final checkpoint at shutdown", st, sts),
		v("WEIR_LOG_LEVEL", "log-level", "log level: debug, info, warn, error", ll, lls),
		v("WEIR_GUARANTEE", "guarantee", "processing guarantee: exactly-once or at-least-once", gu, gus),
		v("WEIR_ISOLATION", "isolation", "how inputs are read: read_committed or read_uncommitted", is, iss),
		v("WEIR_TRANSACTION_TIMEOUT", "transaction-timeout", "how long the broker keeps an open transaction of this replica", tt, tts),
		v("WEIR_REPLICA_ID", "replica-id", "this replica's name in its transactional id (default: kept in the state dir)", ri, ris),
		v("WEIR_PROVENANCE", "provenance", "add provenance headers (origin, path, checkpoint) to every output", pv, pvs),
		v("WEIR_PPROF", "pprof", "serve Go's profiles at /debug/pprof/ on the metrics address", pp, pps),
		v("WEIR_MEMORY_LIMIT", "memory-limit", "memory the replica budgets for: buffers, queues, state cache, Pebble, GOMEMLIMIT (0: no budget)", ml, mls),
		v("WEIR_MAX_RECORDS_PER_SECOND", "max-records-per-second", "cap on input records read per second by this replica (0: none)", mr, mrs),
		v("WEIR_ERROR_POLICY", "error-policy", "what a record an operator cannot process does: fail, dead-letter or skip", ep, eps),
		v("WEIR_DEAD_LETTER_TOPIC", "dead-letter-topic", "dead-letter topic (default <group>-dlq, created by Weir)", dl, dls),
		v("WEIR_RETRY_ATTEMPTS", "retry-attempts", "calls user code gets for a record failing with a retryable error (1: no retries)", ra, ras),
		v("WEIR_RETRY_INITIAL_INTERVAL", "retry-initial-interval", "first wait before retrying a retryable error", rii, riis),
		v("WEIR_RETRY_MAX_INTERVAL", "retry-max-interval", "longest wait between retries", rmi, rmis),
		v("WEIR_BREAKER_THRESHOLD", "breaker-threshold", "share of an operator's last records that may fail before the replica halts (0: no breaker)", bt, bts),
		v("WEIR_BREAKER_WINDOW", "breaker-window", "how many of an operator's last records the breaker counts", bw, bws),
		v("WEIR_LIVENESS_TIMEOUT", "liveness-timeout", "how long the poll loop may not come round before /healthz fails (0: never)", lt, lts),
		v("WEIR_LEAVE_GROUP_ON_SHUTDOWN", "leave-group-on-shutdown", "leave the consumer group on a clean stop, so tasks move at once (off: wait for this replica's restart)", lg, lgs),
	}
}

// flagValue adapts a configVar to flag.Value.
type flagValue struct{ v configVar }

func (f flagValue) String() string {
	if f.v.get == nil {
		return ""
	}
	return f.v.get()
}
func (f flagValue) Set(s string) error { return f.v.set(s) }

// registerFlags adds one flag per setting to fs, defaulting to the current value.
func (c *Config) registerFlags(fs *flag.FlagSet) {
	for _, v := range configVars(c) {
		fs.Var(flagValue{v}, v.flag, v.usage+" (env "+v.env+")")
	}
}

// validate checks the whole configuration in one place.
func (c *Config) validate() error {
	errs := append([]error(nil), c.envErrors...)
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("no brokers: set WEIR_BROKERS or --brokers"))
	}
	if c.Group == "" {
		errs = append(errs, errors.New("empty consumer group"))
	}
	if c.CheckpointInterval <= 0 {
		errs = append(errs, fmt.Errorf("checkpoint interval %v: must be positive", c.CheckpointInterval))
	}
	if c.SessionTimeout < time.Second {
		errs = append(errs, fmt.Errorf("session timeout %v: must be at least 1s", c.SessionTimeout))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("shutdown timeout %v: must be positive", c.ShutdownTimeout))
	}
	if c.MemoryLimit != 0 && c.MemoryLimit < minMemoryLimit {
		errs = append(errs, fmt.Errorf("memory limit %s: must be at least %s, or 0 for no budget", formatBytes(c.MemoryLimit), formatBytes(minMemoryLimit)))
	}
	if c.MaxRecordsPerSecond < 0 {
		errs = append(errs, fmt.Errorf("max records per second %v: must not be negative (0: no cap)", c.MaxRecordsPerSecond))
	}
	if _, err := parseErrorPolicy(string(c.ErrorPolicy)); err != nil && c.ErrorPolicy != "" {
		errs = append(errs, err)
	}
	if c.RetryAttempts < 1 {
		errs = append(errs, fmt.Errorf("retry attempts %d: must be at least 1 (1: no retries)", c.RetryAttempts))
	}
	if c.RetryInitialInterval <= 0 || c.RetryMaxInterval < c.RetryInitialInterval {
		errs = append(errs, fmt.Errorf("retry intervals %v to %v: must be positive and growing", c.RetryInitialInterval, c.RetryMaxInterval))
	}
	if c.BreakerThreshold < 0 || c.BreakerThreshold >= 1 {
		errs = append(errs, fmt.Errorf("breaker threshold %v: must be in [0, 1) (0: no breaker)", c.BreakerThreshold))
	}
	if c.LivenessTimeout < 0 {
		errs = append(errs, fmt.Errorf("liveness timeout %v: must not be negative (0: no check)", c.LivenessTimeout))
	}
	if c.BreakerWindow < 1 {
		errs = append(errs, fmt.Errorf("breaker window %d: must be at least 1", c.BreakerWindow))
	}
	if c.TaskQueueRecords < 1 {
		errs = append(errs, fmt.Errorf("task queue records %d: must be at least 1", c.TaskQueueRecords))
	}
	if _, _, err := parseUntil(c.Until); err != nil {
		errs = append(errs, err)
	}
	switch c.StartOffset {
	case "earliest", "latest":
	default:
		errs = append(errs, fmt.Errorf("start offset %q: want earliest or latest", c.StartOffset))
	}
	switch c.Guarantee {
	case ExactlyOnce, AtLeastOnce:
	default:
		errs = append(errs, fmt.Errorf("guarantee %q: want %s or %s", c.Guarantee, ExactlyOnce, AtLeastOnce))
	}
	switch c.Isolation {
	case "read_committed", "read_uncommitted":
	default:
		errs = append(errs, fmt.Errorf("isolation %q: want read_committed or read_uncommitted", c.Isolation))
	}
	if c.Guarantee == ExactlyOnce && c.TransactionTimeout <= c.CheckpointInterval {
		errs = append(errs, fmt.Errorf("transaction timeout %v: must exceed the checkpoint interval %v", c.TransactionTimeout, c.CheckpointInterval))
	}
	if strings.ContainsAny(c.ReplicaID, " \t\n") {
		errs = append(errs, fmt.Errorf("replica id %q: must not contain whitespace", c.ReplicaID))
	}
	if _, err := zap.ParseAtomicLevel(c.LogLevel); err != nil {
		errs = append(errs, fmt.Errorf("log level %q: %w", c.LogLevel, err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}
