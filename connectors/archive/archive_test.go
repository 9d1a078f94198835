package archive_test

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/connectors/archive"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/weirtest"
)

type click struct {
	User string    `json:"user" parquet:"user"`
	Page string    `json:"page" parquet:"page"`
	Seq  int64     `json:"seq" parquet:"seq"`
	At   time.Time `json:"at" parquet:"at,timestamp(millisecond)"`
}

var ten = time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC)

func clickJob(name string, store archive.Store, format archive.Format[click], opts ...archive.Opt) *engine.Job {
	job := engine.NewJob(name)
	clicks := connectors.KafkaSource(job, "clicks", codec.JSON[click]())
	archive.Sink(clicks, "clicks", store, format, opts...)
	return job
}

func send(t *testing.T, h *weirtest.Harness, seqs ...int64) {
	t.Helper()
	for _, s := range seqs {
		c := click{User: fmt.Sprint("u", s%3), Page: fmt.Sprint("/p", s), Seq: s, At: ten.Add(time.Duration(s) * time.Second)}
		if err := weirtest.SendValue(h, "clicks", codec.JSON[click](), c.User, c, c.At); err != nil {
			t.Fatal(err)
		}
	}
}

func checkpoint(t *testing.T, h *weirtest.Harness) {
	t.Helper()
	if err := h.Checkpoint(); err != nil {
		t.Fatal(err)
	}
}

// files lists the archive's files (relative, slash-separated), without
// the temporary folder.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".weir-tmp" {
			return fs.SkipDir
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return out
}

func readJSONLines(t *testing.T, path string) []int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []int64
	sc := bufio.NewScanner(zr)
	for sc.Scan() {
		c, err := codec.JSON[click]().Decode(sc.Bytes())
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		seqs = append(seqs, c.Seq)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return seqs
}

// TestArchiveExactlyOnceAcrossCrashes: files appear only once the
// checkpoint covering their records committed, a crash before that leaves
// no file and seals the same one again, and every record lands in exactly
// one file, named by the task and its first record.
func TestArchiveExactlyOnceAcrossCrashes(t *testing.T) {
	dir := t.TempDir()
	h := weirtest.New(t, clickJob("archive-crash", archive.LocalDir(dir), archive.JSONLines(codec.JSON[click]()), archive.RollRecords(3)))
	send(t, h, 0, 1, 2, 3, 4)
	if got := files(t, dir); len(got) != 0 {
		t.Fatalf("files before any checkpoint: %v", got)
	}
	checkpoint(t, h)
	first := "clicks/dt=2024-01-01/hour=10/0_0-00000000000000000000.jsonl.gz"
	if got := files(t, dir); !slices.Equal(got, []string{first}) {
		t.Fatalf("after the first checkpoint: %v, want [%s]", got, first)
	}
	send(t, h, 5, 6) // seals 3, 4, 5; 6 opens the next file
	if err := h.Crash(); err != nil {
		t.Fatal(err)
	}
	if got := files(t, dir); len(got) != 1 {
		t.Fatalf("a crash before the commit made files visible: %v", got)
	}
	checkpoint(t, h)
	second := "clicks/dt=2024-01-01/hour=10/0_0-00000000000000000003.jsonl.gz"
	if got := files(t, dir); !slices.Equal(got, []string{first, second}) {
		t.Fatalf("after the replay's checkpoint: %v", got)
	}
	// The last file rolls when idle for its inactivity, at a checkpoint.
	if err := h.AdvanceTime(2 * time.Minute); err != nil {
		t.Fatal(err)
	}
	checkpoint(t, h)
	third := "clicks/dt=2024-01-01/hour=10/0_0-00000000000000000006.jsonl.gz"
	got := files(t, dir)
	if !slices.Equal(got, []string{first, second, third}) {
		t.Fatalf("after the idle roll: %v", got)
	}
	var all []int64
	for _, f := range got {
		all = append(all, readJSONLines(t, filepath.Join(dir, f))...)
	}
	if want := []int64{0, 1, 2, 3, 4, 5, 6}; !slices.Equal(all, want) {
		t.Fatalf("records in the files %v, want %v once each", all, want)
	}
}

// TestArchiveCrashAfterTheCommitWritesTheSameFileAgain: a replica that
// dies after the commit, with the file written but its rows still in the
// state the next owner restores, writes the same file again: same name,
// same bytes, no second copy.
func TestArchiveCrashAfterTheCommitWritesTheSameFileAgain(t *testing.T) {
	dir := t.TempDir()
	store := &failing{Store: archive.LocalDir(dir)}
	h := weirtest.New(t, clickJob("archive-again", store, archive.JSONLines(codec.JSON[click]()), archive.RollRecords(2)))
	send(t, h, 0, 1)
	checkpoint(t, h) // written; the rows leave the state in the next checkpoint
	before := files(t, dir)
	b0, err := os.ReadFile(filepath.Join(dir, before[0]))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Crash(); err != nil {
		t.Fatal(err)
	}
	if store.puts.Load() != 2 {
		t.Fatalf("%d puts, want the file written again at the restart", store.puts.Load())
	}
	after := files(t, dir)
	b1, _ := os.ReadFile(filepath.Join(dir, after[0]))
	if !slices.Equal(before, after) || string(b0) != string(b1) {
		t.Fatalf("files %v then %v (same bytes: %v), want one file, the same", before, after, string(b0) == string(b1))
	}
	checkpoint(t, h)
	if err := h.Crash(); err != nil {
		t.Fatal(err)
	}
	if store.puts.Load() != 2 {
		t.Fatalf("%d puts: the file was written again after a checkpoint dropped its rows", store.puts.Load())
	}
}

// failing is a Store that fails while down, and counts puts that worked.
type failing struct {
	archive.Store
	down atomic.Bool
	puts atomic.Int64
}

func (f *failing) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if f.down.Load() {
		return errors.New("store unreachable")
	}
	f.puts.Add(1)
	return f.Store.Put(ctx, name, r, size)
}

// TestArchiveStoreDownKeepsTheFilesUntilItIsBack: a store that fails
// leaves sealed files in state, tried at each commit, lost by nobody.
func TestArchiveStoreDownKeepsTheFilesUntilItIsBack(t *testing.T) {
	dir := t.TempDir()
	store := &failing{Store: archive.LocalDir(dir)}
	store.down.Store(true)
	h := weirtest.New(t, clickJob("archive-down", store, archive.JSONLines(codec.JSON[click]()), archive.RollRecords(2)))
	send(t, h, 0, 1, 2, 3)
	checkpoint(t, h)
	checkpoint(t, h)
	if got := files(t, dir); len(got) != 0 {
		t.Fatalf("files while the store is down: %v", got)
	}
	if err := h.Crash(); err != nil { // the sealed files are state
		t.Fatal(err)
	}
	store.down.Store(false)
	send(t, h, 4)
	checkpoint(t, h)
	got := files(t, dir)
	if len(got) != 2 {
		t.Fatalf("files once the store is back: %v, want 2", got)
	}
	var all []int64
	for _, f := range got {
		all = append(all, readJSONLines(t, filepath.Join(dir, f))...)
	}
	if !slices.Equal(all, []int64{0, 1, 2, 3}) {
		t.Fatalf("records %v", all)
	}
}

// TestArchiveParquetByHourAndEndOfInput: Parquet files, one per hour of
// event time, read back with parquet-go with the type's schema; the end
// of input closes the open files.
func TestArchiveParquetByHourAndEndOfInput(t *testing.T) {
	dir := t.TempDir()
	h := weirtest.New(t, clickJob("archive-parquet", archive.LocalDir(dir), archive.Parquet[click](), archive.Prefix("lake/raw")))
	send(t, h, 0, 1, 3599, 3600, 7300)
	checkpoint(t, h)
	if got := files(t, dir); len(got) != 0 {
		t.Fatalf("files before they roll: %v", got)
	}
	if err := h.EndInput(); err != nil {
		t.Fatal(err)
	}
	checkpoint(t, h)
	got := files(t, dir)
	want := []string{
		"lake/raw/clicks/dt=2024-01-01/hour=10/0_0-00000000000000000000.parquet",
		"lake/raw/clicks/dt=2024-01-01/hour=11/0_0-00000000000000000003.parquet",
		"lake/raw/clicks/dt=2024-01-01/hour=12/0_0-00000000000000000004.parquet",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("files %v, want %v", got, want)
	}
	f, err := os.Open(filepath.Join(dir, want[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	var cols []string
	for _, c := range pf.Schema().Fields() {
		cols = append(cols, c.Name())
	}
	if !slices.Equal(cols, []string{"user", "page", "seq", "at"}) {
		t.Fatalf("columns %v", cols)
	}
	rows, err := parquet.Read[click](f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || rows[2].Seq != 3599 || !rows[2].At.Equal(ten.Add(3599*time.Second)) || rows[0].Page != "/p0" {
		t.Fatalf("rows %+v", rows)
	}
}

// TestArchiveLeftoversAreCleanedAtStart: what an upload cut by a crash
// left in the temporary folder is removed when the task starts; other
// tasks' leftovers are not this task's to remove.
func TestArchiveLeftoversAreCleanedAtStart(t *testing.T) {
	dir := t.TempDir()
	tmp := filepath.Join(dir, ".weir-tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"0_0-00000000000000000000.jsonl.gz.abc.tmp", "0_1-00000000000000000000.jsonl.gz.abc.tmp"} {
		if err := os.WriteFile(filepath.Join(tmp, n), []byte("part"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	weirtest.New(t, clickJob("archive-clean", archive.LocalDir(dir), archive.JSONLines(codec.JSON[click]())))
	left, _ := os.ReadDir(tmp)
	if len(left) != 1 || !strings.HasPrefix(left[0].Name(), "0_1-") {
		t.Fatalf("left in the temporary folder: %v, want only task 0_1's", left)
	}
}

// TestArchivePartitionByAField: files partitioned by what the user picks.
func TestArchivePartitionByAField(t *testing.T) {
	dir := t.TempDir()
	h := weirtest.New(t, clickJob("archive-field", archive.LocalDir(dir), archive.JSONLines(codec.JSON[click]()),
		archive.PartitionBy(func(r engine.Record[click]) string { return "user=" + r.Value.User })))
	send(t, h, 0, 1, 2, 3)
	if err := h.EndInput(); err != nil {
		t.Fatal(err)
	}
	checkpoint(t, h)
	want := []string{
		"clicks/user=u0/0_0-00000000000000000000.jsonl.gz",
		"clicks/user=u1/0_0-00000000000000000001.jsonl.gz",
		"clicks/user=u2/0_0-00000000000000000002.jsonl.gz",
	}
	if got := files(t, dir); !slices.Equal(got, want) {
		t.Fatalf("files %v, want %v", got, want)
	}
	if got := readJSONLines(t, filepath.Join(dir, want[0])); !slices.Equal(got, []int64{0, 3}) {
		t.Fatalf("user u0's records %v", got)
	}
}

// TestArchiveMistakesAreTopologyErrors: what cannot work is said at
// start, before any record.
func TestArchiveMistakesAreTopologyErrors(t *testing.T) {
	dir := t.TempDir()
	for name, build := range map[string]func(*engine.Job){
		"Parquet needs a struct": func(job *engine.Job) {
			archive.Sink(connectors.KafkaSource(job, "in", codec.String()), "s", archive.LocalDir(dir), archive.Parquet[string]())
		},
		"PartitionBy takes": func(job *engine.Job) {
			archive.Sink(connectors.KafkaSource(job, "in", codec.String()), "s", archive.LocalDir(dir), archive.JSONLines(codec.String()),
				archive.PartitionBy(func(r engine.Record[int]) string { return "" }))
		},
		"must be positive": func(job *engine.Job) {
			archive.Sink(connectors.KafkaSource(job, "in", codec.String()), "s", archive.LocalDir(dir), archive.JSONLines(codec.String()), archive.RollSize(0))
		},
		"two operators are named": func(job *engine.Job) {
			in := connectors.KafkaSource(job, "in", codec.String())
			archive.Sink(in, "s", archive.LocalDir(dir), archive.JSONLines(codec.String()))
			archive.Sink(in, "s", archive.LocalDir(dir), archive.JSONLines(codec.String()))
		},
	} {
		job := engine.NewJob("mistake")
		build(job)
		_, err := weirtest.Start(job)
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: start said %v", name, err)
		}
	}
}

// TestArchivePartitionPathStaysInside: a partition path that would leave
// the archive ("..") is the record's error, under the job's error policy;
// nothing is written outside.
func TestArchivePartitionPathStaysInside(t *testing.T) {
	dir := t.TempDir()
	archiveDir := filepath.Join(dir, "archive")
	h := weirtest.New(t, clickJob("archive-escape", archive.LocalDir(archiveDir), archive.JSONLines(codec.JSON[click]()),
		archive.PartitionBy(func(r engine.Record[click]) string { return "../" + r.Value.User })))
	c := click{User: "u0", Seq: 0, At: ten}
	err := weirtest.SendValue(h, "clicks", codec.JSON[click](), c.User, c, c.At)
	if err == nil || !strings.Contains(err.Error(), `partition path "../u0"`) {
		t.Fatalf("send: %v, want the partition path refused", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("written outside the archive: %v", ents)
	}
}
