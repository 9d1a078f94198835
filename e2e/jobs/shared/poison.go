package shared

import (
	"errors"
	"fmt"
	"sync"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/operators"
)

// Purchase is the failure-handling job's input. A value that is not JSON is
// a poison record; a negative amount is one the validator rejects; a flaky
// order fails enrichment FlakyAttempts times with a retryable error first.
type Purchase struct {
	ID     int  `json:"id"`
	Amount int  `json:"amount"`
	Flaky  bool `json:"flaky,omitempty"`
}

// Checked is the job's output for a valid order.
type Checked struct {
	ID       int    `json:"id"`
	Amount   int    `json:"amount"`
	Enriched string `json:"enriched"`
}

// FlakyAttempts is how many times enriching a flaky order fails (with a
// retryable error) before it succeeds, in a process.
const FlakyAttempts = 2

// ErrNegative is what the validator rejects.
var ErrNegative = errors.New("negative amount")

// Validate rejects orders with a negative amount.
func Validate(o Purchase) (Purchase, error) {
	if o.Amount < 0 {
		return o, fmt.Errorf("order %d: %w", o.ID, ErrNegative)
	}
	return o, nil
}

// flaky is the enrichment service: it fails each flaky order's first
// FlakyAttempts calls.
type flaky struct {
	mu    sync.Mutex
	calls map[int]int
}

func (f *flaky) enrich(o Purchase) (Checked, error) {
	if o.Flaky {
		f.mu.Lock()
		f.calls[o.ID]++
		n := f.calls[o.ID]
		f.mu.Unlock()
		if n <= FlakyAttempts {
			return Checked{}, engine.Retryable(fmt.Errorf("enrichment service unavailable (call %d)", n))
		}
	}
	return Checked{ID: o.ID, Amount: o.Amount, Enriched: "ok"}, nil
}

// BuildPoison adds the failure-handling job: orders from in, decoded,
// validated and enriched, written to out. Every operator has the job's
// error policy.
func BuildPoison(job *engine.Job, in, out string) {
	orders := connectors.KafkaSource(job, in, codec.JSON[Purchase]())
	valid := operators.Map(orders, Validate)
	f := &flaky{calls: map[int]int{}}
	connectors.KafkaSink(operators.Map(valid, f.enrich), out, codec.JSON[Checked]())
}
