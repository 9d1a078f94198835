//go:build weirfault

package engine

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// faults are the crash points WEIR_FAULT turns on, with a probability
// each: "after-commit:0.2" kills the process (SIGKILL, no cleanup) at one
// in five checkpoints right after Kafka committed the transaction and
// before the state reached Pebble. Crash tests build the job with -tags
// weirfault to reach moments a kill from outside rarely hits.
var faults = parseFaults(os.Getenv("WEIR_FAULT"))

func parseFaults(s string) map[string]float64 {
	m := map[string]float64{}
	for f := range strings.SplitSeq(s, ",") {
		name, p, ok := strings.Cut(strings.TrimSpace(f), ":")
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(p, 64); err == nil {
			m[name] = v
		}
	}
	return m
}

func faultPoint(name string) {
	if p, ok := faults[name]; ok && rand.Float64() < p {
		fmt.Fprintf(os.Stderr, "weir: fault injected at %s: killing the process\n", name)
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
}
