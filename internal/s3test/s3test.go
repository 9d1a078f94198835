// Package s3test gives tests a bucket on the real S3-compatible server
// scripts/s3.sh starts (make test does), as internal/kafkatest gives them
// topics on the real broker.
package s3test

import (
	"context"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/weirstream/weir/internal/kafkatest"
)

// Bucket makes a fresh bucket on the server WEIR_S3_ENDPOINT names and
// sets WEIR_S3_BUCKET to it for the test (archive.S3FromEnv, and job
// processes the test starts, read it). Without WEIR_S3_ENDPOINT the test
// is skipped, or fails under WEIR_REQUIRE_S3=1.
func Bucket(t testing.TB) (*minio.Client, string) {
	t.Helper()
	endpoint := os.Getenv("WEIR_S3_ENDPOINT")
	if endpoint == "" {
		if os.Getenv("WEIR_REQUIRE_S3") == "1" {
			t.Fatal("WEIR_REQUIRE_S3=1 but WEIR_S3_ENDPOINT is unset (scripts/s3.sh run starts a server)")
		}
		t.Skip("no S3 server: set WEIR_S3_ENDPOINT (scripts/s3.sh start prints it)")
	}
	cl, err := minio.New(endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(os.Getenv("WEIR_S3_ACCESS_KEY"), os.Getenv("WEIR_S3_SECRET_KEY"), ""),
		Secure: os.Getenv("WEIR_S3_INSECURE") != "true",
	})
	if err != nil {
		t.Fatal(err)
	}
	bucket := strings.ToLower(strings.ReplaceAll(kafkatest.Name("weir"), "_", "-"))
	if err := cl.MakeBucket(context.Background(), bucket, minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	if tt, ok := t.(interface{ Setenv(k, v string) }); ok {
		tt.Setenv("WEIR_S3_BUCKET", bucket)
	}
	return cl, bucket
}

// Objects lists the bucket's objects under prefix, sorted.
func Objects(t testing.TB, cl *minio.Client, bucket, prefix string) []string {
	t.Helper()
	var names []string
	for o := range cl.ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		names = append(names, o.Key)
	}
	slices.Sort(names)
	return names
}

// Get reads an object whole.
func Get(t testing.TB, cl *minio.Client, bucket, name string) []byte {
	t.Helper()
	obj, err := cl.GetObject(context.Background(), bucket, name, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil {
		t.Fatalf("reading %s: %v", name, err)
	}
	return b
}

// IncompleteUploads lists the multipart uploads under prefix that were
// neither completed nor aborted.
func IncompleteUploads(t testing.TB, cl *minio.Client, bucket, prefix string) []string {
	t.Helper()
	var keys []string
	for up := range cl.ListIncompleteUploads(context.Background(), bucket, prefix, true) {
		if up.Err != nil {
			t.Fatal(up.Err)
		}
		keys = append(keys, up.Key)
	}
	return keys
}
