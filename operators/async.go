package operators

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/sony/gobreaker/v2"

	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/observe"
	"github.com/weirstream/weir/windowing"
)

// AsyncOpt configures an AsyncMap.
type AsyncOpt func(*asyncOptions)

type asyncOptions struct {
	name        string
	concurrency int
	timeout     time.Duration
	unordered   bool
	attempts    int
	fallback    any // func(T, error) (U, error)
	breaker     *gobreaker.Settings
	noBreaker   bool
}

// AsyncName names the operator (default async-N).
func AsyncName(name string) AsyncOpt { return func(o *asyncOptions) { o.name = name } }

// AsyncConcurrency bounds the calls in flight per task (default 100, as
// Flink's async capacity). A task with that many in flight waits for one
// to finish before it takes its next record: its input queue fills and its
// partitions pause, as backpressure does.
func AsyncConcurrency(n int) AsyncOpt { return func(o *asyncOptions) { o.concurrency = n } }

// AsyncTimeout bounds each call (default 10s): its context is cancelled,
// and the call counts as failed with context.DeadlineExceeded.
func AsyncTimeout(d time.Duration) AsyncOpt { return func(o *asyncOptions) { o.timeout = d } }

// AsyncUnordered emits each result as soon as it is ready rather than in
// input order; a key's results still come out in its records' order.
func AsyncUnordered() AsyncOpt { return func(o *asyncOptions) { o.unordered = true } }

// AsyncRetries sets how many calls a record gets in all when its call
// fails with an engine.Retryable error or times out (default 3), with
// exponential backoff and jitter between them.
func AsyncRetries(attempts int) AsyncOpt { return func(o *asyncOptions) { o.attempts = attempts } }

// AsyncFallback gives the result of a record whose call failed, timed out
// or was not made because the service's circuit breaker is open:
// fallback(value, cause), a func(T, error) (U, error) for an AsyncMap from
// T to U (another type is an error when the job is built). Its results
// are counted in weir_async_fallbacks_total; set a field of U to mark
// them as degraded. If it returns an error, the record goes to the
// operator's error policy.
func AsyncFallback(fallback any) AsyncOpt { return func(o *asyncOptions) { o.fallback = fallback } }

// AsyncBreaker sets the circuit breaker guarding the service, one per
// operator across its tasks (github.com/sony/gobreaker/v2). The default
// opens after 5 failed calls in a row, or when at least half of 20 or
// more calls in 10s failed; it stays open 5s, then lets one call through
// to try. While it is open, no call is made: records get the fallback at
// once (or the error policy, without one).
func AsyncBreaker(s gobreaker.Settings) AsyncOpt { return func(o *asyncOptions) { o.breaker = &s } }

// AsyncNoBreaker turns the circuit breaker off.
func AsyncNoBreaker() AsyncOpt { return func(o *asyncOptions) { o.noBreaker = true } }

// AsyncMap calls fn for each record without waiting for it, as Flink's
// Async I/O does: up to AsyncConcurrency calls are in flight per task
// while the task takes its next records, and the results come out in
// input order (or as they complete, AsyncUnordered), under the input's
// key and event time. fn gets a context that ends at AsyncTimeout.
//
// It is part of the checkpoint: a barrier waits for the calls in flight
// and emits their results before it, so exactly once holds; after a crash
// the records whose results were not committed are read and called again
// (calls are at least once, outputs exactly once). The task's watermark
// waits behind the earliest record in flight, so no result is late
// downstream. A call that fails is retried (AsyncRetries) when its error
// is engine.Retryable or it timed out; then the fallback (AsyncFallback)
// gives the result, or the record goes to the operator's error policy
// (dead letter, skip, fail). A circuit breaker per operator
// (AsyncBreaker) stops calling a service that keeps failing.
func AsyncMap[T, U any](in engine.Stream[T], fn func(context.Context, T) (U, error), opts ...AsyncOpt) engine.Stream[U] {
	o := asyncOptions{concurrency: 100, timeout: 10 * time.Second, attempts: 3}
	for _, opt := range opts {
		opt(&o)
	}
	job := in.Job()
	name := o.name
	if name == "" {
		name = job.UniqueName("async")
	}
	out := engine.Derive[U](in, name)
	var fallback func(T, error) (U, error)
	if o.fallback != nil {
		f, ok := o.fallback.(func(T, error) (U, error))
		if !ok {
			var want func(T, error) (U, error)
			job.TopologyError(fmt.Errorf("%s: AsyncFallback is a %T, want a %v", out.Name(), o.fallback, reflect.TypeOf(want)))
		}
		fallback = f
	}
	switch {
	case o.concurrency < 1:
		job.TopologyError(fmt.Errorf("%s: AsyncConcurrency %d: want at least 1", out.Name(), o.concurrency))
	case o.timeout <= 0:
		job.TopologyError(fmt.Errorf("%s: AsyncTimeout %v: want more than 0", out.Name(), o.timeout))
	case o.attempts < 1:
		job.TopologyError(fmt.Errorf("%s: AsyncRetries %d: want at least 1 call", out.Name(), o.attempts))
	}
	var cb *gobreaker.CircuitBreaker[any]
	if !o.noBreaker {
		s := gobreaker.Settings{
			Name: out.Name(), Interval: 10 * time.Second, Timeout: 5 * time.Second,
			ReadyToTrip: func(c gobreaker.Counts) bool {
				return c.ConsecutiveFailures >= 5 || (c.Requests >= 20 && c.TotalFailures*2 >= c.Requests)
			},
		}
		if o.breaker != nil {
			s = *o.breaker
		}
		s.IsExcluded = func(err error) bool { return errors.Is(err, context.Canceled) }
		cb = gobreaker.NewCircuitBreaker[any](s)
	}
	in.Subscribe(func(t *engine.Task) (engine.Emit[T], error) {
		down, err := out.Build(t)
		if err != nil {
			return nil, err
		}
		a := &asyncTask[T, U]{
			name: out.Name(), o: o, fn: fn, fallback: fallback, cb: cb, t: t, down: down,
			g: t.Guard(out.Name(), engine.ClassError), stats: t.Stats(out.Name()), obs: t.Observer(),
			wake: make(chan struct{}, 1),
		}
		t.AddInFlight(a)
		return a.process, nil
	})
	return out
}

// asyncTask is an AsyncMap in one task. Everything but call runs in the
// task's goroutine.
type asyncTask[T, U any] struct {
	name     string
	o        asyncOptions
	fn       func(context.Context, T) (U, error)
	fallback func(T, error) (U, error)
	cb       *gobreaker.CircuitBreaker[any]
	t        *engine.Task
	down     engine.Emit[U]
	g        *engine.Guard
	stats    *engine.OpStats
	obs      observe.Observer
	// queue holds the records in flight, in input order; wake is
	// signalled when a call finishes.
	queue []*asyncCall[T, U]
	wake  chan struct{}
}

// finished reports whether c's call and fallback are over.
func (c *asyncCall[T, U]) finished() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// asyncCall is one record in flight.
type asyncCall[T, U any] struct {
	rec      engine.Record[T]
	held     engine.InHand
	done     chan struct{} // closed when out, err and attempts are final
	out      U
	err      error
	attempts int
	fallback bool
}

func (a *asyncTask[T, U]) process(r engine.Record[T]) error {
	a.stats.In++
	if err := a.emitReady(); err != nil {
		return err
	}
	for len(a.queue) >= a.o.concurrency {
		if err := a.waitOne(); err != nil {
			return err
		}
	}
	c := &asyncCall[T, U]{rec: r, held: a.t.InHand(), done: make(chan struct{})}
	a.queue = append(a.queue, c)
	a.obs.AsyncInFlight(a.name, 1)
	go a.call(c)
	return nil
}

// waitOne waits until a result can be emitted, and emits what is ready.
func (a *asyncTask[T, U]) waitOne() error {
	if a.o.unordered {
		before := len(a.queue)
		for {
			if err := a.emitReady(); err != nil || len(a.queue) < before {
				return err
			}
			<-a.wake
		}
	}
	<-a.queue[0].done
	return a.emitReady()
}

// Flush emits what is ready; with wait, everything, waiting for it.
func (a *asyncTask[T, U]) Flush(wait bool) error {
	if !wait {
		return a.emitReady()
	}
	for _, c := range a.queue {
		<-c.done
	}
	return a.emitReady()
}

// Hold is the earliest event time in flight.
func (a *asyncTask[T, U]) Hold() int64 {
	h := int64(windowing.MaxMillis)
	for _, c := range a.queue {
		if ms := c.rec.Timestamp.UnixMilli(); ms < h {
			h = ms
		}
	}
	return h
}

// emitReady emits the results that are ready: the finished head of the
// queue, or, unordered, every finished call with no earlier one of its key
// still in flight.
func (a *asyncTask[T, U]) emitReady() error {
	if !a.o.unordered {
		for len(a.queue) > 0 && a.queue[0].finished() {
			c := a.queue[0]
			a.queue[0] = nil
			a.queue = a.queue[1:]
			if err := a.emit(c); err != nil {
				return err
			}
		}
		return nil
	}
	var blocked map[string]bool
	kept := a.queue[:0]
	var firstErr error
	for _, c := range a.queue {
		k := string(c.rec.Key)
		if firstErr == nil && c.finished() && !blocked[k] {
			if err := a.emit(c); err != nil {
				firstErr = err
			}
			continue
		}
		if blocked == nil {
			blocked = map[string]bool{}
		}
		blocked[k] = true
		kept = append(kept, c)
	}
	clear(a.queue[len(kept):])
	a.queue = kept
	return firstErr
}

// emit sends c's result downstream, as if the task were handling c's
// input record again, or hands its failure to the error policy.
func (a *asyncTask[T, U]) emit(c *asyncCall[T, U]) error {
	if c.err != nil {
		return a.g.FailInHand(c.held, c.err, c.attempts)
	}
	a.g.Succeeded()
	a.stats.Out++
	return a.t.RunInHand(c.held, func() error {
		return a.down(engine.Record[U]{Key: c.rec.Key, Value: c.out, Timestamp: c.rec.Timestamp})
	})
}

// errBreakerOpen is the cause a fallback gets while the circuit is open.
var errBreakerOpen = errors.New("circuit breaker open: the service was not called")

// call runs in its own goroutine: the calls with their retries, then the
// fallback if they failed.
func (a *asyncTask[T, U]) call(c *asyncCall[T, U]) {
	defer func() {
		close(c.done)
		a.obs.AsyncInFlight(a.name, -1)
		select {
		case a.wake <- struct{}{}:
		default:
		}
	}()
	bo := &backoff.ExponentialBackOff{InitialInterval: 50 * time.Millisecond, RandomizationFactor: 0.5, Multiplier: 2, MaxInterval: time.Second}
	bo.Reset()
	for {
		c.attempts++
		out, err := a.once(c.rec.Value)
		if err == nil {
			c.out, c.err = out, nil
			return
		}
		c.err = err
		retry := !errors.Is(err, errBreakerOpen) && (engine.IsRetryable(err) || errors.Is(err, context.DeadlineExceeded))
		if !retry || c.attempts >= a.o.attempts {
			break
		}
		time.Sleep(bo.NextBackOff())
	}
	if a.fallback == nil {
		return
	}
	out, err := callFallback(a.fallback, c.rec.Value, c.err)
	if err != nil {
		c.err = fmt.Errorf("%w (and the fallback failed: %w)", c.err, err)
		return
	}
	c.out, c.err, c.fallback = out, nil, true
	a.obs.AsyncFallback(a.name)
}

// once makes one call, through the circuit breaker, and reports it.
func (a *asyncTask[T, U]) once(v T) (U, error) {
	start := time.Now()
	var out U
	call := func() (any, error) {
		ctx, cancel := context.WithTimeout(context.Background(), a.o.timeout)
		defer cancel()
		u, err := callUser(a.fn, ctx, v)
		if err == nil && ctx.Err() != nil {
			err = ctx.Err() // answered, but too late
		}
		out = u
		return nil, err
	}
	var err error
	if a.cb != nil {
		_, err = a.cb.Execute(call)
		if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
			a.obs.AsyncCall(a.name, "open", 0)
			return out, fmt.Errorf("%s: %w", a.name, errBreakerOpen)
		}
	} else {
		_, err = call()
	}
	outcome := "ok"
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		outcome = "timeout"
	case err != nil:
		outcome = "error"
	}
	a.obs.AsyncCall(a.name, outcome, time.Since(start))
	return out, err
}

// callUser calls fn, turning a panic into an error.
func callUser[T, U any](fn func(context.Context, T) (U, error), ctx context.Context, v T) (u U, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = engine.Panicked(p)
		}
	}()
	return fn(ctx, v)
}

func callFallback[T, U any](fn func(T, error) (U, error), v T, cause error) (u U, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = engine.Panicked(p)
		}
	}()
	return fn(v, cause)
}
