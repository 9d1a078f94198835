// Package metrics exports the engine's measurements to Prometheus. It
// implements observe.Observer and owns every metric name; the engine never
// touches Prometheus types.
package metrics

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/weirstream/weir/observe"
)

// Prometheus is an observe.Observer backed by a Prometheus registry. Every
// series carries a constant "job" label with the job's name.
type Prometheus struct {
	reg *prometheus.Registry

	recordsIn                                                   *prometheus.CounterVec
	recordsOut                                                  *prometheus.CounterVec
	recordsFailed                                               *prometheus.CounterVec
	recordsLate                                                 *prometheus.CounterVec
	lag                                                         *prometheus.GaugeVec
	checkpoints                                                 *prometheus.CounterVec
	cpDuration                                                  prometheus.Histogram
	watermark                                                   *prometheus.GaugeVec
	idle                                                        *prometheus.GaugeVec
	tasks                                                       prometheus.Gauge
	ready                                                       prometheus.Gauge
	cpRecords                                                   prometheus.Counter
	cpSize                                                      prometheus.Histogram
	txns                                                        *prometheus.CounterVec
	hanging                                                     prometheus.Counter
	txnSince                                                    atomic.Int64 // Unix nanoseconds; 0 when no transaction is open
	restored                                                    prometheus.Counter
	restoreLeft                                                 *prometheus.GaugeVec
	restoreTook                                                 prometheus.Histogram
	rateLimit                                                   *prometheus.GaugeVec
	rateLimited                                                 *prometheus.CounterVec
	deadLettered                                                *prometheus.CounterVec
	skipped                                                     *prometheus.CounterVec
	retries                                                     *prometheus.CounterVec
	labels                                                      prometheus.Labels
	asyncCalls                                                  *prometheus.CounterVec
	asyncLatency                                                *prometheus.HistogramVec
	asyncFallback                                               *prometheus.CounterVec
	asyncInFlight                                               *prometheus.GaugeVec
	archiveFiles, archiveRecords, archiveBytes, archiveFailures *prometheus.CounterVec
	archiveLatency                                              *prometheus.HistogramVec
	breaker                                                     prometheus.Gauge
	pastRetention                                               *prometheus.CounterVec
	spills                                                      *prometheus.CounterVec
}

var _ observe.Observer = (*Prometheus)(nil)

// New returns an observer registering its metrics, plus the Go runtime and
// process collectors, in a fresh registry.
func New(job string) *Prometheus {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	labels := prometheus.Labels{"job": job}
	p := &Prometheus{
		reg: reg, labels: labels,
		recordsIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_records_in_total", Help: "Records an operator received.", ConstLabels: labels,
		}, []string{"operator"}),
		recordsOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_records_out_total", Help: "Records an operator emitted.", ConstLabels: labels,
		}, []string{"operator"}),
		recordsFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_records_failed_total", Help: "Records an operator failed to process.", ConstLabels: labels,
		}, []string{"operator"}),
		recordsLate: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_records_late_total", Help: "Records a window or join received after the watermark closed all they belong to.", ConstLabels: labels,
		}, []string{"operator"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weir_consumer_lag_records", Help: "Records in Kafka not yet processed, per input partition.", ConstLabels: labels,
		}, []string{"topic", "partition"}),
		checkpoints: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_checkpoints_total", Help: "Checkpoints by outcome (ok, failed).", ConstLabels: labels,
		}, []string{"outcome"}),
		cpDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "weir_checkpoint_duration_seconds", Help: "Time from barrier to committed offsets.", ConstLabels: labels,
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}),
		watermark: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weir_watermark_timestamp_seconds", Help: "A task's event-time watermark, as Unix seconds.", ConstLabels: labels,
		}, []string{"task"}),
		idle: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weir_task_inputs_idle", Help: "1 when every input of a task is idle, so its watermark holds.", ConstLabels: labels,
		}, []string{"task"}),
		tasks: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weir_tasks_assigned", Help: "Tasks this replica runs.", ConstLabels: labels,
		}),
		ready: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weir_ready", Help: "1 when the replica is ready (assigned, not halted), else 0.", ConstLabels: labels,
		}),
	}
	p.cpRecords = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "weir_checkpoint_changelog_records_total", Help: "State changelog records written by committed checkpoints.", ConstLabels: labels,
	})
	p.cpSize = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "weir_checkpoint_size_bytes", Help: "Changelog bytes (keys and values) a committed checkpoint wrote.", ConstLabels: labels,
		Buckets: prometheus.ExponentialBuckets(256, 4, 12),
	})
	p.txns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weir_transactions_total", Help: "Kafka transactions ended, by outcome (committed, aborted).", ConstLabels: labels,
	}, []string{"outcome"})
	p.hanging = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "weir_transaction_hanging_partitions_aborted_total", ConstLabels: labels,
		Help: "Partitions where records of an ended transaction were still open (no marker reached them) and the replica aborted them.",
	})
	txnAge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "weir_transaction_open_seconds", Help: "Age of the replica's open Kafka transaction; 0 when none is open.", ConstLabels: labels,
	}, func() float64 {
		since := p.txnSince.Load()
		if since == 0 {
			return 0
		}
		return time.Since(time.Unix(0, since)).Seconds()
	})
	p.restored = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "weir_restore_records_total", Help: "Changelog records applied while restoring task state.", ConstLabels: labels,
	})
	p.restoreLeft = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "weir_restore_remaining_records", Help: "Changelog records a restoring task has at most left to read; 0 when restored.", ConstLabels: labels,
	}, []string{"task"})
	p.rateLimit = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "weir_rate_limit_records_per_second", Help: "Cap on records read per second, per source topic (\"*\": the replica's, over all).", ConstLabels: labels,
	}, []string{"topic"})
	p.rateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weir_rate_limited_seconds_total", Help: "Time fetching was paused to keep under a rate cap, per topic (\"*\": all).", ConstLabels: labels,
	}, []string{"topic"})
	p.restoreTook = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "weir_restore_duration_seconds", Help: "Time a task took to restore its state from the changelog.", ConstLabels: labels,
		Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
	})
	p.deadLettered = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weir_records_dead_lettered_total", Help: "Failed records an operator's error policy wrote to the dead-letter topic.", ConstLabels: labels,
	}, []string{"operator"})
	p.skipped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weir_records_skipped_total", Help: "Failed records an operator's error policy dropped.", ConstLabels: labels,
	}, []string{"operator"})
	p.retries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weir_retries_total", Help: "Calls of an operator's user code retried after a retryable error.", ConstLabels: labels,
	}, []string{"operator"})
	p.asyncCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weir_async_calls_total", Help: "Calls of an operator's work in flight (AsyncMap), by outcome: ok, error, timeout, open (circuit breaker open: not made).", ConstLabels: labels,
	}, []string{"operator", "outcome"})
	p.asyncLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "weir_async_call_seconds", Help: "How long an operator's calls in flight took.", ConstLabels: labels,
		Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
	}, []string{"operator"})
	p.asyncFallback = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weir_async_fallbacks_total", Help: "Results an operator's fallback produced instead of its call (degraded outputs).", ConstLabels: labels,
	}, []string{"operator"})
	p.asyncInFlight = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "weir_async_in_flight", Help: "An operator's calls in flight.", ConstLabels: labels,
	}, []string{"operator"})
	p.archiveFiles = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weir_archive_files_total", Help: "Files an archive sink made visible.", ConstLabels: labels,
	}, []string{"operator"})
	p.archiveRecords = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weir_archive_records_total", Help: "Records in the files an archive sink made visible.", ConstLabels: labels,
	}, []string{"operator"})
	p.archiveBytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weir_archive_bytes_total", Help: "Bytes of the files an archive sink made visible.", ConstLabels: labels,
	}, []string{"operator"})
	p.archiveFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weir_archive_upload_failures_total", Help: "Uploads of an archive sink that failed (each is tried again).", ConstLabels: labels,
	}, []string{"operator"})
	p.archiveLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "weir_archive_upload_seconds", Help: "How long an archive sink's uploads took.", ConstLabels: labels,
		Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 14),
	}, []string{"operator"})
	p.breaker = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "weir_circuit_breaker_open", Help: "1 while the replica's circuit breaker is open: too many records failed, the replica halted until resumed.", ConstLabels: labels,
	})
	p.pastRetention = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weir_sink_records_past_retention_total", Help: "Outputs stamped older than their topic's retention.ms, which the broker may delete soon after writing.", ConstLabels: labels,
	}, []string{"topic"})
	p.spills = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weir_state_memory_spills_total", Help: "Times a task's state kept in memory outgrew its share of the memory budget and went to the store.", ConstLabels: labels,
	}, []string{"task"})
	for _, c := range []prometheus.Collector{p.deadLettered, p.skipped, p.retries, p.breaker, p.pastRetention, p.spills,
		p.asyncCalls, p.asyncLatency, p.asyncFallback, p.asyncInFlight,
		p.archiveFiles, p.archiveRecords, p.archiveBytes, p.archiveFailures, p.archiveLatency} {
		f(c)
	}
	for _, c := range []prometheus.Collector{p.recordsIn, p.recordsOut, p.recordsFailed, p.recordsLate, p.lag, p.checkpoints, p.cpDuration, p.watermark, p.idle, p.tasks, p.ready,
		p.cpRecords, p.cpSize, p.txns, p.hanging, txnAge, p.restored, p.restoreLeft, p.restoreTook, p.rateLimit, p.rateLimited} {
		f(c)
	}
	p.txns.WithLabelValues("committed")
	p.txns.WithLabelValues("aborted")
	// Both outcomes exist from the start so rate() and alerts see zeros.
	p.checkpoints.WithLabelValues("ok")
	p.checkpoints.WithLabelValues("failed")
	return p
}

// RegisterForJob registers c with the job label every Weir metric has
// (the job's feature flags, a job's own collectors).
func (p *Prometheus) RegisterForJob(c prometheus.Collector) error {
	return prometheus.WrapRegistererWith(p.labels, p.reg).Register(c)
}

// Registry is the registry holding the metrics, for adding a job's own.
func (p *Prometheus) Registry() *prometheus.Registry { return p.reg }

// Handler serves the registry in the Prometheus exposition format.
func (p *Prometheus) Handler() http.Handler {
	return promhttp.HandlerFor(p.reg, promhttp.HandlerOpts{Registry: p.reg})
}

func (p *Prometheus) RecordsIn(op string, n int)  { p.recordsIn.WithLabelValues(op).Add(float64(n)) }
func (p *Prometheus) RecordsOut(op string, n int) { p.recordsOut.WithLabelValues(op).Add(float64(n)) }
func (p *Prometheus) RecordsFailed(op string, n int) {
	p.recordsFailed.WithLabelValues(op).Add(float64(n))
}

func (p *Prometheus) RecordsLate(op string, n int) { p.recordsLate.WithLabelValues(op).Add(float64(n)) }
func (p *Prometheus) RecordsDeadLettered(op string, n int) {
	p.deadLettered.WithLabelValues(op).Add(float64(n))
}
func (p *Prometheus) RecordsSkipped(op string, n int) { p.skipped.WithLabelValues(op).Add(float64(n)) }
func (p *Prometheus) Retries(op string, n int)        { p.retries.WithLabelValues(op).Add(float64(n)) }

func (p *Prometheus) AsyncCall(op, outcome string, took time.Duration) {
	p.asyncCalls.WithLabelValues(op, outcome).Inc()
	if outcome != "open" {
		p.asyncLatency.WithLabelValues(op).Observe(took.Seconds())
	}
}

func (p *Prometheus) ArchiveFile(op string, records, bytes int, took time.Duration, err error) {
	p.archiveLatency.WithLabelValues(op).Observe(took.Seconds())
	if err != nil {
		p.archiveFailures.WithLabelValues(op).Inc()
		return
	}
	p.archiveFiles.WithLabelValues(op).Inc()
	p.archiveRecords.WithLabelValues(op).Add(float64(records))
	p.archiveBytes.WithLabelValues(op).Add(float64(bytes))
}

func (p *Prometheus) AsyncFallback(op string) { p.asyncFallback.WithLabelValues(op).Inc() }

func (p *Prometheus) AsyncInFlight(op string, delta int) {
	p.asyncInFlight.WithLabelValues(op).Add(float64(delta))
}
func (p *Prometheus) CircuitBreaker(open bool, _ string) {
	if open {
		p.breaker.Set(1)
	} else {
		p.breaker.Set(0)
	}
}
func (p *Prometheus) SinkRecordsPastRetention(topic string, n int) {
	p.pastRetention.WithLabelValues(topic).Add(float64(n))
}

func (p *Prometheus) ConsumerLag(topic string, partition int32, lag int64) {
	p.lag.WithLabelValues(topic, strconv.Itoa(int(partition))).Set(float64(lag))
}

func (p *Prometheus) PartitionRevoked(topic string, partition int32) {
	p.lag.DeleteLabelValues(topic, strconv.Itoa(int(partition)))
}

func (p *Prometheus) Checkpoint(took time.Duration, err error) {
	if err != nil {
		p.checkpoints.WithLabelValues("failed").Inc()
		return
	}
	p.checkpoints.WithLabelValues("ok").Inc()
	p.cpDuration.Observe(took.Seconds())
}

func (p *Prometheus) CheckpointSize(records, bytes int) {
	p.cpRecords.Add(float64(records))
	p.cpSize.Observe(float64(bytes))
}

func (p *Prometheus) Transaction(committed bool) {
	if committed {
		p.txns.WithLabelValues("committed").Inc()
	} else {
		p.txns.WithLabelValues("aborted").Inc()
	}
}

func (p *Prometheus) HangingRecordsAborted(partitions int) { p.hanging.Add(float64(partitions)) }

func (p *Prometheus) TransactionOpen(since time.Time) {
	if since.IsZero() {
		p.txnSince.Store(0)
	} else {
		p.txnSince.Store(since.UnixNano())
	}
}

func (p *Prometheus) RestoreProgress(task string, restored, remaining int64) {
	p.restoreLeft.WithLabelValues(task).Set(float64(remaining))
}

func (p *Prometheus) RestoreDone(task string, records int64, took time.Duration) {
	p.restored.Add(float64(records))
	p.restoreLeft.WithLabelValues(task).Set(0)
	p.restoreTook.Observe(took.Seconds())
}

func (p *Prometheus) Watermark(task string, wm time.Time, allIdle bool) {
	if !wm.IsZero() {
		p.watermark.WithLabelValues(task).Set(float64(wm.UnixMilli()) / 1000)
	}
	v := 0.0
	if allIdle {
		v = 1
	}
	p.idle.WithLabelValues(task).Set(v)
}

func (p *Prometheus) TaskStopped(task string) {
	p.watermark.DeleteLabelValues(task)
	p.idle.DeleteLabelValues(task)
	p.restoreLeft.DeleteLabelValues(task)
}

func (p *Prometheus) StateSpilled(task string, _ int64) { p.spills.WithLabelValues(task).Inc() }

func (p *Prometheus) TasksAssigned(n int) { p.tasks.Set(float64(n)) }

func (p *Prometheus) RateLimit(topic string, perSecond float64) {
	p.rateLimit.WithLabelValues(topic).Set(perSecond)
}

func (p *Prometheus) RateLimited(topic string, paused time.Duration) {
	p.rateLimited.WithLabelValues(topic).Add(paused.Seconds())
}

func (p *Prometheus) Ready(ready bool) {
	if ready {
		p.ready.Set(1)
	} else {
		p.ready.Set(0)
	}
}
