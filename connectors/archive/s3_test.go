package archive_test

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/parquet-go/parquet-go"

	"github.com/weirstream/weir/connectors/archive"
	"github.com/weirstream/weir/internal/s3test"
	"github.com/weirstream/weir/weirtest"
)

// TestArchiveToARealS3Server: the sink's files on an S3 server, visible
// only once committed, read back as Parquet with the type's schema; an
// upload a crash cut (a multipart upload never completed) is aborted when
// the task starts.
func TestArchiveToARealS3Server(t *testing.T) {
	cl, bucket := s3test.Bucket(t)
	store, err := archive.S3FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// A multipart upload of task 0_0 a crash cut, and one of task 0_1.
	core := minio.Core{Client: cl}
	for _, name := range []string{"raw/clicks/dt=2024-01-01/hour=10/0_0-00000000000000000007.parquet", "raw/clicks/dt=2024-01-01/hour=10/0_1-00000000000000000000.parquet"} {
		id, err := core.NewMultipartUpload(ctx, bucket, name, minio.PutObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := core.PutObjectPart(ctx, bucket, name, id, 1, bytes.NewReader([]byte("part")), 4, minio.PutObjectPartOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	h := weirtest.New(t, clickJob("archive-s3", store, archive.Parquet[click](), archive.Prefix("raw"), archive.RollRecords(2)))
	if left := s3test.IncompleteUploads(t, cl, bucket, "raw/"); len(left) != 1 || !strings.Contains(left[0], "/0_1-") {
		t.Fatalf("incomplete uploads after the start: %v, want only task 0_1's", left)
	}
	send(t, h, 0, 1, 2)
	if got := s3test.Objects(t, cl, bucket, ""); len(got) != 0 {
		t.Fatalf("objects before the checkpoint: %v", got)
	}
	if err := h.Crash(); err != nil {
		t.Fatal(err)
	}
	checkpoint(t, h)
	if err := h.AdvanceTime(2 * time.Minute); err != nil {
		t.Fatal(err)
	}
	checkpoint(t, h)
	want := []string{
		"raw/clicks/dt=2024-01-01/hour=10/0_0-00000000000000000000.parquet",
		"raw/clicks/dt=2024-01-01/hour=10/0_0-00000000000000000002.parquet",
	}
	got := s3test.Objects(t, cl, bucket, "")
	if !slices.Equal(got, want) {
		t.Fatalf("objects %v, want %v", got, want)
	}
	var seqs []int64
	for _, name := range got {
		b := s3test.Get(t, cl, bucket, name)
		rows, err := parquet.Read[click](bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, r := range rows {
			seqs = append(seqs, r.Seq)
		}
	}
	if !slices.Equal(seqs, []int64{0, 1, 2}) {
		t.Fatalf("records %v, want 0 1 2 once each", seqs)
	}
}
