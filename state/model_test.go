package state

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestTaskStoreAgainstModel drives two TaskStores with random operations,
// the checkpoint protocol, crashes (reopen), drops and changelog restores,
// and checks every read, scan, flush and checkpoint against a model: three
// plain maps per task (committed, pending, dirty).
//
// It runs with the state cache (clean.go) off, small enough that tasks
// evict each other's entries all the time, and large enough for all; and
// with Pebble written at each commit or once per sync interval (sync.go),
// with a sync cap small enough that commits are often due at once.
func TestTaskStoreAgainstModel(t *testing.T) {
	for _, c := range []struct {
		cache     int64
		sync      time.Duration
		syncBytes int
	}{{0, 0, 0}, {64 << 20, 0, 0}, {600, 5 * time.Second, 0}, {64 << 20, 5 * time.Second, 0}, {64 << 20, 5 * time.Second, 150}} {
		for seed := range uint64(12) {
			t.Run(fmt.Sprint("cache=", c.cache, "/sync=", c.sync, "/sync-bytes=", c.syncBytes, "/seed=", seed), func(t *testing.T) {
				runModel(t, rand.New(rand.NewPCG(seed, seed^0x5eed)), 1500, c.sync > 0, WithCacheSize(c.cache), WithLocalSyncInterval(c.sync), syncAt(c.syncBytes))
			})
		}
	}
}

// syncAt caps the unsynced generation at n bytes (0: the default).
func syncAt(n int) Opt { return optFunc(func(c *storeConfig) { c.syncBytes = n }) }

// write is a model write: a value, or a tombstone (nil).
type write = *string

type modelTask struct {
	id        TaskID
	committed map[string]string
	pending   map[string]write
	dirty     map[string]write
	// changelog is what the task flushed in transactions that committed,
	// for the restore check.
	changelog []Mutation
	// txn is what the task flushed in its open transaction.
	txn []Mutation
	// checkpoint is the last committed checkpoint id, if hasCheckpoint.
	checkpoint    int64
	hasCheckpoint bool
}

// view is what the task must read: committed, then pending, then dirty.
func (m *modelTask) view() map[string]string {
	v := maps.Clone(m.committed)
	for _, layer := range []map[string]write{m.pending, m.dirty} {
		for k, w := range layer {
			if w == nil {
				delete(v, k)
			} else {
				v[k] = *w
			}
		}
	}
	return v
}

// rareScans scans a tenth as often: a scan writes what waits to be
// synced, and a crash must find some waiting.
func runModel(t *testing.T, rng *rand.Rand, steps int, rareScans bool, opts ...Opt) {
	fs := NewMemFS()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) // 100ms a step
	open := func() *Store {
		s, err := Open("/db", append([]Opt{InMemory(fs), WithClock(func() time.Time { return now })}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	t.Cleanup(func() { _ = s.Close() })

	tasks := []*modelTask{{id: TaskID{0, 1}}, {id: TaskID{0, 2}}}
	for _, m := range tasks {
		m.committed, m.pending, m.dirty = map[string]string{}, map[string]write{}, map[string]write{}
	}
	// Few short keys over an alphabet with 0x00 and 0xff, so that keys
	// collide, prefix each other and sit at the edges of the range.
	alphabet := []byte{'a', 'b', 0x00, 0xff}
	randKey := func() []byte {
		k := make([]byte, rng.IntN(4))
		for i := range k {
			k[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return k
	}
	for step := range steps {
		now = now.Add(100 * time.Millisecond)
		m := tasks[rng.IntN(len(tasks))]
		ts := s.Task(m.id)
		ts.Uncached([]byte{0xff}) // as timers are: scanned, never cached
		fail := func(format string, a ...any) {
			t.Helper()
			t.Fatalf("step %d, task %v: %s", step, m.id, fmt.Sprintf(format, a...))
		}
		switch op := rng.IntN(100); {
		case op < 35:
			k, v := randKey(), fmt.Sprint("v", step)
			if _, ok := m.view()[string(k)]; !ok && rng.IntN(2) == 0 {
				ts.SetNew(k, []byte(v)) // as timers are, when new
			} else {
				ts.Set(k, []byte(v))
			}
			m.dirty[string(k)] = &v
		case op < 45:
			k := randKey()
			ts.Delete(k)
			m.dirty[string(k)] = nil
		case op < 65:
			k := randKey()
			got, ok, err := ts.Get(k)
			want, wantOK := m.view()[string(k)]
			if err != nil || ok != wantOK || string(got) != want {
				fail("Get(%q) = %q, %t, %v; want %q, %t", k, got, ok, err, want, wantOK)
			}
		case op < 75 && (!rareScans || rng.IntN(10) == 0):
			lower, upper := randKey(), randKey()
			if rng.IntN(3) == 0 {
				upper = nil
			}
			var got []string
			err := ts.Scan(lower, upper, func(k, v []byte) bool {
				got = append(got, string(k)+"="+string(v))
				return true
			})
			var want []string
			view := m.view()
			for _, k := range slices.Sorted(maps.Keys(view)) {
				if bytes.Compare([]byte(k), lower) >= 0 && (len(upper) == 0 || bytes.Compare([]byte(k), upper) < 0) {
					want = append(want, k+"="+view[k])
				}
			}
			if err != nil || !slices.Equal(got, want) {
				fail("Scan(%q, %q) = %q, %v; want %q", lower, upper, got, err, want)
			}
		case op < 83:
			muts := ts.Flush()
			var want []Mutation
			for _, k := range slices.Sorted(maps.Keys(m.dirty)) {
				if w := m.dirty[k]; w == nil {
					want = append(want, Mutation{Key: []byte(k), Tombstone: true})
				} else {
					want = append(want, Mutation{Key: []byte(k), Value: []byte(*w)})
				}
				m.pending[k] = m.dirty[k]
			}
			// Flush promises no order: compare in key order.
			slices.SortFunc(muts, func(a, b Mutation) int { return bytes.Compare(a.Key, b.Key) })
			if !slices.EqualFunc(muts, want, equalMutation) {
				fail("Flush() = %v; want %v", muts, want)
			}
			if ts.DirtyKeys() != 0 || ts.DirtyBytes() != 0 {
				fail("after Flush: %d dirty keys, %d bytes", ts.DirtyKeys(), ts.DirtyBytes())
			}
			m.dirty = map[string]write{}
			for _, mu := range muts { // as a producer would: copy out
				m.txn = append(m.txn, Mutation{Key: bytes.Clone(mu.Key), Value: bytes.Clone(mu.Value), Tombstone: mu.Tombstone})
			}
		case op < 90:
			// The transaction committed: so does Pebble.
			m.checkpoint++
			offsets := map[string]int64{"changelog": int64(len(m.changelog) + len(m.txn))}
			if err := ts.CommitPending(m.checkpoint, offsets); err != nil {
				fail("CommitPending: %v", err)
			}
			for k, w := range m.pending {
				if w == nil {
					delete(m.committed, k)
				} else {
					m.committed[k] = *w
				}
			}
			m.pending, m.hasCheckpoint = map[string]write{}, true
			m.changelog, m.txn = append(m.changelog, m.txn...), nil
		case op < 94:
			ts.AbortPending()
			m.pending, m.dirty, m.txn = map[string]write{}, map[string]write{}, nil
		case op < 97:
			// Crash: every task loses its cache; the open transaction aborts.
			// A graceful stop (Close) writes what Kafka committed; a hard one
			// leaves Pebble at an older checkpoint, and each task replays the
			// committed changelog from the offset it names, as the engine does.
			hard := rng.IntN(2) == 0
			if hard {
				s.closed.Store(true)
				if err := s.db.Close(); err != nil {
					fail("close: %v", err)
				}
			} else if err := s.Close(); err != nil {
				fail("Close: %v", err)
			}
			s = open()
			for _, m := range tasks {
				m.pending, m.dirty, m.txn = map[string]write{}, map[string]write{}, nil
				if !hard {
					continue
				}
				ts := s.Task(m.id)
				// Pebble may have no checkpoint of the task yet: then it
				// replays the whole changelog.
				_, offsets, ok, err := ts.Checkpoint()
				if err != nil || ok && !m.hasCheckpoint {
					fail("Checkpoint after a crash: %t, %v; want %t", ok, err, m.hasCheckpoint)
				}
				for _, mu := range m.changelog[offsets["changelog"]:] {
					if err := ts.Restore(mu.Key, mu.Value, mu.Tombstone); err != nil {
						fail("Restore: %v", err)
					}
				}
				if m.hasCheckpoint {
					if err := ts.FinishRestore(m.checkpoint, map[string]int64{"changelog": int64(len(m.changelog))}); err != nil {
						fail("FinishRestore: %v", err)
					}
				}
			}
		default:
			// Revoke and reassign: drop the local state and restore it from
			// the committed changelog, as a replica without it would.
			if err := ts.Drop(); err != nil {
				fail("Drop: %v", err)
			}
			if _, _, ok, err := ts.Checkpoint(); ok || err != nil {
				fail("Checkpoint after Drop: ok=%t, %v", ok, err)
			}
			for _, mu := range m.changelog {
				if err := ts.Restore(mu.Key, mu.Value, mu.Tombstone); err != nil {
					fail("Restore: %v", err)
				}
			}
			offsets := map[string]int64{"changelog": int64(len(m.changelog))}
			if err := ts.FinishRestore(m.checkpoint, offsets); err != nil {
				fail("FinishRestore: %v", err)
			}
			m.pending, m.dirty, m.txn, m.hasCheckpoint = map[string]write{}, map[string]write{}, nil, true
		}
		// Invariants after every step (on the reopened store after a crash).
		ts = s.Task(m.id)
		if got := ts.DirtyKeys(); got != len(m.dirty) {
			fail("DirtyKeys() = %d; want %d", got, len(m.dirty))
		}
		id, offsets, ok, err := ts.Checkpoint()
		if err != nil || ok != m.hasCheckpoint || id != m.checkpoint {
			fail("Checkpoint() = %d, %v, %t, %v; want %d, %t", id, offsets, ok, err, m.checkpoint, m.hasCheckpoint)
		}
		// The state cache counts what its tasks hold, within its limit
		// but for the entries pinned until the next sync; it holds
		// committed values, and deletions only while they wait.
		var held, pinned int64
		for _, m := range tasks {
			c := s.Task(m.id).clean
			held += c.bytes
			pinned += c.pinned
			var pins int64
			for k, e := range c.m {
				w, ok := m.committed[k]
				if e.tombstone {
					if ok || !e.unsynced {
						fail("cache holds a deletion of %q (unsynced %t); committed %q, %t", k, e.unsynced, w, ok)
					}
				} else if !ok || string(e.value) != w || k != "" && k[0] == 0xff && !e.unsynced {
					fail("cache holds %q = %q; committed %q, %t", k, e.value, w, ok)
				}
				if e.unsynced {
					pins += int64(e.size())
				}
			}
			if pins != c.pinned {
				fail("task %v: cache pins %d bytes, counts %d", m.id, pins, c.pinned)
			}
		}
		if used := s.cache.used.Load(); used != held || used > max(s.cache.limit, 0)+pinned {
			fail("cache uses %d bytes, its tasks hold %d (%d pinned), limit %d", used, held, pinned, s.cache.limit)
		}
	}
	// Finally, what Pebble holds for each task is exactly its committed map.
	for _, m := range tasks {
		ts := s.Task(m.id)
		ts.AbortPending()
		if got := scanAll(t, ts); !maps.Equal(got, m.committed) {
			t.Fatalf("task %v: Pebble has %q; committed %q", m.id, got, m.committed)
		}
	}
}

func equalMutation(a, b Mutation) bool {
	return bytes.Equal(a.Key, b.Key) && bytes.Equal(a.Value, b.Value) && a.Tombstone == b.Tombstone
}
