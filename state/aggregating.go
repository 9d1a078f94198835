package state

import "github.com/weirstream/weir/codec"

// AggregateFunction folds inputs into an accumulator, as Flink's
// AggregateFunction: the one type both aggregating state (NewAggregating)
// and window aggregates (operators.WindowAggregate) take, so that state
// holds the accumulator, never the records. Implementations must be safe
// for concurrent use (one serves every task) and should not retain their
// arguments: Add may return its argument modified.
type AggregateFunction[IN, ACC, OUT any] interface {
	// Zero returns the accumulator of no inputs.
	Zero() ACC
	// Add folds in into acc.
	Add(acc ACC, in IN) ACC
	// Merge combines two accumulators: session windows that a record
	// bridges merge theirs. Aggregating state never calls it.
	Merge(a, b ACC) ACC
	// Result turns an accumulator into the output.
	Result(acc ACC) OUT
}

// Aggregating keeps one accumulator per (key, namespace) and folds each
// added input into it, like Flink's AggregatingState: windows use it to
// keep a running aggregate instead of every element. It is a descriptor,
// shared by every task of the operator.
type Aggregating[IN, ACC, OUT any] struct {
	d descriptor
	f AggregateFunction[IN, ACC, OUT]
	c codec.Codec[ACC]
}

// NewAggregating declares an aggregating state named name in r, folding
// with f, its accumulators encoded with accCodec. A refused declaration
// (see Registry.Err) still returns a handle.
func NewAggregating[IN, ACC, OUT any](r *Registry, name string, f AggregateFunction[IN, ACC, OUT], accCodec codec.Codec[ACC], opts ...HandleOpt) *Aggregating[IN, ACC, OUT] {
	d := r.declare(name, opts, map[string]any{"aggregate function": f, "accumulator codec": accCodec})
	return &Aggregating[IN, ACC, OUT]{d: d, f: f, c: accCodec}
}

// Name returns the state's declared name.
func (a *Aggregating[IN, ACC, OUT]) Name() string { return a.d.name }

// Add folds in into the accumulator of s's key and namespace, starting
// from Zero if there is none (or it has expired). The write stamps a new
// expiry if the state has a TTL. An error is an *Error from the codec or
// the store.
func (a *Aggregating[IN, ACC, OUT]) Add(s Scope, in IN) error {
	acc, ok, err := readCell(&a.d, a.c, s, "add")
	if err != nil {
		return err
	}
	if !ok {
		acc = a.f.Zero()
	}
	_, err = writeCell(&a.d, a.c, s, "add", a.f.Add(acc, in), false)
	return err
}

// Get returns the Result of s's key and namespace's accumulator; ok is
// false if nothing was added since the last Clear (or it has expired).
func (a *Aggregating[IN, ACC, OUT]) Get(s Scope) (out OUT, ok bool, err error) {
	acc, ok, err := readCell(&a.d, a.c, s, "get")
	if err != nil || !ok {
		return out, false, err
	}
	return a.f.Result(acc), true, nil
}

// Clear deletes the accumulator of s's key and namespace.
func (a *Aggregating[IN, ACC, OUT]) Clear(s Scope) {
	ts := s.TaskStore()
	ts.Delete(a.d.stateKey(ts, s))
}
