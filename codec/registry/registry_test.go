package registry_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/weirstream/weir/codec/registry"
	"github.com/weirstream/weir/engine"
)

// An unknown id is the record's fault: not retried, the policy applies at
// once. A registry that fails (a 503 here, or unreachable) is not: the
// error is retryable, so the record is tried again before any policy.
func TestRegistryErrorsSayWhetherToRetry(t *testing.T) {
	fake := srfake.New()
	defer fake.Close()
	reg, err := registry.New([]string{fake.URL()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = reg.SchemaByID(context.Background(), 77)
	if !errors.Is(err, registry.ErrUnknownSchema) || engine.IsRetryable(err) {
		t.Fatalf("unknown id: %v (retryable %v), want ErrUnknownSchema, not retryable", err, engine.IsRetryable(err))
	}
	fake.Intercept(func(w http.ResponseWriter, _ *http.Request) bool {
		http.Error(w, `{"error_code":50001,"message":"store down"}`, http.StatusServiceUnavailable)
		return true
	})
	_, err = reg.SchemaByID(context.Background(), 78)
	if err == nil || errors.Is(err, registry.ErrUnknownSchema) || !engine.IsRetryable(err) {
		t.Fatalf("registry down: %v (retryable %v), want a retryable error", err, engine.IsRetryable(err))
	}
	gone, err := registry.New([]string{"http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gone.SchemaByID(context.Background(), 1); !engine.IsRetryable(err) {
		t.Fatalf("registry unreachable: %v, want a retryable error", err)
	}
}
