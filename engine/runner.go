package engine

// This file owns taskRunner, the goroutine that owns a task in a running
// job: restore, activation, the processing loop and its control commands.

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// barrierChunk is how many records a task processes between two looks at
// its control channel: the most a barrier waits behind.
const barrierChunk = 256

// taskCmd runs fn in a task's goroutine at its next cut between records:
// a barrier, or the Pebble commit after Kafka committed one. fn gets nil
// while the task is still restoring its state. activate, instead, lets a
// restored task start processing.
type taskCmd struct {
	fn       func(*Task)
	activate bool
	done     chan struct{}
}

// do runs fn in the task's goroutine and waits for it, or for stop.
func (r *taskRunner) do(fn func(*Task), stop <-chan struct{}) bool {
	c := taskCmd{fn: fn, done: make(chan struct{})}
	select {
	case r.ctrl <- c:
	case <-stop:
		return false
	case <-r.done:
		return false
	}
	<-c.done
	return true
}

// taskRunner is the goroutine that owns a task in a running job. It first
// restores the task's state (start), then waits for the runtime to
// activate it, which happens between checkpoints, and only then processes.
type taskRunner struct {
	id    TaskID
	in    *inbox
	ctrl  chan taskCmd
	stop  chan struct{}
	done  chan struct{}
	fatal func(error)
	// start restores the task's state and builds it; ctx ends when the
	// task is stopped. restored is called once start succeeded.
	start    func(ctx context.Context) (*Task, error)
	restored func()
	// ready is set once the task is restored and waits to be activated;
	// active once it was (only the runtime's poll goroutine touches it).
	ready  atomic.Bool
	active bool
	// t is the task; the runner's goroutine sets it, others read it only
	// through commands or after done is closed (nil if it never started).
	t *Task
	// committed is the input offsets of the task's last committed
	// checkpoint; only the checkpointing goroutine touches it.
	committed map[string]kgo.EpochOffset
	// dirty is the bytes in the task's write-back state cache, as of its
	// last batch, for the memory budget.
	dirty atomic.Int64
	// pending is what the task had in hand when the replica halted: it
	// processes it first when the replica resumes.
	pending batch
	// finished is set once the task has finished its input in a bounded
	// run; bound, the poll loop's progress towards its stops.
	finished atomic.Bool
	bound    *taskBound
	// busy is when the task began the chunk of records it is processing
	// (Unix nanoseconds), 0 between chunks: /healthz fails when a task
	// stays on one chunk too long (user code that never returns).
	busy atomic.Int64
	// after, if set, is the done channel of the task's previous runner in
	// this process, stopped but maybe not yet exited: run waits for it
	// before touching the task's state, so that one task never has two
	// runners at once, whatever path stopped the one and started the
	// other (see runtime.startTaskLocked).
	after    <-chan struct{}
	stopOnce sync.Once
	// entered and exited, if set (tests), are called when run takes the
	// task (after waiting for after) and when it returns, before done
	// closes.
	entered, exited func()
}

// halt tells the runner to stop; it may be called more than once.
func (r *taskRunner) halt() { r.stopOnce.Do(func() { close(r.stop) }) }

// waitPrevious waits until the task's previous runner has exited,
// answering commands meanwhile as a task that is not running does. It
// reports false if the runner was stopped first.
func (r *taskRunner) waitPrevious() bool {
	for {
		select {
		case <-r.after:
			return true
		case c := <-r.ctrl:
			if c.fn != nil {
				c.fn(nil)
			}
			close(c.done)
		case <-r.stop:
			return false
		}
	}
}

func (r *taskRunner) halted() bool {
	h, _ := r.t.failures.halted()
	return h
}

func (r *taskRunner) run() {
	if r.after != nil && !r.waitPrevious() {
		close(r.done)
		return
	}
	if r.entered != nil {
		r.entered()
	}
	defer func() {
		if r.exited != nil {
			r.exited()
		}
		close(r.done)
	}()
	t, ok := r.restore()
	if !ok {
		return
	}
	r.t = t
	defer r.t.releaseTimers()
	defer r.t.flushStats()
	tick := time.NewTicker(tickInterval)
	defer tick.Stop()
	for {
		select {
		case <-r.stop:
			return
		case c := <-r.ctrl:
			c.fn(r.t)
			close(c.done)
		case <-tick.C:
			if halted, _ := r.t.failures.halted(); r.t.err == nil && !halted {
				if err := r.t.tick(); err != nil {
					r.t.err = err
					r.fatal(err)
				}
			}
			r.t.flushStats()
		case <-r.in.notify:
			for {
				// A stopped task takes no more input: what it has not
				// processed is read again by whoever runs it next.
				select {
				case <-r.stop:
					return
				default:
				}
				// A halted replica (its circuit breaker open) processes
				// nothing until it resumes, which notifies every task.
				if halted, _ := r.t.failures.halted(); halted {
					break
				}
				b, ok := r.pending, len(r.pending.records) > 0
				r.pending = batch{}
				if !ok {
					if b, ok = r.in.pop(); !ok {
						break
					}
				}
				if b.end {
					if r.t.err == nil {
						if err := r.t.endInput(b.topic); err != nil {
							r.t.err = err
							r.fatal(err)
						}
					}
					continue
				}
				// A fetch can hold thousands of records; cut it in chunks and
				// answer commands between them, so a checkpoint waits for at
				// most one chunk, not a whole fetch.
				for len(b.records) > 0 {
					n := min(len(b.records), barrierChunk)
					if r.t.err == nil {
						r.busy.Store(time.Now().UnixNano())
						err := r.t.process(batch{topic: b.topic, records: b.records[:n], highWatermark: b.highWatermark})
						r.busy.Store(0)
						if err != nil {
							r.t.err = err
							r.fatal(err)
						}
					}
					if held := r.t.held; len(held) > 0 || r.halted() {
						r.pending = batch{topic: b.topic, records: slices.Concat(held, b.records[n:]), highWatermark: b.highWatermark}
						r.t.held = nil
						break
					}
					b.records = b.records[n:]
					select {
					case c := <-r.ctrl:
						c.fn(r.t)
						close(c.done)
					case <-r.stop:
						return
					default:
					}
				}
			}
			r.t.flushStats()
			if r.t.store != nil {
				r.dirty.Store(int64(r.t.store.DirtyBytes()))
			}
		}
	}
}

// restore runs start, answering commands meanwhile (a checkpoint skips a
// task that is not running), then waits for activation.
func (r *taskRunner) restore() (*Task, bool) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		t   *Task
		err error
	}
	res := make(chan result, 1)
	go func() {
		t, err := r.start(ctx)
		res <- result{t, err}
	}()
	var t *Task
	for {
		select {
		case x := <-res:
			if x.err != nil {
				r.fatal(x.err)
				return nil, false
			}
			t = x.t
			r.ready.Store(true)
			r.restored()
		case c := <-r.ctrl:
			if c.activate {
				close(c.done)
				return t, true
			}
			c.fn(nil)
			close(c.done)
		case <-r.stop:
			if t == nil {
				cancel()
				if x := <-res; x.t != nil { // the restore stops using the store before anyone drops it
					x.t.releaseTimers()
				}
			} else {
				t.releaseTimers()
			}
			return nil, false
		}
	}
}

// activate lets a restored task process. Only the poll goroutine calls it,
// between checkpoints, so a task never starts inside one.
func (r *taskRunner) activate() {
	c := taskCmd{activate: true, done: make(chan struct{})}
	select {
	case r.ctrl <- c:
		<-c.done
		r.active = true
	case <-r.done:
	}
}

// tickInterval is how often a task checks the clock: idle inputs,
// processing-time timers, watermarks for downstream stages.
const tickInterval = 20 * time.Millisecond
