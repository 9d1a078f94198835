package shared

import (
	"time"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/state"
	"github.com/weirstream/weir/windowing"
)

// Payment is an input of the totals job, keyed by account.
type Payment struct {
	Account string    `json:"account"`
	Amount  int64     `json:"amount"`
	At      time.Time `json:"at"`
}

// Total is the totals job's running total: after the N-th payment of an
// account, the sum of its first N amounts.
type Total struct {
	Account string `json:"account"`
	N       int64  `json:"n"`
	Total   int64  `json:"total"`
}

// WindowCount is the totals job's per-account payment count in one
// tumbling event-time window.
type WindowCount struct {
	Account string    `json:"account"`
	Start   time.Time `json:"start"`
	Count   int64     `json:"count"`
}

// TotalsWindow is the totals job's window length.
const TotalsWindow = 10 * time.Second

// WindowsTopic is where the totals job writes its window counts, beside
// its totals topic out.
func WindowsTopic(out string) string { return out + "-windows" }

// BuildTotals adds the totals job to job: payments from in, keyed by
// account through a repartition topic; a running total per account (value
// state) written to out for every payment, and payments counted per
// account in tumbling windows written to WindowsTopic(out).
func BuildTotals(job *engine.Job, in, out string) {
	wm := windowing.BoundedOutOfOrderness(OutOfOrderness, func(p Payment) time.Time { return p.At })
	pays := connectors.KafkaSource(job, in, codec.JSON[Payment](), connectors.WithWatermarks(wm))
	byAccount := operators.KeyBy(pays, func(p Payment) string { return p.Account }, operators.KeyByName("by-account"))
	totals := operators.Process(byAccount, "running-totals", &runningTotal{})
	connectors.KafkaSink(totals, out, codec.JSON[Total]())
	counts := operators.WindowAggregate(byAccount, "window-counts", windowing.Tumbling(TotalsWindow), operators.Count[Payment]{}, codec.JSON[int64]())
	windows := operators.Map(counts, func(w operators.Windowed[string, int64]) (WindowCount, error) {
		return WindowCount{Account: w.Key, Start: w.Start, Count: w.Value}, nil
	})
	connectors.KafkaSink(windows, WindowsTopic(out), codec.JSON[WindowCount]())
}

type runningTotal struct {
	sum *state.Value[Total]
}

func (r *runningTotal) Open(reg *state.Registry) error {
	r.sum = state.NewValue(reg, "total", codec.JSON[Total]())
	return nil
}

func (r *runningTotal) Process(c operators.Context[string], p Payment, out operators.Collector[Total]) error {
	t, _, err := r.sum.Get(c)
	if err != nil {
		return err
	}
	t.Account, t.N, t.Total = p.Account, t.N+1, t.Total+p.Amount
	if err := r.sum.Set(c, t); err != nil {
		return err
	}
	return out.Collect(t)
}

func (r *runningTotal) OnTimer(operators.Context[string], time.Time, engine.TimeDomain, operators.Collector[Total]) error {
	return nil
}
