package engine

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/weirstream/weir/features"
	"github.com/weirstream/weir/metrics"
	"github.com/weirstream/weir/observe"
)

// Job is a stream-processing program: a topology of sources, operators and
// sinks, built in code and then run with Run or Main. Building is not safe
// for concurrent use; a Job runs once.
type Job struct {
	name string
	cfg  Config
	// features are the job's feature flags (Features).
	features *features.Set
	// tuneGoMem is set when Main set the Go runtime's memory limit from
	// the budget: the runtime then keeps it tuned.
	tuneGoMem bool

	sources []*source
	sinks   map[string]bool
	// outputs are the sinks' topics as declared, before OutputSuffix.
	outputs  map[string]bool
	names    map[string]int
	stages   int
	internal []*InternalTopic
	// partitions is the partition count of every stage, set at start.
	partitions int32
	stateful   bool
	// changelogs are the stateful operators' changelog topics, by
	// operator id (the state registry's, which prefixes every state key).
	changelogs map[string]*InternalTopic
	buildErrs  []error
	// policies are the operators' own error policies, by operator name;
	// dlq is where dead letters go, resolved at start.
	policies map[string]ErrorPolicy
	dlq      deadLetterTopic
	// sinkTopics describes the sink topics, as found at start.
	sinkTopics map[string]sinkTopic
	// flags is the flag set Weir's flags are defined in (RegisterFlags).
	flags *flag.FlagSet

	mu struct {
		sync.Mutex
		running bool
	}
}

type source struct {
	topic, name string
	stage       int
	// internal is set for a repartition topic, whose name is only known
	// once the consumer group is (at Run).
	internal *InternalTopic
	// fromStart makes the topic read from its start when the group has no
	// offset for it, whatever the job's start offset: a table a join
	// reads must be read whole. (Internal topics always are.)
	fromStart bool
	// rate caps the records read per second from the topic; 0 for none.
	rate  float64
	build func(*Task) (SourceFunc, error)
}

// InternalTopic is a topic Weir creates and owns, such as a repartition
// topic between two stages. Its name is <group>-<suffix>, fixed when the
// job starts, so two jobs, or two deployments of one job under different
// groups, never share one.
type InternalTopic struct {
	suffix string
	// from is the stage writing it; it gets that stage's partition count.
	from int
	name string
	// compact marks a changelog: a compacted topic, where the latest
	// record per key is the state.
	compact bool
}

// Name is the topic's name; empty until the job starts.
func (t *InternalTopic) Name() string { return t.name }

// NewJob returns an empty job. name identifies the job: the default
// consumer group, the state directory, metric labels.
func NewJob(name string, opts ...Opt) *Job {
	j := &Job{name: name, cfg: defaultConfig(name), sinks: map[string]bool{}, outputs: map[string]bool{}, names: map[string]int{}, stages: 1, changelogs: map[string]*InternalTopic{},
		features: features.New()}
	for _, o := range opts {
		o.apply(&j.cfg)
	}
	return j
}

// Name is the job's name.
func (j *Job) Name() string { return j.name }

// Features returns the job's feature flags: a user function asks them at
// any record (job.Features().Bool("recommendations", true)) to switch a
// path off without a restart. They come from WEIR_FEATURE_<NAME>
// variables and, while the job runs, from Config.FeaturesFile, reloaded
// when it changes; their values are on the metrics endpoint
// (weir_feature_flag).
func (j *Job) Features() *features.Set { return j.features }

// Config returns a copy of the job's configuration as it stands.
func (j *Job) Config() Config { return j.cfg }

// AddSource registers a source topic of the job's first stage, for
// connector packages: build runs once per task and returns the function
// feeding that task's records of the topic into its operators.
func (j *Job) AddSource(topic, name string, build func(*Task) (SourceFunc, error)) {
	j.sources = append(j.sources, &source{topic: topic, name: name, build: build})
}

// buildErr records a mistake found while building the topology; Run
// reports them all before starting.
func (j *Job) buildErr(err error) { j.buildErrs = append(j.buildErrs, err) }

// TopologyError records a mistake an operator or connector package found
// while the topology was built (a bad option, say): Run returns it, with
// every other, as ErrTopology before reading anything.
func (j *Job) TopologyError(err error) { j.buildErr(err) }

// NewStage starts a stage: a chain of operators reading topics that the
// stage before it wrote. It returns the stage number.
func (j *Job) NewStage() int {
	j.stages++
	return j.stages - 1
}

// addInternalSource declares an internal topic written by stage from and
// read, as a source, by stage to. Weir creates it at start with as many
// partitions as stage from has.
func (j *Job) addInternalSource(suffix string, from, to int, name string, build func(*Task) (SourceFunc, error)) *InternalTopic {
	it := &InternalTopic{suffix: suffix, from: from}
	j.internal = append(j.internal, it)
	j.sources = append(j.sources, &source{name: name, stage: to, internal: it, build: build})
	return it
}

// AddInternalTopic declares an internal topic stage from writes and no
// stage reads (a late-data topic): Weir creates it at start with stage
// from's partition count.
func (j *Job) AddInternalTopic(suffix string, from int) *InternalTopic {
	it := &InternalTopic{suffix: suffix, from: from}
	j.internal = append(j.internal, it)
	return it
}

// AddStatefulOperator declares that operator op of stage keeps state in
// the task's store (under a state.Registry named op): Weir opens the store
// and gives the operator a changelog topic, <group>-<op>-changelog,
// compacted, with a partition per task.
func (j *Job) AddStatefulOperator(op string, stage int) {
	j.stateful = true
	if _, ok := j.changelogs[op]; ok {
		return
	}
	it := &InternalTopic{suffix: topicSafe(op) + "-changelog", from: stage, compact: true}
	j.internal = append(j.internal, it)
	j.changelogs[op] = it
}

// topicSafe maps s to the characters Kafka allows in a topic name.
func topicSafe(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			b[i] = '-'
		}
	}
	return string(b)
}

// resolveInternalTopics names the internal topics after the group.
func (j *Job) resolveInternalTopics(group string) {
	for _, it := range j.internal {
		it.name = group + "-" + it.suffix
	}
	for _, s := range j.sources {
		if s.internal != nil {
			s.topic = s.internal.name
		}
	}
}

// stageOf returns the stage reading topic.
func (j *Job) stageOf(topic string) (int, bool) {
	for _, s := range j.sources {
		if s.topic == topic {
			return s.stage, true
		}
	}
	return 0, false
}

// stageTopics returns the topics stage reads.
func (j *Job) stageTopics(stage int) []string {
	var ts []string
	for _, s := range j.sources {
		if s.stage == stage {
			ts = append(ts, s.topic)
		}
	}
	return ts
}

// AddSinkTopic declares a topic the job writes, so Run can check that it
// exists before consuming anything.
func (j *Job) AddSinkTopic(topic string) { j.sinks[topic] = true }

// AddOutputTopic declares a topic a sink writes the job's results to:
// Config.OutputSuffix applies to it (see OutputTopic), and Run checks that
// the topic it names exists.
func (j *Job) AddOutputTopic(topic string) { j.outputs[topic] = true }

// OutputTopic returns the topic a sink declared with AddOutputTopic writes
// to when the job runs: topic with Config.OutputSuffix. Call it when
// building a task, not earlier: the configuration is final only then.
func (j *Job) OutputTopic(topic string) string { return topic + j.cfg.OutputSuffix }

// Operator names: what Job.names holds for a name.
const (
	// nameReserved: UniqueName handed the name out as an operator's
	// default; the operator claims it next.
	nameReserved = 1
	// nameTaken: an operator has the name.
	nameTaken = 2
)

// UniqueName returns an unused operator name made from base (base, else
// base-2, base-3, ...) and reserves it: for the default name of an
// operator the user need not name (a map, a sink). A name the user gives
// is claimed as given, by Derive or NewStream, and never renamed.
func (j *Job) UniqueName(base string) string {
	name := base
	for i := 2; j.names[name] != 0; i++ {
		name = base + "-" + strconv.Itoa(i)
	}
	j.names[name] = nameReserved
	return name
}

// ClaimName gives name to an operator that derives no stream (a sink of
// its own): a name another operator has is a topology error, as for
// Derive.
func (j *Job) ClaimName(name string) string { return j.claimName(name) }

// claimName gives name to an operator. A name another operator has is a
// topology error, as in Flink and Kafka Streams: state, changelog topics
// and metrics are kept under an operator's name, so renaming one silently
// would let reordering the code swap two operators' state.
func (j *Job) claimName(name string) string {
	if j.names[name] == nameTaken {
		j.buildErr(fmt.Errorf("two operators are named %q: each needs a name of its own, since its state, changelog and metrics are kept under it", name))
	}
	j.names[name] = nameTaken
	return name
}

// validateTopology checks what can be checked without a broker.
func (j *Job) validateTopology() error {
	if len(j.sources) == 0 {
		return fmt.Errorf("%w: job %q has no source", ErrTopology, j.name)
	}
	if err := errors.Join(j.buildErrs...); err != nil {
		return fmt.Errorf("%w: %w", ErrTopology, err)
	}
	seen := map[string]bool{}
	for _, s := range j.sources {
		if s.internal != nil {
			continue
		}
		if s.topic == "" {
			return fmt.Errorf("%w: source with an empty topic name", ErrTopology)
		}
		if seen[s.topic] {
			return fmt.Errorf("%w: topic %q is read by two sources; subscribe twice to one source instead", ErrTopology, s.topic)
		}
		seen[s.topic] = true
	}
	return nil
}

// sourceTopics returns the user's source topics, then the internal ones.
func (j *Job) sourceTopics() []string {
	var ts []string
	for _, s := range j.sources {
		if s.internal == nil {
			ts = append(ts, s.topic)
		}
	}
	for _, s := range j.sources {
		if s.internal != nil {
			ts = append(ts, s.topic)
		}
	}
	return ts
}

// userSourceTopics returns the source topics the user declared.
// LimitSourceRate caps how many records per second each replica reads
// from source topic, for connector packages (see
// connectors.WithMaxRecordsPerSecond). Fetching of the topic pauses while
// the replica is ahead of the cap; the backlog waits in Kafka.
func (j *Job) LimitSourceRate(topic string, perSecond float64) {
	for _, s := range j.sources {
		if s.topic == topic && s.internal == nil {
			s.rate = perSecond
			return
		}
	}
	j.buildErr(fmt.Errorf("rate cap on %q, which is not a source of the job", topic))
}

// sourceRates returns the rate caps of source topics that have one.
func (j *Job) sourceRates() map[string]float64 {
	m := map[string]float64{}
	for _, s := range j.sources {
		if s.rate > 0 {
			m[s.topic] = s.rate
		}
	}
	return m
}

// isUserSource reports whether topic is one of the job's own inputs.
func (j *Job) isUserSource(topic string) bool {
	for _, s := range j.sources {
		if s.internal == nil && s.topic == topic {
			return true
		}
	}
	return false
}

// readFromStart reports whether topic is one the job reads from its start
// when the group has no offset for it, whatever the configured start
// offset: an internal topic, whose records the job's upstream stage
// committed, or a joined table.
func (j *Job) readFromStart(topic string) bool {
	for _, s := range j.sources {
		if (s.internal != nil && s.internal.name == topic) || (s.fromStart && s.topic == topic) {
			return true
		}
	}
	return false
}

func (j *Job) userSourceTopics() []string {
	var ts []string
	for _, s := range j.sources {
		if s.internal == nil {
			ts = append(ts, s.topic)
		}
	}
	return ts
}

// Run runs the job until ctx is done or a fatal error stops it. On ctx's
// end it finishes the batch in hand, commits what was processed once its
// outputs are acknowledged, leaves the consumer group and returns nil. A
// record that cannot be processed returns a *RecordError after committing
// everything before it.
func (j *Job) Run(ctx context.Context) error {
	j.mu.Lock()
	if j.mu.running {
		j.mu.Unlock()
		return errors.New("weir: job is already running")
	}
	j.mu.running = true
	j.mu.Unlock()

	log := j.cfg.logger
	if log == nil {
		var err error
		if log, err = newLogger(j.cfg.LogLevel); err != nil {
			// An invalid level is reported below; the error goes to a
			// logger at info meanwhile.
			log, _ = newLogger("info")
		}
		defer func() { _ = log.Sync() }()
	}
	log = log.With(zap.String("job", j.name))
	// What stops the job before it runs (a bad setting, a missing topic)
	// goes to the same JSON log as everything after, at error level.
	if err := j.cfg.validate(); err != nil {
		log.Error("job cannot start", zap.Error(err))
		return err
	}
	if err := j.validateTopology(); err != nil {
		log.Error("job cannot start", zap.Error(err))
		return err
	}
	obs := j.cfg.observer
	var prom *metrics.Prometheus
	if obs == nil {
		prom = metrics.New(j.name)
		obs = prom
	}
	if j.cfg.FeaturesFile != "" {
		if err := j.features.Watch(j.cfg.FeaturesFile, log); err != nil {
			log.Error("job cannot start", zap.Error(err))
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
		defer j.features.Close()
		log.Info("feature flags", zap.String("file", j.cfg.FeaturesFile), zap.Any("flags", j.features.Values()))
	}
	if prom != nil {
		_ = prom.RegisterForJob(j.features)
	}
	rt := newRuntime(j, log, obs)
	if j.cfg.MetricsAddr != "" {
		srv, err := serveHTTP(j.cfg.MetricsAddr, prom, rt, j.cfg.Pprof)
		if err != nil {
			return err
		}
		log.Info("serving metrics and probes", zap.String("addr", srv.addr), zap.String("metrics", "http://"+srv.addr+"/metrics"))
		defer srv.close()
	}
	err := rt.explainAuth(rt.run(ctx))
	if err != nil && !rt.stoppedByFatal() {
		log.Error("job cannot start", zap.Error(err))
	}
	return err
}

// RegisterFlags defines Weir's flags (--brokers, --group, ..., each also
// read from its WEIR_* variable, which it reads now) in fs, bound to the
// job's configuration: flags override the variables, which override the
// code's options. A job with flags of its own defines them in the same
// set, registers Weir's, parses, builds its topology with its values and
// calls Main, which parses nothing again:
//
//	topic := flag.String("topic", "clicks", "topic to read")
//	job := engine.NewJob("clicks")
//	job.RegisterFlags(flag.CommandLine)
//	flag.Parse()
//	clicks := connectors.KafkaSource(job, *topic, codec.JSON[Click]())
//	...
//	job.Main()
//
// A flag of the program's with the name of one of Weir's panics, as flag
// does for any flag defined twice.
func (j *Job) RegisterFlags(fs *flag.FlagSet) {
	if j.flags == fs {
		return
	}
	FromEnv().apply(&j.cfg)
	j.cfg.registerFlags(fs)
	j.flags = fs
}

// RunOwningProcess is Run for a program that runs the job and nothing
// else, as Main does: the job's memory budget also sets the Go runtime's
// soft memory limit (unless GOMEMLIMIT does) and keeps it tuned, and its
// collector's target (unless GOGC does). Run, which may share a process,
// leaves both alone.
func (j *Job) RunOwningProcess(ctx context.Context) error {
	if b, ok := newMemoryBudget(j.cfg.MemoryLimit); ok {
		j.tuneGoMem = b.setGoMemLimit()
	}
	return j.Run(ctx)
}

// Main runs the job as a program: unless the program did (see
// RegisterFlags), it defines Weir's flags in flag.CommandLine, next to any
// the program defined there, and parses the command line. It runs until
// SIGTERM or SIGINT, and exits 0 after a clean shutdown, 2 on bad flags
// and 1 on any error, which it logs.
func (j *Job) Main() {
	fs := j.flags
	if fs == nil {
		fs = flag.CommandLine
		j.RegisterFlags(fs)
	}
	if !fs.Parsed() {
		if err := fs.Parse(os.Args[1:]); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				os.Exit(0)
			}
			os.Exit(2)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	err := j.RunOwningProcess(ctx)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", j.name, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func newLogger(level string) (*zap.Logger, error) {
	lvl, err := zap.ParseAtomicLevel(level)
	if err != nil {
		return nil, err
	}
	cfg := zap.NewProductionConfig()
	cfg.Level = lvl
	cfg.EncoderConfig.TimeKey = "ts"
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	cfg.Sampling = nil // lifecycle lines are rare and each one matters
	return cfg.Build()
}

var _ observe.Observer = (*metrics.Prometheus)(nil)
