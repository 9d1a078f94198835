// Package procmem reads the process's memory figures from /proc, for the
// benchmarks that report them beside their rates.
package procmem

import (
	"bytes"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"testing"
)

// ReportMemory collects garbage, returns what it can to the OS, and
// reports the Go heap in use (heap-MiB) and the process's resident memory
// (rss-MiB) as metrics of b.
func ReportMemory(b *testing.B) {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
	b.ReportMetric(float64(ResidentKiB())/1024, "rss-MiB")
}

// ResidentKiB is the process's resident memory (VmRSS) in KiB, 0 where
// unknown (no /proc).
func ResidentKiB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			v, _ := strconv.ParseInt(string(bytes.TrimSuffix(bytes.TrimSpace(rest), []byte(" kB"))), 10, 64)
			return v
		}
	}
	return 0
}
