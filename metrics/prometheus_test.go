package metrics_test

import (
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weirstream/weir/metrics"
)

// series is one gathered series of a metric family.
type series struct {
	labels map[string]string
	value  float64 // a counter's or gauge's value; a histogram's sample sum
	count  uint64  // a histogram's sample count
}

// gather returns the series of the family name, which must be registered.
func gather(t *testing.T, p *metrics.Prometheus, name string) []series {
	t.Helper()
	mfs, err := p.Registry().Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		var out []series
		for _, m := range mf.GetMetric() {
			s := series{labels: map[string]string{}}
			for _, l := range m.GetLabel() {
				s.labels[l.GetName()] = l.GetValue()
			}
			switch kind := mf.GetType().String(); kind {
			case "COUNTER":
				s.value = m.GetCounter().GetValue()
			case "GAUGE":
				s.value = m.GetGauge().GetValue()
			case "HISTOGRAM":
				s.value = m.GetHistogram().GetSampleSum()
				s.count = m.GetHistogram().GetSampleCount()
			default:
				t.Fatalf("%s: unexpected metric type %s", name, kind)
			}
			out = append(out, s)
		}
		return out
	}
	// Families without series (a vector nobody observed yet) are not
	// gathered either.
	return nil
}

// find returns the series of name whose labels, besides the constant job
// label, are exactly labels (name, value pairs).
func find(t *testing.T, p *metrics.Prometheus, name string, labels ...string) (series, bool) {
	t.Helper()
	want := map[string]string{"job": "job"}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, s := range gather(t, p, name) {
		if maps.Equal(s.labels, want) {
			return s, true
		}
	}
	return series{}, false
}

// get is find for a series that must exist.
func get(t *testing.T, p *metrics.Prometheus, name string, labels ...string) series {
	t.Helper()
	s, ok := find(t, p, name, labels...)
	if !ok {
		t.Fatalf("no series %s%v; have %+v", name, labels, gather(t, p, name))
	}
	return s
}

func wantValue(t *testing.T, p *metrics.Prometheus, want float64, name string, labels ...string) {
	t.Helper()
	if got := get(t, p, name, labels...).value; got != want {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

func TestNewExposesZeros(t *testing.T) {
	p := metrics.New("job")
	for _, outcome := range []string{"committed", "aborted"} {
		wantValue(t, p, 0, "weir_transactions_total", "outcome", outcome)
	}
	for _, outcome := range []string{"ok", "failed"} {
		wantValue(t, p, 0, "weir_checkpoints_total", "outcome", outcome)
	}
	wantValue(t, p, 0, "weir_checkpoint_changelog_records_total")
	wantValue(t, p, 0, "weir_restore_records_total")
	wantValue(t, p, 0, "weir_transaction_open_seconds")
	for _, h := range []string{"weir_checkpoint_size_bytes", "weir_checkpoint_duration_seconds", "weir_restore_duration_seconds"} {
		if s := get(t, p, h); s.count != 0 || s.value != 0 {
			t.Errorf("%s: count %d sum %v, want 0 and 0", h, s.count, s.value)
		}
	}
	if got := gather(t, p, "weir_restore_remaining_records"); len(got) != 0 {
		t.Errorf("weir_restore_remaining_records before any restore: %+v, want no series", got)
	}
}

func TestCheckpoint(t *testing.T) {
	p := metrics.New("job")
	p.Checkpoint(250*time.Millisecond, nil)
	p.Checkpoint(time.Second, errors.New("commit failed"))
	wantValue(t, p, 1, "weir_checkpoints_total", "outcome", "ok")
	wantValue(t, p, 1, "weir_checkpoints_total", "outcome", "failed")
	// Only the successful checkpoint's duration is observed.
	if s := get(t, p, "weir_checkpoint_duration_seconds"); s.count != 1 || s.value != 0.25 {
		t.Errorf("weir_checkpoint_duration_seconds: count %d sum %v, want 1 and 0.25", s.count, s.value)
	}
}

func TestCheckpointSize(t *testing.T) {
	p := metrics.New("job")
	p.CheckpointSize(7, 1000)
	wantValue(t, p, 7, "weir_checkpoint_changelog_records_total")
	if s := get(t, p, "weir_checkpoint_size_bytes"); s.count != 1 || s.value != 1000 {
		t.Errorf("weir_checkpoint_size_bytes: count %d sum %v, want 1 and 1000", s.count, s.value)
	}

	p.CheckpointSize(3, 24)
	wantValue(t, p, 10, "weir_checkpoint_changelog_records_total")
	if s := get(t, p, "weir_checkpoint_size_bytes"); s.count != 2 || s.value != 1024 {
		t.Errorf("weir_checkpoint_size_bytes: count %d sum %v, want 2 and 1024", s.count, s.value)
	}
}

func TestTransactions(t *testing.T) {
	p := metrics.New("job")
	p.Transaction(true)
	p.Transaction(true)
	p.Transaction(false)
	wantValue(t, p, 2, "weir_transactions_total", "outcome", "committed")
	wantValue(t, p, 1, "weir_transactions_total", "outcome", "aborted")
	p.HangingRecordsAborted(2)
	wantValue(t, p, 2, "weir_transaction_hanging_partitions_aborted_total")
}

func TestTransactionOpen(t *testing.T) {
	p := metrics.New("job")

	p.TransactionOpen(time.Now())
	if got := get(t, p, "weir_transaction_open_seconds").value; got <= 0 || got > 60 {
		t.Errorf("weir_transaction_open_seconds just after opening = %v, want a small positive age", got)
	}

	// The age is read at scrape time, so it grows while the transaction
	// stays open.
	p.TransactionOpen(time.Now().Add(-3 * time.Second))
	if got := get(t, p, "weir_transaction_open_seconds").value; got < 3 || got > 60 {
		t.Errorf("weir_transaction_open_seconds 3s after opening = %v, want about 3", got)
	}

	p.TransactionOpen(time.Time{})
	wantValue(t, p, 0, "weir_transaction_open_seconds")
}

// TestTransactionOpenConcurrent lets the race detector check that a scrape
// reading the open transaction's age does not race the engine setting it.
func TestTransactionOpenConcurrent(t *testing.T) {
	p := metrics.New("job")
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 200 {
			if i%2 == 0 {
				p.TransactionOpen(time.Now())
			} else {
				p.TransactionOpen(time.Time{})
			}
		}
	})
	for range 20 {
		gather(t, p, "weir_transaction_open_seconds")
	}
	wg.Wait()
}

func TestRestore(t *testing.T) {
	p := metrics.New("job")

	p.RestoreProgress("1_0", 0, 100)
	p.RestoreProgress("2_0", 0, 5)
	wantValue(t, p, 100, "weir_restore_remaining_records", "task", "1_0")
	wantValue(t, p, 5, "weir_restore_remaining_records", "task", "2_0")

	p.RestoreProgress("1_0", 60, 40)
	wantValue(t, p, 40, "weir_restore_remaining_records", "task", "1_0")
	// Records restored are counted once the restore is done.
	wantValue(t, p, 0, "weir_restore_records_total")

	p.RestoreDone("1_0", 100, 1500*time.Millisecond)
	wantValue(t, p, 0, "weir_restore_remaining_records", "task", "1_0")
	wantValue(t, p, 5, "weir_restore_remaining_records", "task", "2_0")
	wantValue(t, p, 100, "weir_restore_records_total")
	if s := get(t, p, "weir_restore_duration_seconds"); s.count != 1 || s.value != 1.5 {
		t.Errorf("weir_restore_duration_seconds: count %d sum %v, want 1 and 1.5", s.count, s.value)
	}

	p.TaskStopped("1_0")
	if s, ok := find(t, p, "weir_restore_remaining_records", "task", "1_0"); ok {
		t.Errorf("weir_restore_remaining_records{task=\"1_0\"} = %v after TaskStopped, want no series", s.value)
	}
	wantValue(t, p, 5, "weir_restore_remaining_records", "task", "2_0")
	// Counters and histograms keep their totals.
	wantValue(t, p, 100, "weir_restore_records_total")
	if s := get(t, p, "weir_restore_duration_seconds"); s.count != 1 {
		t.Errorf("weir_restore_duration_seconds count after TaskStopped = %d, want 1", s.count)
	}
}

func TestHandler(t *testing.T) {
	p := metrics.New("job")
	p.Transaction(false)
	p.CheckpointSize(7, 1000)
	p.RestoreProgress("1_0", 0, 42)

	srv := httptest.NewServer(p.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s\n%s", resp.Status, body)
	}
	for _, line := range []string{
		`# TYPE weir_transactions_total counter`,
		`weir_transactions_total{job="job",outcome="aborted"} 1`,
		`weir_transactions_total{job="job",outcome="committed"} 0`,
		`# TYPE weir_transaction_open_seconds gauge`,
		`weir_transaction_open_seconds{job="job"} 0`,
		`weir_checkpoint_changelog_records_total{job="job"} 7`,
		`# TYPE weir_checkpoint_size_bytes histogram`,
		`weir_checkpoint_size_bytes_bucket{job="job",le="256"} 0`,
		`weir_checkpoint_size_bytes_bucket{job="job",le="1024"} 1`,
		`weir_checkpoint_size_bytes_bucket{job="job",le="+Inf"} 1`,
		`weir_checkpoint_size_bytes_sum{job="job"} 1000`,
		`weir_checkpoint_size_bytes_count{job="job"} 1`,
		`weir_restore_remaining_records{job="job",task="1_0"} 42`,
		`weir_restore_records_total{job="job"} 0`,
		`weir_restore_duration_seconds_count{job="job"} 0`,
	} {
		if !strings.Contains(string(body), line+"\n") {
			t.Errorf("exposition lacks %q", line)
		}
	}
}
