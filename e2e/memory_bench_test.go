package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/internal/kafkatest"
)

// plainBinary builds e2e/jobs/<name> without the race detector, whose
// shadow memory would swamp what a memory benchmark measures.
func plainBinary(b *testing.B, name string) string {
	b.Helper()
	v, _ := builds.LoadOrStore("plain:"+name, &build{})
	bd := v.(*build)
	bd.once.Do(func() {
		bd.path = filepath.Join(binDir, "plain-"+name)
		out, err := exec.Command("go", "build", "-o", bd.path, "./jobs/"+name).CombinedOutput()
		if err != nil {
			bd.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if bd.err != nil {
		b.Fatal(bd.err)
	}
	return bd.path
}

// peakRSS returns a process's peak resident set (VmHWM), in bytes.
func peakRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

// BenchmarkCatchUpMemory catches the keyed counting job (a repartition,
// value state, exactly once, 4 partitions) up on a backlog of small
// records (2M by default; WEIR_BENCH_BACKLOG), in a process of its own,
// once per memory budget, and reports its peak RSS and its throughput.
// The job's state is 1000 counters: what it holds beyond that, it holds
// for the backlog.
func BenchmarkCatchUpMemory(b *testing.B) {
	brokers := kafkatest.Brokers(b)
	n := 2_000_000
	if s := os.Getenv("WEIR_BENCH_BACKLOG"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n <= 0 {
			b.Fatalf("WEIR_BENCH_BACKLOG=%q: want a positive integer", s)
		}
	}
	in := kafkatest.CreateTopic(b, brokers, "backlog", partitions)
	cl := kafkatest.Client(b, brokers, kgo.ProducerLinger(5*time.Millisecond))
	const chunk = 100_000
	for start := 0; start < n; start += chunk {
		recs := make([]*kgo.Record, 0, chunk)
		for i := start; i < min(n, start+chunk); i++ {
			k := fmt.Sprintf("key-%04d", i%1000) // 8 bytes of key, 8 of value
			recs = append(recs, &kgo.Record{Topic: in, Key: []byte(k), Value: []byte(k)})
		}
		kafkatest.ProduceSync(b, cl, recs...)
	}
	bin := plainBinary(b, "counter")
	for _, budget := range []string{"256MiB", "128MiB", "1GiB", "0"} {
		b.Run("budget="+budget, func(b *testing.B) {
			for b.Loop() {
				rss, took := catchUp(b, brokers, bin, in, budget)
				b.ReportMetric(float64(rss)/(1<<20), "peak-RSS-MiB")
				b.ReportMetric(float64(n)/took.Seconds(), "records/s")
			}
		})
	}
}

// catchUp runs the counter job on in until it has committed every input
// and every repartitioned record, and returns its peak RSS and how long
// that took.
func catchUp(b *testing.B, brokers []string, bin, in, budget string) (int64, time.Duration) {
	b.Helper()
	out := kafkatest.CreateTopic(b, brokers, "counts", partitions)
	group := kafkatest.Name("catchup")
	cmd := exec.Command(bin)
	// WEIR_BENCH_PROFILE_DIR: a CPU profile of each run's catch-up, from
	// its 2nd second for 4, in <dir>/catchup-<budget>.pprof, and its heap
	// then, in <dir>/catchup-<budget>.pprof.heap.
	profileDir := os.Getenv("WEIR_BENCH_PROFILE_DIR")
	metricsAddr := ""
	if profileDir != "" {
		metricsAddr = kafkatest.FreeAddr(b)
	}
	cmd.Env = append(os.Environ(), "JOB_INPUT="+in, "JOB_OUTPUT="+out, "WEIR_BROKERS="+strings.Join(brokers, ","),
		"WEIR_GROUP="+group, "WEIR_STATE_DIR="+b.TempDir(), "WEIR_METRICS_ADDR="+metricsAddr, "WEIR_PPROF=true", "WEIR_LOG_LEVEL=warn",
		"WEIR_MEMORY_LIMIT="+budget)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if profileDir != "" {
		go profileCPU(b, "http://"+metricsAddr, filepath.Join(profileDir, "catchup-"+budget+".pprof"))
	}
	repartition := group + "-by-key-repartition"
	var rss int64
	for {
		if r, err := peakRSS(cmd.Process.Pid); err == nil {
			rss = r
		} else {
			b.Fatalf("the job exited: %v\n%s", err, stderr.String())
		}
		if caughtUp(b, brokers, group, in, repartition, partitions) {
			return rss, time.Since(start)
		}
		time.Sleep(100 * time.Millisecond) // sampling, not waiting for a state
		if time.Since(start) > 10*time.Minute {
			b.Fatalf("not caught up after 10 minutes\n%s", stderr.String())
		}
	}
}

// profileCPU writes the job's heap profile at its 2nd second to
// path+".heap", then a 4 s CPU profile of it to path.
func profileCPU(b *testing.B, base, path string) {
	time.Sleep(2 * time.Second) // into the catch-up, past the start
	for _, p := range []struct{ url, file string }{
		{base + "/debug/pprof/heap", path + ".heap"},
		{base + "/debug/pprof/profile?seconds=4", path},
	} {
		if err := fetchTo(p.url, p.file); err != nil {
			b.Logf("profiling: %v", err)
			return
		}
	}
}

func fetchTo(url, path string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}
