package engine

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"golang.org/x/time/rate"
)

// ErrorPolicy says what happens to a record an operator cannot process:
// one that does not decode, one a user function returns an error for or
// panics on, one a sink cannot encode or Kafka would refuse (too large).
type ErrorPolicy string

const (
	// Fail stops the task at the record: nothing at or after it is
	// committed, and the job stops with a *RecordError naming it. A
	// restart stops at the same record again.
	Fail ErrorPolicy = "fail"
	// DeadLetter writes the input record to the dead-letter topic, with
	// headers saying where it came from and why it failed (see
	// DeadLetterHeaders), and goes on with the next. Exactly once, the dead
	// letter commits in the checkpoint's transaction: a crash neither loses
	// nor doubles it.
	DeadLetter ErrorPolicy = "dead-letter"
	// Skip drops the record at the operator that failed, counts it
	// (weir_records_skipped_total) and logs it, at most a few times a
	// second, and goes on with the next.
	Skip ErrorPolicy = "skip"
)

func parseErrorPolicy(s string) (ErrorPolicy, error) {
	switch p := ErrorPolicy(s); p {
	case Fail, DeadLetter, Skip:
		return p, nil
	}
	return "", fmt.Errorf("error policy %q: want %s, %s or %s", s, Fail, DeadLetter, Skip)
}

// Error classes name, in the dead-letter header weir.error.class and in
// logs, how a record failed.
const (
	ClassDecode   = "decode"    // its value did not decode at the source
	ClassError    = "error"     // a user function returned an error
	ClassPanic    = "panic"     // a user function panicked
	ClassEncode   = "encode"    // a sink could not encode an output
	ClassTooLarge = "too-large" // an output is larger than its topic takes
)

// Dead-letter headers: a dead letter is the input record as it was read
// (key, value, headers, timestamp) plus these.
const (
	HeaderErrorTopic     = "weir.error.topic"     // input topic ("" for a timer)
	HeaderErrorPartition = "weir.error.partition" // input partition
	HeaderErrorOffset    = "weir.error.offset"    // input offset
	HeaderErrorOperator  = "weir.error.operator"  // the operator that failed
	HeaderErrorClass     = "weir.error.class"     // decode, error, panic, encode, too-large
	HeaderErrorMessage   = "weir.error.message"   // the error
	HeaderErrorAttempts  = "weir.error.attempts"  // calls made, retries included
	HeaderErrorTime      = "weir.error.time"      // when it failed, RFC 3339
	HeaderErrorTask      = "weir.error.task"      // the task, e.g. 1_3
	HeaderErrorTimer     = "weir.error.timer"     // a failed timer's time, RFC 3339
)

// DeadLetterHeaders lists the headers Weir adds to a dead letter.
var DeadLetterHeaders = []string{
	HeaderErrorTopic, HeaderErrorPartition, HeaderErrorOffset, HeaderErrorOperator, HeaderErrorClass,
	HeaderErrorMessage, HeaderErrorAttempts, HeaderErrorTime, HeaderErrorTask, HeaderErrorTimer,
}

// Retryable marks err as transient: an enrichment service that timed out,
// a rate limit. The operator's call is retried with exponential backoff
// and jitter, the task holding its place (and the checkpoint waiting),
// up to Config.RetryAttempts calls; if it still fails, the operator's
// error policy applies. A function that returns it must be safe to call
// again for the same record.
func Retryable(err error) error {
	if err == nil {
		return nil
	}
	return &retryableError{err}
}

// IsRetryable reports whether err, or an error it wraps, was marked with
// Retryable.
func IsRetryable(err error) bool {
	var r *retryableError
	return errors.As(err, &r)
}

type retryableError struct{ err error }

func (e *retryableError) Error() string { return e.err.Error() }
func (e *retryableError) Unwrap() error { return e.err }

// panicError is a recovered panic of user code.
type panicError struct{ v any }

func (e *panicError) Error() string { return fmt.Sprintf("panic: %v", e.v) }

// OnError sets the error policy of the operator that produces s (a
// source's decoding, a Map, a process function...), over the job's
// (Config.ErrorPolicy), and returns s.
func OnError[T any](s Stream[T], p ErrorPolicy) Stream[T] {
	s.job.SetErrorPolicy(s.Name(), p)
	return s
}

// SetErrorPolicy sets operator op's error policy, for connector and
// operator packages (streams have OnError).
func (j *Job) SetErrorPolicy(op string, p ErrorPolicy) {
	if _, err := parseErrorPolicy(string(p)); err != nil {
		j.buildErr(fmt.Errorf("operator %s: %w", op, err))
		return
	}
	if j.policies == nil {
		j.policies = map[string]ErrorPolicy{}
	}
	j.policies[op] = p
}

// policy returns operator op's error policy.
func (j *Job) policy(op string) ErrorPolicy {
	if p, ok := j.policies[op]; ok {
		return p
	}
	if j.cfg.ErrorPolicy == "" {
		return Fail
	}
	return j.cfg.ErrorPolicy
}

// usesDeadLetters reports whether any operator may dead-letter.
func (j *Job) usesDeadLetters() bool {
	if j.cfg.ErrorPolicy == DeadLetter {
		return true
	}
	for _, p := range j.policies {
		if p == DeadLetter {
			return true
		}
	}
	return false
}

// breakerSettings is the circuit breaker's configuration of the moment;
// gen changes at every resume, which resets every operator's window.
type breakerSettings struct {
	threshold float64
	window    int
	gen       uint64
}

// failureControl is a replica's circuit breaker: the settings every
// task's guards count against, and whether the replica is halted.
type failureControl struct {
	settings atomic.Pointer[breakerSettings]
	halt     atomic.Pointer[string] // why, while halted

	mu       sync.Mutex
	onChange func(halted bool, why string) // readiness, metrics, logs, waking tasks
}

func newFailureControl(threshold float64, window int) *failureControl {
	fc := &failureControl{}
	fc.settings.Store(&breakerSettings{threshold: threshold, window: window})
	return fc
}

// halted reports whether the replica is halted, and why.
func (fc *failureControl) halted() (bool, string) {
	if fc == nil {
		return false, ""
	}
	if p := fc.halt.Load(); p != nil {
		return true, *p
	}
	return false, ""
}

// trip halts the replica; only the first trip of a halt counts.
func (fc *failureControl) trip(why string) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if fc.halt.Load() != nil {
		return
	}
	fc.halt.Store(&why)
	if fc.onChange != nil {
		fc.onChange(true, why)
	}
}

// resume ends a halt, with a new threshold if threshold > 0, and resets
// every operator's window. It reports whether the replica was halted.
func (fc *failureControl) resume(threshold float64) bool {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	s := *fc.settings.Load()
	if threshold > 0 {
		s.threshold = threshold
	}
	s.gen++
	fc.settings.Store(&s)
	was := fc.halt.Swap(nil) != nil
	if fc.onChange != nil {
		fc.onChange(false, "")
	}
	return was
}

// breakerWindow remembers which of an operator's last n records failed.
type breakerWindow struct {
	bits               []uint64
	n, pos, len, fails int
	gen                uint64
}

func (w *breakerWindow) reset(n int, gen uint64) {
	*w = breakerWindow{n: n, gen: gen, bits: make([]uint64, (n+63)/64)}
}

func (w *breakerWindow) add(fail bool) {
	if w.n == 0 {
		return
	}
	word, bit := w.pos/64, uint64(1)<<(w.pos%64)
	if w.len == w.n {
		if w.bits[word]&bit != 0 {
			w.fails--
		}
	} else {
		w.len++
	}
	if fail {
		w.bits[word] |= bit
		w.fails++
	} else {
		w.bits[word] &^= bit
	}
	w.pos++
	if w.pos == w.n {
		w.pos = 0
	}
}

// Guard runs one operator's user code in one task and applies the
// operator's error policy to what fails: retries of errors marked
// Retryable, then fail, dead-letter or skip, and the circuit breaker's
// count. Operators build one per task, when they are built, and call Do
// per record.
type Guard struct {
	t      *Task
	op     string
	class  string
	policy ErrorPolicy
	stats  *OpStats
	win    breakerWindow
	logs   *rate.Limiter
	divert func(cause error) error
}

// Divert makes the guard hand what fails (after retries) to fn instead of
// the error policy: an operator routing invalid records to a side output.
// fn's error, if any, stops the task. Diverted records count as failed,
// not against the circuit breaker: the job handles them.
func (g *Guard) Divert(fn func(cause error) error) { g.divert = fn }

// Guard returns the guard of operator op in the task; class is how its
// failures are named (ClassError for user functions, ClassDecode for a
// source's decoding, ClassEncode for a sink's encoding).
func (t *Task) Guard(op, class string) *Guard {
	g := &Guard{t: t, op: op, class: class, policy: t.job.policy(op), stats: t.Stats(op), logs: rate.NewLimiter(2, 5)}
	return g
}

// Policy is the guard's error policy.
func (g *Guard) Policy() ErrorPolicy { return g.policy }

// Do calls fn for the record or timer the task is handling. It returns
// true when fn succeeded; false and nil when fn failed and the policy
// dead-lettered or skipped the record, which the operator then drops; and
// an error when the task must stop (the fail policy, or a failure further
// down the chain, passed up unchanged).
func (g *Guard) Do(fn func() error) (bool, error) {
	err := callGuarded(fn)
	if err == nil {
		g.count(false)
		return true, nil
	}
	return g.after(err, fn)
}

// after handles err, the first failure of fn.
func (g *Guard) after(err error, fn func() error) (bool, error) {
	if below(err) {
		return false, err
	}
	attempts := 1
	if IsRetryable(err) && !isPanic(err) {
		attempts, err = g.retry(fn, err)
		if err == nil {
			g.count(false)
			return true, nil
		}
		if below(err) {
			return false, err
		}
	}
	class := g.class
	if isPanic(err) {
		class = ClassPanic
	}
	return false, g.fail(class, err, attempts)
}

// Reject applies the policy to a record the operator refuses without
// calling user code (an output too large for its topic): nil when it was
// dead-lettered or skipped.
func (g *Guard) Reject(class string, err error) error {
	return g.fail(class, err, 1)
}

// callGuarded calls fn, turning a panic into a *panicError.
func callGuarded(fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &panicError{p}
		}
	}()
	return fn()
}

func isPanic(err error) bool {
	var p *panicError
	return errors.As(err, &p)
}

// below reports whether err is a failure of an operator further down the
// chain (which applied its own policy): it passes up as it is.
func below(err error) bool {
	var oe *OperatorError
	var re *RecordError
	return errors.As(err, &oe) || errors.As(err, &re)
}

// retry calls fn again with exponential backoff while it fails with a
// retryable error, up to the configured attempts; it returns the last
// error and how many calls were made in all.
func (g *Guard) retry(fn func() error, first error) (int, error) {
	cfg := g.t.job.cfg
	attempts := 1
	if cfg.RetryAttempts <= 1 {
		return attempts, first
	}
	bo := &backoff.ExponentialBackOff{
		InitialInterval: cfg.RetryInitialInterval, RandomizationFactor: 0.5, Multiplier: 2, MaxInterval: cfg.RetryMaxInterval,
	}
	bo.Reset()
	last := first
	_, err := backoff.Retry(g.t.ctx, func() (struct{}, error) {
		attempts++
		g.stats.Retried++
		err := callGuarded(fn)
		last = err
		if err == nil {
			return struct{}{}, nil
		}
		if below(err) || !IsRetryable(err) || isPanic(err) {
			return struct{}{}, backoff.Permanent(err)
		}
		return struct{}{}, err
	}, backoff.WithBackOff(bo), backoff.WithMaxTries(uint(cfg.RetryAttempts-1)), backoff.WithMaxElapsedTime(0))
	if err == nil {
		return attempts, nil
	}
	if g.t.ctx.Err() != nil {
		// Stopping: the record is redone by whoever runs the task next.
		return attempts, &OperatorError{Operator: g.op, Err: fmt.Errorf("retrying: %w", g.t.ctx.Err())}
	}
	return attempts, last
}

// fail applies the policy to err, which the record or timer in hand met.
func (g *Guard) fail(class string, err error, attempts int) error {
	if g.divert != nil {
		g.stats.Failed++
		if derr := g.divert(err); derr != nil {
			return &OperatorError{Operator: g.op, Err: errors.Join(err, derr)}
		}
		return nil
	}
	if g.policy == Fail {
		return &OperatorError{Operator: g.op, Err: err}
	}
	g.stats.Failed++
	switch g.policy {
	case DeadLetter:
		if derr := g.t.deadLetter(g.op, class, err, attempts); derr != nil {
			return &OperatorError{Operator: g.op, Err: errors.Join(err, derr)}
		}
		g.stats.DeadLettered++
	case Skip:
		g.stats.Skipped++
	}
	if g.logs.Allow() {
		fields := append(g.t.inHand(), zap.String("operator", g.op), zap.String("class", class),
			zap.Int("attempts", attempts), zap.Error(err), zap.String("policy", string(g.policy)))
		g.t.log.Warn("record failed", fields...)
	}
	g.count(true)
	return nil
}

// count adds one record's outcome to the operator's breaker window, and
// trips the breaker when more than the threshold of the window failed.
func (g *Guard) count(failed bool) {
	if g.policy == Fail || g.t.failures == nil {
		return
	}
	s := g.t.failures.settings.Load()
	if s.window <= 0 || s.threshold <= 0 {
		return
	}
	if g.win.gen != s.gen || g.win.n != s.window || g.win.bits == nil {
		g.win.reset(s.window, s.gen)
	}
	g.win.add(failed)
	if failed && float64(g.win.fails) > s.threshold*float64(s.window) {
		why := fmt.Sprintf("circuit breaker open: operator %s in task %s: %d of its last %d records failed (more than %s); "+
			"fix the cause, then resume (POST /breaker/resume, or weir breaker resume) or restart the replica",
			g.op, g.t.id, g.win.fails, s.window, strconv.FormatFloat(s.threshold*100, 'f', -1, 64)+"%")
		g.t.failures.trip(why)
	}
}

// inHand describes, for logs, the record or timer the task is handling.
func (t *Task) inHand() []zap.Field {
	if r := t.cur; r != nil {
		return []zap.Field{zap.String("topic", r.Topic), zap.Int32("partition", r.Partition), zap.Int64("offset", r.Offset)}
	}
	if t.curTimer.set {
		return []zap.Field{zap.Time("timer", time.UnixMilli(t.curTimer.at)), zap.ByteString("key", t.curTimer.key)}
	}
	return nil
}

// timerInHand is the timer a task is firing.
type timerInHand struct {
	set    bool
	at     int64
	domain TimeDomain
	key    []byte
}

// deadLetter writes the record or timer in hand to the dead-letter topic,
// in the task's current epoch: it commits with the checkpoint.
func (t *Task) deadLetter(op, class string, cause error, attempts int) error {
	dlq := t.job.dlq
	if dlq.name == "" || dlq.partitions <= 0 {
		return errors.New("no dead-letter topic (the job resolves it at start)")
	}
	now := t.clock.Now()
	out := &kgo.Record{
		Topic: dlq.name, Partition: t.id.Partition % dlq.partitions, Context: controlRecord,
	}
	var topic, partition, offset string
	if r := t.cur; r != nil {
		out.Key, out.Value, out.Timestamp = r.Key, r.Value, r.Timestamp
		out.Headers = append(out.Headers, r.Headers...)
		topic, partition, offset = r.Topic, strconv.Itoa(int(r.Partition)), strconv.FormatInt(r.Offset, 10)
	} else if t.curTimer.set {
		out.Key, out.Timestamp = t.curTimer.key, time.UnixMilli(t.curTimer.at)
		partition, offset = strconv.Itoa(int(t.id.Partition)), "-1"
		out.Headers = append(out.Headers, kgo.RecordHeader{Key: HeaderErrorTimer, Value: []byte(time.UnixMilli(t.curTimer.at).UTC().Format(time.RFC3339Nano))})
	}
	msg := cause.Error()
	if len(msg) > 4096 {
		msg = msg[:4096]
	}
	out.Headers = append(out.Headers,
		kgo.RecordHeader{Key: HeaderErrorTopic, Value: []byte(topic)},
		kgo.RecordHeader{Key: HeaderErrorPartition, Value: []byte(partition)},
		kgo.RecordHeader{Key: HeaderErrorOffset, Value: []byte(offset)},
		kgo.RecordHeader{Key: HeaderErrorOperator, Value: []byte(op)},
		kgo.RecordHeader{Key: HeaderErrorClass, Value: []byte(class)},
		kgo.RecordHeader{Key: HeaderErrorMessage, Value: []byte(msg)},
		kgo.RecordHeader{Key: HeaderErrorAttempts, Value: []byte(strconv.Itoa(attempts))},
		kgo.RecordHeader{Key: HeaderErrorTime, Value: []byte(now.UTC().Format(time.RFC3339Nano))},
		kgo.RecordHeader{Key: HeaderErrorTask, Value: []byte(t.id.String())},
	)
	t.Produce(out)
	return nil
}

// deadLetterTopic is where a job's dead letters go.
type deadLetterTopic struct {
	name       string
	partitions int32
}

// Apply calls fn(v), user code of g's operator, under g (see Guard.Do),
// without a closure per record on the path where fn succeeds.
func Apply[T, U any](g *Guard, fn func(T) (U, error), v T) (U, bool, error) {
	u, err := applyGuarded(fn, v)
	if err == nil {
		g.count(false)
		return u, true, nil
	}
	ok, err := g.after(err, func() error {
		var err error
		u, err = fn(v)
		return err
	})
	return u, ok, err
}

func applyGuarded[T, U any](fn func(T) (U, error), v T) (u U, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &panicError{p}
		}
	}()
	return fn(v)
}

// Now is the task's clock: processing time.
func (t *Task) Now() time.Time { return t.clock.Now() }

// recordOverheadBytes approximates what a record costs in a batch beyond
// its key, value and headers.
const recordOverheadBytes = 64

// OutputCheck is what a sink checks its outputs against in a task: its
// topic's limits as found at start. Sinks get one per task (Task.OutputCheck).
type OutputCheck struct {
	t        *Task
	topic    string
	maxBytes int
	retain   time.Duration
}

// OutputCheck returns the check of outputs to topic; nil (which checks
// nothing) when the job did not describe the topic (a local task).
func (t *Task) OutputCheck(topic string) *OutputCheck {
	st, ok := t.job.sinkTopics[topic]
	if !ok {
		return nil
	}
	return &OutputCheck{t: t, topic: topic, maxBytes: st.maxBytes, retain: st.retention}
}

// Check checks an output before the sink produces it: an error when it is
// larger than its topic (or the producer) takes, which Kafka would refuse
// and fail the checkpoint with; and it counts (and logs, now and then) an
// output stamped older than its topic's time retention, which the broker
// may delete soon after it is written.
func (c *OutputCheck) Check(r *kgo.Record) error {
	if c == nil {
		return nil
	}
	size := len(r.Key) + len(r.Value) + recordOverheadBytes
	for _, h := range r.Headers {
		size += len(h.Key) + len(h.Value)
	}
	if c.maxBytes > 0 && size > c.maxBytes {
		return fmt.Errorf("output of about %d bytes to %s is larger than the %d bytes it takes (max.message.bytes, or the producer's batch size)", size, r.Topic, c.maxBytes)
	}
	if t := c.t; c.retain > 0 && !r.Timestamp.IsZero() && t.clock.Now().Sub(r.Timestamp) > c.retain {
		t.pastRetention[r.Topic]++
		t.pastRetentionAll++
		if n := t.pastRetentionAll; n&(n-1) == 0 { // 1, 2, 4, 8...: rarer and rarer
			t.log.Warn("output older than its topic's retention: the broker may delete it soon after it is written (stamp outputs with connectors.WithProcessingTime, or raise the topic's retention.ms)",
				zap.String("topic", r.Topic), zap.Time("timestamp", r.Timestamp), zap.Duration("retention", c.retain), zap.Int("so_far_in_task", t.pastRetentionAll))
		}
	}
	return nil
}
