package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
)

// Store is a replica's local state: one Pebble DB that holds the state of
// every task the replica runs, each task in its own key range (layout.go).
//
// A Store is safe for concurrent use: Task may be called from any
// goroutine, and each TaskStore it returns is used by its task's goroutine
// alone. Pebble serialises the tasks' commits.
type Store struct {
	db        *pebble.DB
	writeOpts *pebble.WriteOptions
	closed    atomic.Bool
	now       func() time.Time
	cache     *cacheBudget // the tasks' clean generations (clean.go)
	// syncInterval is how long committed state may wait to be written
	// to Pebble (sync.go); 0 writes it at each commit.
	syncInterval time.Duration
	syncBytes    int // for tests: the unsynced generation's cap, if > 0

	mu struct {
		sync.Mutex
		tasks map[TaskID]*TaskStore
	}
}

// Open opens the store in dir, creating it if it does not exist. With
// InMemory, dir is a path in the in-memory file system.
//
// It returns ErrIncompatibleFormat if dir holds a Pebble DB that this
// package did not write, or wrote with another key layout.
func Open(dir string, opts ...Opt) (*Store, error) {
	cfg := defaultStoreConfig()
	for _, o := range opts {
		o.apply(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	popts := &pebble.Options{
		FS:                 cfg.fs,
		CacheSize:          cfg.blockCacheSize,
		MemTableSize:       cfg.memTableSize,
		Logger:             cfg.logger,
		FormatMajorVersion: pebble.FormatNewest,
	}
	// Bloom filters on every level (L0's setting is inherited): state
	// reads are point Gets, and many are for keys that do not exist yet
	// (a key's first record, a new window), which a filter answers without
	// reading a data block.
	popts.Levels[0].FilterPolicy = bloom.FilterPolicy(10)
	db, err := pebble.Open(dir, popts)
	if err != nil {
		return nil, fmt.Errorf("state: open %s: %w", dir, err)
	}
	s := &Store{db: db, writeOpts: pebble.NoSync, now: cfg.now, cache: &cacheBudget{limit: cfg.cacheSize}, syncInterval: cfg.syncInterval, syncBytes: cfg.syncBytes}
	if cfg.syncCommits {
		s.writeOpts = pebble.Sync
	}
	s.mu.tasks = make(map[TaskID]*TaskStore)
	if err := s.checkFormat(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("state: open %s: %w", dir, err)
	}
	return s, nil
}

// checkFormat reads the format marker, writing it into an empty store.
func (s *Store) checkFormat() error {
	v, closer, err := s.db.Get(formatKey)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		it, err := s.db.NewIter(nil)
		if err != nil {
			return err
		}
		empty := !it.First()
		if err := it.Close(); err != nil {
			return err
		}
		if !empty {
			return fmt.Errorf("%w: no format marker in a non-empty store", ErrIncompatibleFormat)
		}
		return s.db.Set(formatKey, binary.AppendUvarint(nil, formatVersion), pebble.Sync)
	case err != nil:
		return err
	}
	defer closer.Close()
	if got, n := binary.Uvarint(v); n <= 0 || got != formatVersion {
		return fmt.Errorf("%w: format %x, want %d", ErrIncompatibleFormat, v, formatVersion)
	}
	return nil
}

// Task returns the view of task id's state. Repeated calls with the same id
// return the same TaskStore: it is the task's, and at any time only the
// goroutine that runs the task may use it.
func (s *Store) Task(id TaskID) *TaskStore {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.mu.tasks[id]
	if !ok {
		t = newTaskStore(s, id)
		s.mu.tasks[id] = t
	}
	return t
}

// Close closes the DB. Dirty and pending writes of every task are lost,
// as they must be: they are not covered by a committed checkpoint. Call it
// after every task has stopped; TaskStore methods that reach Pebble return
// ErrClosed afterwards. Closing twice returns ErrClosed.
func (s *Store) Close() error {
	if s.closed.Load() {
		return ErrClosed
	}
	// What Kafka committed goes to Pebble, so that a restart need not
	// replay it. The tasks have stopped: their stores are idle.
	var errs []error
	s.mu.Lock()
	for _, t := range s.mu.tasks {
		errs = append(errs, t.Sync())
	}
	s.mu.Unlock()
	if !s.closed.CompareAndSwap(false, true) {
		return ErrClosed
	}
	if err := errors.Join(errs...); err != nil {
		_ = s.db.Close()
		return fmt.Errorf("state: close: %w", err)
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("state: close: %w", err)
	}
	return nil
}
