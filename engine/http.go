package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"

	"github.com/weirstream/weir/metrics"
)

// probeServer serves /metrics, /healthz, /readyz and the circuit
// breaker: GET /breaker shows it, POST /breaker/resume[?threshold=0.25]
// resumes a halted replica.
type probeServer struct {
	addr string
	srv  *http.Server
}

func serveHTTP(addr string, prom *metrics.Prometheus, rt *runtime, profiles bool) (*probeServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%w: metrics address %q: %w", ErrConfig, addr, err)
	}
	mux := http.NewServeMux()
	if prom != nil {
		mux.Handle("/metrics", prom.Handler())
	}
	if profiles {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if ok, why := rt.liveness(); !ok {
			http.Error(w, "not live: "+why, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if ok, why := rt.readiness(); !ok {
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("GET /breaker", func(w http.ResponseWriter, _ *http.Request) {
		writeBreaker(w, rt.failures, false)
	})
	mux.HandleFunc("POST /breaker/resume", func(w http.ResponseWriter, r *http.Request) {
		var threshold float64
		if s := r.FormValue("threshold"); s != "" {
			f, err := strconv.ParseFloat(s, 64)
			if err != nil || f <= 0 || f >= 1 {
				http.Error(w, fmt.Sprintf("threshold %q: want a share in (0, 1), e.g. 0.25", s), http.StatusBadRequest)
				return
			}
			threshold = f
		}
		was := rt.failures.resume(threshold)
		writeBreaker(w, rt.failures, was)
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

// BreakerStatus is what GET /breaker and POST /breaker/resume answer.
type BreakerStatus struct {
	Halted    bool    `json:"halted"`
	Reason    string  `json:"reason,omitempty"`
	Threshold float64 `json:"threshold"`
	Window    int     `json:"window"`
	// Resumed is set by POST /breaker/resume when the replica was halted.
	Resumed bool `json:"resumed,omitempty"`
}

func writeBreaker(w http.ResponseWriter, fc *failureControl, resumed bool) {
	halted, why := fc.halted()
	s := fc.settings.Load()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(BreakerStatus{Halted: halted, Reason: why, Threshold: s.threshold, Window: s.window, Resumed: resumed})
}
