package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/parquet-go/parquet-go"

	"github.com/weirstream/weir/e2e/jobs/shared"
	"github.com/weirstream/weir/internal/kafkatest"
	"github.com/weirstream/weir/internal/s3test"
)

// archived reads every record of the archive's files under prefix: the
// (user, seq) ids with how often each appears, and the files.
func archived(t *testing.T, cl *minio.Client, bucket, prefix string) (map[string]int, []string) {
	t.Helper()
	counts := map[string]int{}
	names := s3test.Objects(t, cl, bucket, prefix)
	for _, name := range names {
		b := s3test.Get(t, cl, bucket, name)
		var rows []shared.Archived
		switch {
		case strings.HasSuffix(name, ".parquet"):
			f, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if got := f.Schema().String(); !strings.Contains(got, "user") || !strings.Contains(got, "int64 seq") {
				t.Fatalf("%s has schema %s, want user and int64 seq", name, got)
			}
			if rows, err = parquet.Read[shared.Archived](bytes.NewReader(b), int64(len(b))); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		case strings.HasSuffix(name, ".jsonl.gz"):
			zr, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			sc := bufio.NewScanner(zr)
			for sc.Scan() {
				var a shared.Archived
				if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				rows = append(rows, a)
			}
			if err := sc.Err(); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		default:
			t.Fatalf("unexpected object %s", name)
		}
		for _, r := range rows {
			counts[r.User+"/"+strconv.FormatInt(r.Seq, 10)]++
		}
	}
	return counts, names
}

// TestArchiveCrashesExactlyOnce SIGKILLs a job that archives its input
// to a real S3 server (scripts/s3.sh), as Parquet and as JSON lines, five
// times while input arrives, restarting it at once. Every input record
// must be in exactly one object of each archive, none partial, no upload
// left incomplete; the Parquet files read back with the type's schema,
// and DuckDB's read_parquet over the Hive-partitioned folder counts what
// the input holds.
func TestArchiveCrashesExactlyOnce(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	cl, bucket := s3test.Bucket(t)
	in := kafkatest.CreateTopic(t, brokers, "archive-in", partitions)
	prefix := kafkatest.Name("lake")
	group := kafkatest.Name("archive")
	const users, perUser = 100, 120
	bot := func(u, seq int) bool { return (u+seq)%11 == 0 }
	want := wantIDs(users, perUser, bot)
	input := events(in, users, perUser, bot)

	produced := produceInSlices(t, brokers, placed(input, partitions), len(input)/250, 100*time.Millisecond) // about 5 s of input

	r := &replica{name: "archive", job: "archive", env: []string{"JOB_INPUT=" + in, "JOB_OUTPUT=" + prefix,
		"WEIR_BROKERS=" + strings.Join(brokers, ","), "WEIR_GROUP=" + group, "WEIR_METRICS_ADDR=",
		"WEIR_CHECKPOINT_INTERVAL=200ms", "WEIR_STATE_DIR=" + t.TempDir(), "WEIR_S3_BUCKET=" + bucket}}
	r.start(t)
	rng := rand.New(rand.NewPCG(3, 5))
	for range 5 {
		time.Sleep(time.Duration(800+rng.IntN(1500)) * time.Millisecond) // the schedule, not a wait for a state
		if err := r.p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-r.p.done
		r.start(t)
	}
	<-produced
	// The last files roll once idle for 2 s, at a checkpoint.
	for _, archive := range []string{"events", "events-jsonl"} {
		kafkatest.Eventually(t, 2*time.Minute, "every record in archive "+archive, func() bool {
			counts, _ := archived(t, cl, bucket, prefix+"/"+archive+"/")
			return len(counts) == len(want)
		})
	}
	r.stop(t, nil)

	for _, archive := range []string{"events", "events-jsonl"} {
		counts, files := archived(t, cl, bucket, prefix+"/"+archive+"/")
		for id, n := range counts {
			if !want[id] {
				t.Fatalf("%s: unexpected record %s", archive, id)
			}
			if n != 1 {
				t.Errorf("%s: record %s in %d files", archive, id, n)
			}
		}
		t.Logf("archive %s: %d records in %d files", archive, len(counts), len(files))
	}
	if left := s3test.IncompleteUploads(t, cl, bucket, prefix+"/"); len(left) > 0 {
		t.Errorf("incomplete uploads left: %v", left)
	}
	queryWithDuckDB(t, cl, bucket, prefix+"/events/", len(want))
}

// queryWithDuckDB copies the Parquet archive to a folder, as an analyst's
// sync would, and counts it with DuckDB's read_parquet, reading the Hive
// partitions (dt, hour) as columns. Skipped without python3.
func queryWithDuckDB(t *testing.T, cl *minio.Client, bucket, prefix string, want int) {
	t.Helper()
	dir := t.TempDir()
	for _, name := range s3test.Objects(t, cl, bucket, prefix) {
		p := filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(name, prefix)))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, s3test.Get(t, cl, bucket, name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	query := fmt.Sprintf(`import duckdb
r = duckdb.sql("select count(*), count(distinct user || '/' || seq), count(distinct dt), bool_and(dt is not null and hour is not null) from read_parquet('%s/**/*.parquet', hive_partitioning = true)").fetchall()[0]
print(*r)`, dir)
	cmd := exec.Command("bash", filepath.Join("..", "scripts", "duckdb.sh"), "-c", query)
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok {
		if ee.ExitCode() == 3 {
			t.Log("no python3: DuckDB's read_parquet not tried")
			return
		}
		t.Fatalf("DuckDB: %v\n%s", err, ee.Stderr)
	}
	if err != nil {
		t.Fatalf("DuckDB: %v", err)
	}
	fields := strings.Fields(string(out))
	if len(fields) != 4 || fields[0] != strconv.Itoa(want) || fields[1] != strconv.Itoa(want) || fields[3] != "True" {
		t.Fatalf("DuckDB counted %q (rows, distinct records, days, hour column), want %d rows, all distinct", out, want)
	}
	t.Logf("DuckDB read_parquet: %s rows, %s distinct, %s days", fields[0], fields[1], fields[2])
}
