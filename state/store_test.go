package state

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// openMem opens a store on a fresh in-memory FS and closes it at cleanup.
func openMem(t testing.TB, opts ...Opt) *Store {
	t.Helper()
	s, err := Open("/db", append([]Opt{InMemory(NewMemFS())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// scanAll returns every key of the task as it sees it.
func scanAll(t *testing.T, ts *TaskStore) map[string]string {
	t.Helper()
	got := map[string]string{}
	if err := ts.Scan(nil, nil, func(k, v []byte) bool {
		got[string(k)] = string(v)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

func mustGet(t *testing.T, ts *TaskStore, key string) string {
	t.Helper()
	v, ok, err := ts.Get([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return "<absent>"
	}
	return string(v)
}

func TestOpenOnDisk(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, WithSyncCommits(true))
	if err != nil {
		t.Fatal(err)
	}
	ts := s.Task(TaskID{Stage: 1, Partition: 3})
	ts.Set([]byte("k"), []byte("v"))
	ts.Flush()
	if err := ts.CommitPending(1, map[string]int64{"cl": 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dir); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := mustGet(t, s.Task(TaskID{Stage: 1, Partition: 3}), "k"); got != "v" {
		t.Fatalf("after reopen: k=%s; want v", got)
	}
}

func TestOpenRefusesOtherFormats(t *testing.T) {
	// A Pebble DB that is not a state store.
	fs := NewMemFS()
	db, err := pebble.Open("/db", &pebble.Options{FS: fs.fs, Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Set([]byte("foreign"), []byte("x"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open("/db", InMemory(fs)); !errors.Is(err, ErrIncompatibleFormat) {
		t.Fatalf("Open(foreign DB) = %v; want ErrIncompatibleFormat", err)
	}

	// A state store of another layout version.
	fs = NewMemFS()
	s, err := Open("/db", InMemory(fs))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.Set(formatKey, []byte{formatVersion + 1}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open("/db", InMemory(fs)); !errors.Is(err, ErrIncompatibleFormat) {
		t.Fatalf("Open(version %d) = %v; want ErrIncompatibleFormat", formatVersion+1, err)
	}
}

func TestOpenValidatesOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  Opt
	}{
		{"nil MemFS", InMemory(nil)},
		{"zero block cache", WithBlockCacheSize(0)},
		{"tiny memtable", WithMemTableSize(1 << 10)},
		{"nil logger", WithLogger(nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if s, err := Open("/db", InMemory(&MemFS{fs: vfs.NewMem()}), tc.opt); err == nil {
				_ = s.Close()
				t.Fatal("Open succeeded")
			}
		})
	}
}

// TestFlushedMutationsAreStable pins Mutation's contract: its bytes are
// never changed by the store, also when the key is written again while a
// producer may still hold them, and an append by the caller does not reach
// the store.
func TestFlushedMutationsAreStable(t *testing.T) {
	s := openMem(t)
	ts := s.Task(TaskID{})
	ts.Set([]byte("k"), []byte("aaaa"))
	ts.Set([]byte("k"), []byte("aa")) // leaves spare capacity in the entry
	muts := ts.Flush()
	ts.Set([]byte("k"), []byte("bbbb"))
	if string(muts[0].Value) != "aa" {
		t.Fatalf("mutation value %q changed by a later Set; want aa", muts[0].Value)
	}
	_ = append(muts[0].Value, 'x')
	ts.AbortPending()
	ts.Set([]byte("j"), []byte("v"))
	m := ts.Flush()
	_ = append(m[0].Value, 'x')
	_ = append(m[0].Key, 'x')
	if got := mustGet(t, ts, "j"); got != "v" {
		t.Fatalf("j=%s after appending to its mutation; want v", got)
	}
	if got := mustGet(t, ts, "jx"); got != "<absent>" {
		t.Fatalf("jx=%s; want absent", got)
	}
}

// TestRestoreCommitsInParts: a restore larger than one batch commits as it
// goes, but the checkpoint record moves only with FinishRestore, so a
// restore cut short starts again from the old offsets.
func TestRestoreCommitsInParts(t *testing.T) {
	fs := NewMemFS()
	s, err := Open("/db", InMemory(fs))
	if err != nil {
		t.Fatal(err)
	}
	ts := s.Task(TaskID{Partition: 1})
	if err := ts.FinishRestore(3, map[string]int64{"cl": 10}); err != nil {
		t.Fatal(err)
	}
	value := bytes.Repeat([]byte("v"), 1<<10)
	const n = 2 * restoreBatchBytes / (1 << 10)
	for i := range n {
		if err := ts.Restore(fmt.Appendf(nil, "k%06d", i), value, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil { // no FinishRestore: the replica died
		t.Fatal(err)
	}
	if s, err = Open("/db", InMemory(fs)); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ts = s.Task(TaskID{Partition: 1})
	id, offsets, ok, err := ts.Checkpoint()
	if err != nil || !ok || id != 3 || offsets["cl"] != 10 {
		t.Fatalf("Checkpoint() = %d, %v, %t, %v; want 3, cl:10", id, offsets, ok, err)
	}
	restored := 0
	if err := ts.Scan(nil, nil, func(k, v []byte) bool { restored++; return true }); err != nil {
		t.Fatal(err)
	}
	if restored == 0 || restored == n {
		t.Fatalf("%d of %d records survived; want some but not all (committed in parts)", restored, n)
	}
}

// TestScanWhileWriting: fn may write, and even scan again, while Scan runs;
// the scan still visits keys once each, in order, never the keys fn added
// (a scan that adds a key after each key it visits still ends), and every
// key that was there and that fn did not delete.
func TestScanWhileWriting(t *testing.T) {
	s := openMem(t)
	ts := s.Task(TaskID{})
	for _, k := range []string{"b", "d", "f", "h"} {
		ts.Set([]byte(k), []byte("committed"))
	}
	ts.Flush()
	if err := ts.CommitPending(1, nil); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "c", "e", "g"} {
		ts.Set([]byte(k), []byte("dirty"))
	}
	var seen []string
	err := ts.Scan(nil, nil, func(k, _ []byte) bool {
		seen = append(seen, string(k))
		ts.Delete(k)                                       // the key being visited
		ts.Set(append(bytes.Clone(k), '+'), []byte("new")) // a key just after it
		ts.Set([]byte("e"), []byte("overwritten"))         // an indexed key
		return ts.Scan(nil, nil, func(_, _ []byte) bool { return true }) == nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i-1] >= seen[i] {
			t.Fatalf("scan visited %q: not strictly ascending", seen)
		}
	}
	if want := []string{"a", "b", "c", "d", "e", "f", "g", "h"}; !slices.Equal(seen, want) {
		t.Fatalf("scan visited %q; want %q", seen, want)
	}
	if got := mustGet(t, ts, "a+"); got != "new" {
		t.Fatalf("a+=%s; want new", got)
	}
}

func TestTaskReturnsTheSameView(t *testing.T) {
	s := openMem(t)
	first, again := s.Task(TaskID{1, 2}), s.Task(TaskID{1, 2})
	if first != again {
		t.Fatal("Task returned two views of one task")
	}
	if first == s.Task(TaskID{2, 1}) {
		t.Fatal("Task returned one view for two tasks")
	}
}

// TestUnsyncedKeepsOnlyTheLatestVersions: a key committed at every
// checkpoint between two syncs keeps its latest version waiting, not every
// version, nor do keys made and deleted in between; the sync writes the
// committed state.
func TestUnsyncedKeepsOnlyTheLatestVersions(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := openMem(t, WithLocalSyncInterval(time.Hour), WithClock(func() time.Time { return now }))
	ts := s.Task(TaskID{})
	if got := mustGet(t, ts, "hot"); got != "<absent>" { // loads the read cache: the task's state is known
		t.Fatalf("hot = %s in a new store", got)
	}
	const commits = 5000
	for i := range commits {
		ts.Set([]byte("hot"), fmt.Appendf(nil, "v%d", i))
		ts.Set(fmt.Appendf(nil, "brief%d", i), []byte("x"))
		if i > 0 {
			ts.Delete(fmt.Appendf(nil, "brief%d", i-1))
		}
		ts.Flush()
		if err := ts.CommitPending(int64(i), map[string]int64{"changelog": int64(i)}); err != nil {
			t.Fatal(err)
		}
		if n := len(ts.unsynced.list); n > 3000 {
			t.Fatalf("after %d commits %d entries wait to be synced; want the latest of each key", i+1, n)
		}
	}
	if got := mustGet(t, ts, "hot"); got != fmt.Sprintf("v%d", commits-1) {
		t.Fatalf("hot = %s before the sync", got)
	}
	if err := ts.Sync(); err != nil {
		t.Fatal(err)
	}
	got := scanAll(t, ts)
	want := map[string]string{"hot": fmt.Sprintf("v%d", commits-1), fmt.Sprintf("brief%d", commits-1): "x"}
	if !maps.Equal(got, want) {
		t.Fatalf("Pebble holds %q; want %q", got, want)
	}
}

// TestSetNewAfterAFlushedDelete: a key deleted in one flush and set anew
// (SetNew) in the next, both committed together, existed before them: its
// later deletion must still reach Pebble.
func TestSetNewAfterAFlushedDelete(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := openMem(t, WithLocalSyncInterval(time.Hour), WithClock(func() time.Time { return now }))
	ts := s.Task(TaskID{})
	ts.Uncached([]byte("t/"))
	k := []byte("t/1")
	commit := func(id int64) {
		t.Helper()
		if err := ts.CommitPending(id, map[string]int64{"changelog": id}); err != nil {
			t.Fatal(err)
		}
	}
	ts.Set(k, []byte("a"))
	ts.Flush()
	commit(1)
	if err := ts.Sync(); err != nil { // Pebble has k
		t.Fatal(err)
	}
	ts.Delete(k)
	ts.Flush()
	ts.SetNew(k, []byte("b")) // absent as the task sees it
	ts.Flush()
	commit(2)
	ts.Delete(k)
	ts.Flush()
	commit(3)
	if err := ts.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := scanAll(t, ts); len(got) > 0 {
		t.Errorf("Pebble holds %q after its deletion", got)
	}
}
