// Package registry connects Weir's schema codecs (codec/avro,
// codec/protobuf) to a Confluent-compatible schema registry (Confluent
// Schema Registry, Apicurio's ccompat API, Redpanda, Karapace) through
// franz-go's own client, github.com/twmb/franz-go/pkg/sr.
//
// Records carry the registry's wire format: a zero magic byte, the schema
// id in four big-endian bytes, for Protobuf the message indexes, then the
// payload. A Registry caches what it learned (ids by schema, schemas by
// id) for the life of the job, so the registry is asked once per schema,
// not per record.
package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/weirstream/weir/engine"
)

// ErrUnknownSchema is returned for a record whose schema id the registry
// does not know: a decode error, which the job's error policy handles (a
// dead letter, say), never a panic.
var ErrUnknownSchema = errors.New("schema id unknown to the registry")

// ErrIncompatible is returned when the registry refuses to register a
// codec's schema under its subject: it breaks the subject's compatibility
// rule (a field removed without a default under BACKWARD, say). The
// registry's message says which.
var ErrIncompatible = errors.New("schema incompatible with the subject's earlier versions")

// Registry is a schema registry client with caches, shared by every codec
// of a job. It is safe for concurrent use.
type Registry struct {
	cl      *sr.Client
	timeout time.Duration

	mu       sync.Mutex
	byID     map[int]sr.Schema
	unknown  map[int]bool
	register map[registration]int
}

type registration struct {
	subject, schema string
	typ             sr.SchemaType
}

// Opt configures a Registry.
type Opt func(*Registry, *[]sr.ClientOpt)

// WithTimeout bounds each call to the registry. Default: 10s.
func WithTimeout(d time.Duration) Opt { return func(r *Registry, _ *[]sr.ClientOpt) { r.timeout = d } }

// WithClientOpts passes options to franz-go's registry client: basic auth
// (sr.BasicAuth), an HTTP client with TLS (sr.HTTPClient), and so on.
func WithClientOpts(opts ...sr.ClientOpt) Opt {
	return func(_ *Registry, o *[]sr.ClientOpt) { *o = append(*o, opts...) }
}

// New returns a Registry for the registry at urls (its Confluent API's
// base URL: for Apicurio, http://host:port/apis/ccompat/v7).
func New(urls []string, opts ...Opt) (*Registry, error) {
	r := &Registry{timeout: 10 * time.Second, byID: map[int]sr.Schema{}, unknown: map[int]bool{}, register: map[registration]int{}}
	var copts []sr.ClientOpt
	for _, o := range opts {
		o(r, &copts)
	}
	cl, err := sr.NewClient(append([]sr.ClientOpt{sr.URLs(urls...)}, copts...)...)
	if err != nil {
		return nil, fmt.Errorf("schema registry: %w", err)
	}
	r.cl = cl
	return r, nil
}

// Client returns franz-go's registry client underneath, for what the
// codecs do not do (compatibility levels, deletions).
func (r *Registry) Client() *sr.Client { return r.cl }

// TopicValue is the subject of a topic's values under the registry's
// default topic-name strategy: "<topic>-value".
func TopicValue(topic string) string { return topic + "-value" }

// TopicKey is the subject of a topic's keys: "<topic>-key".
func TopicKey(topic string) string { return topic + "-key" }

// Register registers schema under subject, or finds it there if it is
// already, and returns its id. The result is cached: a codec calls it on
// its first Encode. A schema the subject's compatibility rule refuses is
// ErrIncompatible, with the registry's reason.
func (r *Registry) Register(ctx context.Context, subject string, s sr.Schema) (int, error) {
	key := registration{subject: subject, schema: s.Schema, typ: s.Type}
	r.mu.Lock()
	id, ok := r.register[key]
	r.mu.Unlock()
	if ok {
		return id, nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	id, err := r.cl.RegisterSchema(ctx, subject, s, -1, -1)
	if err != nil {
		var re *sr.ResponseError
		if errors.As(err, &re) && (re.StatusCode == http.StatusConflict || re.ErrorCode == 409) {
			return 0, fmt.Errorf("schema registry: subject %s: %w: %s", subject, ErrIncompatible, re.Message)
		}
		return 0, transient(fmt.Errorf("schema registry: registering a schema under subject %s: %w", subject, err))
	}
	r.mu.Lock()
	r.register[key] = id
	r.byID[id] = s
	r.mu.Unlock()
	return id, nil
}

// SchemaByID returns the schema with id, asking the registry the first
// time. An id the registry does not know is ErrUnknownSchema, remembered
// so a stream of such records does not flood the registry; other errors
// (the registry unreachable) are not, and the next call asks again.
func (r *Registry) SchemaByID(ctx context.Context, id int) (sr.Schema, error) {
	r.mu.Lock()
	s, ok := r.byID[id]
	unknown := r.unknown[id]
	r.mu.Unlock()
	if ok {
		return s, nil
	}
	if unknown {
		return sr.Schema{}, fmt.Errorf("schema registry: id %d: %w", id, ErrUnknownSchema)
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	s, err := r.cl.SchemaByID(ctx, id)
	if err != nil {
		var re *sr.ResponseError
		if errors.As(err, &re) && (re.StatusCode == http.StatusNotFound || re.ErrorCode == 40403) {
			r.mu.Lock()
			r.unknown[id] = true
			r.mu.Unlock()
			return sr.Schema{}, fmt.Errorf("schema registry: id %d: %w", id, ErrUnknownSchema)
		}
		return sr.Schema{}, transient(fmt.Errorf("schema registry: looking up schema id %d: %w", id, err))
	}
	r.mu.Lock()
	r.byID[id] = s
	r.mu.Unlock()
	return s, nil
}

// transient marks an error of the registry that is not about the schema
// (unreachable, a timeout, a 5xx) as engine.Retryable: the record in hand
// is tried again with backoff, the task holding its place, before the
// job's error policy applies; the circuit breaker halts a replica whose
// records keep failing so, rather than dead-letter a whole topic. A 4xx
// other than the ones handled is the request's fault and is not retried.
func transient(err error) error {
	var re *sr.ResponseError
	if errors.As(err, &re) && re.StatusCode >= 400 && re.StatusCode < 500 && re.StatusCode != http.StatusTooManyRequests {
		return err
	}
	return engine.Retryable(err)
}

// header is the registry's wire format.
var header sr.ConfluentHeader

// AppendHeader appends the wire format's header for schema id and, for
// Protobuf, the message indexes (nil for Avro) to b.
func AppendHeader(b []byte, id int, index []int) ([]byte, error) {
	return header.AppendEncode(b, id, index)
}

// SplitHeader returns the schema id of a record in the wire format and
// what follows the id. A value too short or without the zero magic byte is
// an error.
func SplitHeader(b []byte) (id int, rest []byte, err error) {
	id, rest, err = header.DecodeID(b)
	if err != nil {
		return 0, nil, fmt.Errorf("schema registry wire format: %w (%d bytes)", err, len(b))
	}
	return id, rest, nil
}

// SplitIndex returns the Protobuf message indexes at the start of b and
// what follows them.
func SplitIndex(b []byte) (index []int, rest []byte, err error) {
	index, rest, err = header.DecodeIndex(b, 64)
	if err != nil {
		return nil, nil, fmt.Errorf("schema registry wire format: message indexes: %w", err)
	}
	return index, rest, nil
}
