package engine

// This file owns what the probes report: readiness (/readyz), liveness
// (/healthz) and the circuit breaker's effect on them.

import (
	"fmt"
	"time"

	"go.uber.org/zap"
)

// liveness reports whether the replica moves: its poll loop comes round,
// and no task has been on one chunk of records for longer than the
// liveness timeout. If not, it says what is stuck.
func (rt *runtime) liveness() (bool, string) {
	if rt.cfg.LivenessTimeout <= 0 || !rt.polling.Load() {
		return true, ""
	}
	if since := time.Since(time.Unix(0, rt.looped.Load())); since > rt.cfg.LivenessTimeout {
		return false, fmt.Sprintf("the poll loop has not come round for %v (a task stuck in user code holds every checkpoint)", since.Round(time.Second))
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for id, tr := range rt.mu.tasks {
		if b := tr.busy.Load(); b != 0 {
			if since := time.Since(time.Unix(0, b)); since > rt.cfg.LivenessTimeout {
				return false, fmt.Sprintf("task %s has been on the same records for %v (user code that does not return?)", id, since.Round(time.Second))
			}
		}
	}
	return true, ""
}

// breakerChanged follows the circuit breaker: a halted replica is not
// ready, says why, and counts; a resumed one wakes its tasks, which go on
// with the record after the one that tripped the breaker.
func (rt *runtime) breakerChanged(halted bool, why string) {
	rt.obs.CircuitBreaker(halted, why)
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if halted {
		rt.log.Error("replica halted", zap.String("why", why))
	} else {
		rt.log.Warn("replica resumed; the circuit breaker counts afresh",
			zap.Float64("threshold", rt.failures.settings.Load().threshold))
		for _, tr := range rt.mu.tasks {
			select {
			case tr.in.notify <- struct{}{}:
			default:
			}
		}
	}
	rt.updateReadyLocked()
}

func (rt *runtime) setNotReady(why string) {
	rt.notReadyMu.Lock()
	rt.notReady = why
	rt.notReadyMu.Unlock()
	rt.ready.Store(false)
	rt.obs.Ready(false)
}

func (rt *runtime) setReady() {
	rt.notReadyMu.Lock()
	rt.notReady = ""
	rt.notReadyMu.Unlock()
	rt.ready.Store(true)
	rt.obs.Ready(true)
}

// readiness reports whether the replica is ready, and why not.
func (rt *runtime) readiness() (bool, string) {
	rt.notReadyMu.Lock()
	defer rt.notReadyMu.Unlock()
	return rt.ready.Load(), rt.notReady
}

func (rt *runtime) updateReadyLocked() {
	if halted, why := rt.failures.halted(); halted {
		rt.setNotReady(why)
		return
	}
	if rt.mu.restoring > 0 {
		rt.setNotReady(fmt.Sprintf("restoring the state of %d tasks", rt.mu.restoring))
		return
	}
	rt.setReady()
}
