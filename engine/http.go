package engine

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/weirstream/weir/metrics"
)

// probeServer serves /metrics, /healthz and /readyz.
type probeServer struct {
	addr string
	srv  *http.Server
}

func serveHTTP(addr string, prom *metrics.Prometheus, rt *runtime) (*probeServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%w: metrics address %q: %w", ErrConfig, addr, err)
	}
	mux := http.NewServeMux()
	if prom != nil {
		mux.Handle("/metrics", prom.Handler())
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if ok, why := rt.readiness(); !ok {
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return &probeServer{addr: ln.Addr().String(), srv: srv}, nil
}

func (p *probeServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = p.srv.Shutdown(ctx)
}
