package state

import (
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Opt configures Open. Options are applied in order, then validated once.
type Opt interface{ apply(*storeConfig) }

type optFunc func(*storeConfig)

func (f optFunc) apply(c *storeConfig) { f(c) }

type storeConfig struct {
	fs             vfs.FS
	syncCommits    bool
	blockCacheSize int64
	memTableSize   uint64
	cacheSize      int64
	syncInterval   time.Duration
	syncBytes      int // tests only
	logger         pebble.Logger
	now            func() time.Time
}

func defaultStoreConfig() storeConfig {
	return storeConfig{
		fs:             vfs.Default,
		blockCacheSize: 64 << 20,
		memTableSize:   16 << 20,
		cacheSize:      64 << 20,
		syncInterval:   5 * time.Second,
		logger:         quietLogger{},
		now:            time.Now,
	}
}

func (c *storeConfig) validate() error {
	if c.fs == nil {
		return fmt.Errorf("state: InMemory: nil MemFS")
	}
	if c.blockCacheSize <= 0 {
		return fmt.Errorf("state: WithBlockCacheSize(%d): must be positive", c.blockCacheSize)
	}
	if c.memTableSize < 1<<20 {
		return fmt.Errorf("state: WithMemTableSize(%d): must be at least 1 MiB", c.memTableSize)
	}
	if c.syncInterval < 0 {
		return fmt.Errorf("state: WithLocalSyncInterval(%v): must not be negative", c.syncInterval)
	}
	if c.cacheSize < 0 {
		return fmt.Errorf("state: WithCacheSize(%d): must not be negative", c.cacheSize)
	}
	if c.now == nil {
		return fmt.Errorf("state: WithClock: nil clock")
	}
	if c.logger == nil {
		return fmt.Errorf("state: WithLogger: nil logger")
	}
	return nil
}

// MemFS is an in-memory file system for a Store, for tests and harnesses.
// Reopening a Store on the same MemFS sees what the last one committed, as
// reopening a directory would. A MemFS may be used by one open Store at a
// time.
type MemFS struct{ fs *vfs.MemFS }

// NewMemFS returns an empty in-memory file system.
func NewMemFS() *MemFS { return &MemFS{fs: vfs.NewMem()} }

// InMemory keeps the store in fs instead of on disk; Open's dir is then a
// path inside fs. Default: the operating system's file system.
func InMemory(fs *MemFS) Opt {
	return optFunc(func(c *storeConfig) {
		if fs == nil {
			c.fs = nil // refused by validate
			return
		}
		c.fs = fs.fs
	})
}

// WithSyncCommits makes every CommitPending, FinishRestore and Drop wait for
// an fsync of Pebble's write-ahead log. Default: false.
//
// The default is safe because Kafka, not Pebble, is the source of truth:
// each commit is one atomic batch that carries its own checkpoint id and
// changelog offsets, and Pebble's WAL recovers a prefix of the batches, so
// a machine crash can only leave the store at an older checkpoint, which
// recovery brings forward by replaying the changelog from the offsets
// recorded with it. A process crash loses nothing (the WAL is in the OS).
func WithSyncCommits(sync bool) Opt {
	return optFunc(func(c *storeConfig) { c.syncCommits = sync })
}

// WithBlockCacheSize sets the size in bytes of Pebble's block cache, shared
// by all tasks of the replica. Default: 64 MiB (Pebble's own default is
// 8 MiB, sized for an embedded database, not a state store that serves
// every cache miss of every task).
func WithBlockCacheSize(bytes int64) Opt {
	return optFunc(func(c *storeConfig) { c.blockCacheSize = bytes })
}

// WithCacheSize sets the size in bytes of the state cache: the tasks'
// committed state kept in memory, shared by all tasks of the replica
// (clean.go). While a task's state fits, reads never reach Pebble, not
// even for keys that do not exist. Default: 64 MiB; 0 turns it off.
func WithCacheSize(bytes int64) Opt {
	return optFunc(func(c *storeConfig) { c.cacheSize = bytes })
}

// WithLocalSyncInterval sets how long state that Kafka has committed may
// wait before it is written to Pebble, the local copy a restart starts
// from (sync.go): committed writes of that long are written once, the
// latest value of each key. A crash then replays up to that much more of
// the changelog. Default: 5s; 0 writes Pebble at every checkpoint.
func WithLocalSyncInterval(d time.Duration) Opt {
	return optFunc(func(c *storeConfig) { c.syncInterval = d })
}

// WithMemTableSize sets the size in bytes of Pebble's memtable. Default:
// 16 MiB (Pebble's default is 4 MiB): a checkpoint commits a whole task's
// dirty set in one batch, and a larger memtable absorbs a few of those
// before a flush to L0. At least 1 MiB.
func WithMemTableSize(bytes uint64) Opt {
	return optFunc(func(c *storeConfig) { c.memTableSize = bytes })
}

// Logger receives Pebble's log lines. Fatalf must not return (Pebble calls
// it on an invariant violation and expects the process to stop).
type Logger = pebble.Logger

// WithLogger sends Pebble's log lines to l. Default: informational lines
// are dropped, errors go to the standard library's log package, and Fatalf
// logs there and exits the process (Pebble's own behaviour).
func WithLogger(l Logger) Opt {
	return optFunc(func(c *storeConfig) { c.logger = l })
}

// quietLogger is the default Logger: Pebble's Infof lines (compactions,
// WAL recovery) are not worth a replica's log.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)           {}
func (quietLogger) Errorf(format string, a ...any) { pebble.DefaultLogger.Errorf(format, a...) }
func (quietLogger) Fatalf(format string, a ...any) { pebble.DefaultLogger.Fatalf(format, a...) }

// WithClock sets the clock that stamps each committed checkpoint with the
// time it was committed (see TaskStore.LocalCheckpoint). Default:
// time.Now. For tests.
func WithClock(now func() time.Time) Opt {
	return optFunc(func(c *storeConfig) { c.now = now })
}
