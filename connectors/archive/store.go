package archive

// This file owns where archive files go: a local directory, or an
// S3-compatible object store through minio-go. Either makes a file visible
// only whole (a rename, a PutObject or a completed multipart upload), so a
// reader never sees a part of one.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Store is where an archive sink puts its files.
type Store interface {
	// Put makes name hold the size bytes r yields, replacing what it held;
	// readers see the whole file or none of it.
	Put(ctx context.Context, name string, r io.Reader, size int64) error
	// Clean removes what uploads that never completed left under prefix
	// (temporary files, multipart parts), for objects whose base name
	// starts with base. Only the task that owns those names calls it.
	Clean(ctx context.Context, prefix, base string) error
	// String says where the store is, for logs.
	String() string
}

// LocalDir is a Store on a local (or mounted) directory: a file is
// written under dir/.weir-tmp, synced, then renamed into place.
func LocalDir(dir string) Store { return localDir{dir: dir} }

type localDir struct{ dir string }

const localTmp = ".weir-tmp"

func (d localDir) String() string { return "dir " + d.dir }

func (d localDir) Put(_ context.Context, name string, r io.Reader, _ int64) error {
	tmpDir := filepath.Join(d.dir, localTmp)
	final := filepath.Join(d.dir, filepath.FromSlash(name))
	if err := os.MkdirAll(tmpDir, 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return err
	}
	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix)
	tmp := filepath.Join(tmpDir, path.Base(name)+"."+hex.EncodeToString(suffix)+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	// The rename is durable once its directory is.
	if dir, err := os.Open(filepath.Dir(final)); err == nil {
		_ = dir.Sync()
		_ = dir.Close()
	}
	return nil
}

func (d localDir) Clean(_ context.Context, _, base string) error {
	ents, err := os.ReadDir(filepath.Join(d.dir, localTmp))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), base) {
			if err := os.Remove(filepath.Join(d.dir, localTmp, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

// S3Config says how to reach an S3-compatible store.
type S3Config struct {
	// Endpoint is host:port, without a scheme (s3.amazonaws.com,
	// 127.0.0.1:8333).
	Endpoint string
	// Bucket holds the archive; it must exist.
	Bucket string
	// Region, if the store needs one.
	Region string
	// AccessKey and SecretKey; when empty, the usual chain is asked:
	// AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, MINIO_ACCESS_KEY/..., then
	// the instance's IAM role.
	AccessKey, SecretKey string
	// Insecure talks plain HTTP (a store on loopback in tests).
	Insecure bool
}

// S3 is a Store on an S3-compatible object store. Files are uploaded with
// PutObject (multipart when large), which makes an object visible only
// once complete; Clean aborts the multipart uploads a crash left.
func S3(cfg S3Config) (Store, error) {
	if cfg.Endpoint == "" || cfg.Bucket == "" {
		return nil, errors.New("archive: S3 needs an endpoint and a bucket")
	}
	creds := credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, "")
	if cfg.AccessKey == "" {
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{}, &credentials.EnvMinio{}, &credentials.IAM{},
		})
	}
	cl, err := minio.New(cfg.Endpoint, &minio.Options{Creds: creds, Secure: !cfg.Insecure, Region: cfg.Region})
	if err != nil {
		return nil, fmt.Errorf("archive: S3 client for %s: %w", cfg.Endpoint, err)
	}
	return s3Store{cl: cl, bucket: cfg.Bucket, endpoint: cfg.Endpoint}, nil
}

type s3Store struct {
	cl               *minio.Client
	bucket, endpoint string
}

func (s s3Store) String() string { return "s3://" + s.bucket + " at " + s.endpoint }

func (s s3Store) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	ct := "application/octet-stream"
	if strings.HasSuffix(name, ".gz") {
		ct = "application/gzip"
	}
	_, err := s.cl.PutObject(ctx, s.bucket, name, r, size, minio.PutObjectOptions{ContentType: ct})
	return err
}

func (s s3Store) Clean(ctx context.Context, prefix, base string) error {
	for up := range s.cl.ListIncompleteUploads(ctx, s.bucket, prefix, true) {
		if up.Err != nil {
			return up.Err
		}
		if strings.HasPrefix(path.Base(up.Key), base) {
			if err := s.cl.RemoveIncompleteUpload(ctx, s.bucket, up.Key); err != nil {
				return err
			}
		}
	}
	return nil
}

// S3FromEnv is S3 configured from the environment, as a job on
// Kubernetes gets it from a ConfigMap and a Secret:
//
//	WEIR_S3_ENDPOINT             host:port of the store
//	WEIR_S3_BUCKET               the bucket
//	WEIR_S3_REGION               its region, if the store needs one
//	WEIR_S3_ACCESS_KEY[_FILE]    credentials, the _FILE form read from a
//	WEIR_S3_SECRET_KEY[_FILE]    mounted secret; without them, the chain
//	                             S3Config.AccessKey describes
//	WEIR_S3_INSECURE=true        plain HTTP
func S3FromEnv() (Store, error) {
	cfg := S3Config{
		Endpoint: os.Getenv("WEIR_S3_ENDPOINT"), Bucket: os.Getenv("WEIR_S3_BUCKET"), Region: os.Getenv("WEIR_S3_REGION"),
	}
	var err error
	if cfg.AccessKey, err = envOrFile("WEIR_S3_ACCESS_KEY"); err != nil {
		return nil, err
	}
	if cfg.SecretKey, err = envOrFile("WEIR_S3_SECRET_KEY"); err != nil {
		return nil, err
	}
	switch v := os.Getenv("WEIR_S3_INSECURE"); v {
	case "", "false", "0":
	case "true", "1":
		cfg.Insecure = true
	default:
		return nil, fmt.Errorf("archive: WEIR_S3_INSECURE=%q: want true or false", v)
	}
	if cfg.Endpoint == "" || cfg.Bucket == "" {
		return nil, errors.New("archive: set WEIR_S3_ENDPOINT and WEIR_S3_BUCKET")
	}
	return S3(cfg)
}

func envOrFile(name string) (string, error) {
	if f := os.Getenv(name + "_FILE"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("archive: %s_FILE: %w", name, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return os.Getenv(name), nil
}
