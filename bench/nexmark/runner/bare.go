package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Bare is the ceiling the engines are measured against: the least a
// consume-produce service can do with franz-go. It copies every record of
// Input to the same partition of Output (value and timestamp as they
// are, no decoding), and every Interval commits: exactly once, the
// outputs and the input offsets in one transaction (GroupTransactSession,
// as franz-go's EOS example); at least once, a Flush and then the offsets.
type Bare struct {
	Brokers       []string
	Input, Output string
	Group         string
	ExactlyOnce   bool
	Interval      time.Duration
	// Producer is its batching; the zero Producer is DefaultProducer.
	Producer Producer
}

// Run copies until ctx ends, then commits what it has and returns nil.
func (b Bare) Run(ctx context.Context) error {
	if b.Interval <= 0 {
		b.Interval = time.Second
	}
	if b.Producer == (Producer{}) {
		b.Producer = DefaultProducer
	}
	popts, err := b.Producer.KgoOpts()
	if err != nil {
		return err
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(b.Brokers...),
		kgo.ConsumerGroup(b.Group),
		kgo.ConsumeTopics(b.Input),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	}
	opts = append(opts, popts...)
	if os.Getenv("NEXMARK_BARE_DEBUG") != "" {
		opts = append(opts, kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelDebug, nil)))
	}
	if b.ExactlyOnce {
		return b.runEOS(ctx, opts)
	}
	return b.runALO(ctx, opts)
}

// pollUntil polls, waiting no later than deadline: an idle input must not
// hold back the commit of what came before it.
func pollUntil(ctx context.Context, poll func(context.Context, int) kgo.Fetches, deadline time.Time) kgo.Fetches {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	return poll(ctx, 10_000)
}

// copy produces every record of fs to Output. Produce does not take the
// run's context: records of the last poll must still go out when it ends.
func (b Bare) copy(cl *kgo.Client, fs kgo.Fetches, promise func(*kgo.Record, error)) {
	fs.EachRecord(func(r *kgo.Record) {
		cl.Produce(context.Background(), &kgo.Record{Topic: b.Output, Partition: r.Partition, Value: r.Value, Timestamp: r.Timestamp}, promise)
	})
}

func fetchErr(fs kgo.Fetches) error {
	for _, fe := range fs.Errors() {
		if errors.Is(fe.Err, context.Canceled) || errors.Is(fe.Err, context.DeadlineExceeded) || errors.Is(fe.Err, kgo.ErrClientClosed) {
			continue
		}
		return fmt.Errorf("bare: fetching %s/%d: %w", fe.Topic, fe.Partition, fe.Err)
	}
	return nil
}

func (b Bare) runALO(ctx context.Context, opts []kgo.Opt) error {
	cl, err := kgo.NewClient(append(opts, kgo.DisableAutoCommit())...)
	if err != nil {
		return err
	}
	defer cl.Close()
	var perr firstErr
	promise := func(_ *kgo.Record, err error) { perr.set(err) }
	commit := func(ctx context.Context) error {
		if err := cl.Flush(ctx); err != nil {
			return err
		}
		if err := perr.take(); err != nil {
			return fmt.Errorf("bare: producing: %w", err)
		}
		return cl.CommitUncommittedOffsets(ctx)
	}
	last := time.Now()
	for ctx.Err() == nil {
		fs := pollUntil(ctx, cl.PollRecords, last.Add(b.Interval))
		if err := fetchErr(fs); err != nil {
			return err
		}
		b.copy(cl, fs, promise)
		if time.Since(last) >= b.Interval {
			if err := commit(ctx); err != nil && ctx.Err() == nil {
				return err
			}
			last = time.Now()
		}
	}
	done, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return commit(done)
}

func (b Bare) runEOS(ctx context.Context, opts []kgo.Opt) error {
	sess, err := kgo.NewGroupTransactSession(append(opts,
		kgo.TransactionalID(b.Group+"-bare"),
		kgo.TransactionTimeout(10*time.Second),
	)...)
	if err != nil {
		return err
	}
	defer sess.Close()
	cl := sess.Client()
	var perr firstErr
	promise := func(_ *kgo.Record, err error) { perr.set(err) }
	end := func(ctx context.Context) error {
		// End flushes before it commits, so a produce error shows up
		// only after it: End then commits what failed to go out only if
		// the broker accepts the commit, and franz-go aborts a
		// transaction whose records failed.
		committed, err := sess.End(ctx, kgo.TryCommit)
		if perr := perr.take(); err == nil && (!committed || perr != nil) {
			err = fmt.Errorf("bare: transaction aborted (produce error: %v)", perr)
		}
		return err
	}
	if err := sess.Begin(); err != nil {
		return err
	}
	last := time.Now()
	for ctx.Err() == nil {
		fs := pollUntil(ctx, sess.PollRecords, last.Add(b.Interval))
		if err := fetchErr(fs); err != nil {
			return err
		}
		b.copy(cl, fs, promise)
		if time.Since(last) >= b.Interval {
			if err := end(ctx); err != nil {
				if ctx.Err() != nil {
					break
				}
				return err
			}
			if err := sess.Begin(); err != nil {
				return err
			}
			last = time.Now()
		}
	}
	// At shutdown the session may already have given up the group (it
	// then aborts): what is not committed is redone by the next owner, so
	// the last commit is best effort.
	done, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := end(done); err != nil {
		fmt.Fprintln(os.Stderr, "bare: the last transaction at shutdown:", err)
	}
	return nil
}

// firstErr keeps the first error of produce promises, which franz-go calls
// from its own goroutines.
type firstErr struct {
	mu  sync.Mutex
	err error
}

func (f *firstErr) set(err error) {
	if err == nil {
		return
	}
	f.mu.Lock()
	if f.err == nil {
		f.err = err
	}
	f.mu.Unlock()
}

// take returns the error kept and forgets it.
func (f *firstErr) take() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	err := f.err
	f.err = nil
	return err
}
