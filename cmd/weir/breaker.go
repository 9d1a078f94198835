package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/weirstream/weir/engine"
)

// newBreakerCmd builds weir breaker: see and resume a replica's circuit
// breaker through its HTTP server (WEIR_METRICS_ADDR).
func newBreakerCmd() *cobra.Command {
	var addr string
	var threshold float64
	cmd := &cobra.Command{
		Use:   "breaker",
		Short: "See or resume a replica's circuit breaker",
		Long: `A replica halts when more than the breaker's threshold of an operator's last
records failed: it processes and commits nothing more, and /readyz says why.
These commands talk to the replica's metrics and probe server (its
WEIR_METRICS_ADDR, default :9464).`,
	}
	call := func(cmd *cobra.Command, method, path string) error {
		base := addr
		if !strings.Contains(base, "://") {
			base = "http://" + base
		}
		u, err := url.Parse(base + path)
		if err != nil {
			return usageError{err}
		}
		req, err := http.NewRequestWithContext(cmd.Context(), method, u.String(), nil)
		if err != nil {
			return usageError{err}
		}
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s %s: %s", method, u, resp.Status)
		}
		var st engine.BreakerStatus
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			return fmt.Errorf("%s %s: %w", method, u, err)
		}
		switch {
		case st.Halted:
			fmt.Fprintf(cmd.OutOrStdout(), "halted: %s\n", st.Reason)
		case st.Resumed:
			fmt.Fprintf(cmd.OutOrStdout(), "resumed (threshold %v of the last %d records)\n", st.Threshold, st.Window)
		default:
			fmt.Fprintf(cmd.OutOrStdout(), "running (threshold %v of the last %d records)\n", st.Threshold, st.Window)
		}
		return nil
	}
	status := &cobra.Command{
		Use: "status --addr HOST:PORT", Short: "Show whether the replica is halted, and why", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return call(cmd, http.MethodGet, "/breaker") },
	}
	resume := &cobra.Command{
		Use: "resume --addr HOST:PORT [--threshold SHARE]", Short: "Resume a halted replica, optionally with a new threshold", Args: cobra.NoArgs,
		Example: `  weir breaker resume --addr orders-job-0.orders-job:9464 --threshold 0.25`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := "/breaker/resume"
			if threshold != 0 {
				if threshold < 0 || threshold >= 1 {
					return usageError{errors.New("--threshold: want a share in (0, 1)")}
				}
				path += "?threshold=" + strconv.FormatFloat(threshold, 'f', -1, 64)
			}
			return call(cmd, http.MethodPost, path)
		},
	}
	for _, c := range []*cobra.Command{status, resume} {
		c.Flags().StringVar(&addr, "addr", "localhost:9464", "the replica's metrics and probe server, host:port")
	}
	resume.Flags().Float64Var(&threshold, "threshold", 0, "new breaker threshold, a share of the window (default: unchanged)")
	cmd.AddCommand(status, resume)
	return cmd
}
