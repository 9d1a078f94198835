package state

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Scope is what a handle operation acts on: the task's store, and the key
// and namespace of the record or timer being processed. The engine provides
// it per record; it is valid only during that record's processing, on the
// task's goroutine.
type Scope interface {
	// TaskStore is the processing task's store.
	TaskStore() *TaskStore
	// CurrentKey is the keyed stream's key of the record or timer being
	// processed. Handles do not retain it.
	CurrentKey() []byte
	// Namespace subdivides a key's state, e.g. by window; nil for plain
	// keyed state (nil and empty are the same namespace). Handles do not
	// retain it.
	Namespace() []byte
	// ProcessingTime is the task's clock, injected so tests need not sleep.
	// Handles with a TTL read it to stamp and check expiry.
	ProcessingTime() time.Time
}

// Registry holds the states one operator declares. The engine creates one
// per operator and passes it to the operator's Open, which declares its
// handles (NewValue, NewMap, NewList, NewAggregating) once; the handles are
// then shared by every task that runs the operator.
//
// Declaring is not safe for concurrent use and must be done before the
// operator processes records. A declaration the registry refuses (see Err)
// still returns a usable handle, so Open needs no error plumbing; the
// engine checks Err before it starts the job.
type Registry struct {
	operatorID string
	prefix     []byte // the operator component of every key
	names      []string
	errs       []error
}

// NewRegistry returns an empty registry for the operator operatorID, which
// must be unique in the job and stable across its versions: it is part of
// every state key (layout.go) and names the operator's changelog.
func NewRegistry(operatorID string) *Registry {
	r := &Registry{operatorID: operatorID, prefix: appendPart(nil, []byte(operatorID))}
	if operatorID == "" {
		r.errs = append(r.errs, fmt.Errorf("%w: empty operator id", ErrInvalidState))
	}
	return r
}

// OperatorID returns the operator the registry belongs to.
func (r *Registry) OperatorID() string { return r.operatorID }

// Names returns the declared state names in declaration order.
func (r *Registry) Names() []string { return slices.Clone(r.names) }

// Err reports every refused declaration, joined: errors.Is finds
// ErrDuplicateState for a name declared twice and ErrInvalidState for the
// rest. nil if all declarations were accepted. The engine does not start a
// job whose registries report an error.
func (r *Registry) Err() error { return errors.Join(r.errs...) }

// HandleOpt configures a state handle.
type HandleOpt interface{ applyHandle(*handleConfig) }

type handleOptFunc func(*handleConfig)

func (f handleOptFunc) applyHandle(c *handleConfig) { f(c) }

type handleConfig struct {
	ttl    time.Duration
	ttlSet bool
}

// WithTTL makes the state's values expire d after they were last written,
// by the Scope's ProcessingTime (Flink's StateTtlConfig with the
// OnCreateAndWrite update type and the NeverReturnExpired visibility):
//
//   - every write (Set, Put, Add, Update) stamps the value it writes with
//     expiry ProcessingTime()+d; reads do not extend it;
//   - a value whose expiry is at or before ProcessingTime() reads as
//     absent, and the read that finds it deletes it; Map.Range and
//     List.Get skip expired entries and delete them;
//   - for Map and List, each entry or element expires on its own.
//
// Expired values that are never read again stay in the store until their
// key is cleared (there is no background cleanup yet). The expiry is
// stored with each value, so changing or removing the TTL later affects
// only values written afterwards. Default: no TTL. d must be positive.
func WithTTL(d time.Duration) HandleOpt {
	return handleOptFunc(func(c *handleConfig) { c.ttl, c.ttlSet = d, true })
}

// descriptor is what every handle holds: where its keys live and how its
// values expire. It is immutable once declared, so one handle serves every
// task concurrently; all per-task state is in the Scope's TaskStore.
type descriptor struct {
	operator, name string
	prefix         []byte // operator and name components
	ttl            time.Duration
}

// declare records a new state named name. args names the arguments that
// must not be nil (codecs, aggregate functions).
func (r *Registry) declare(name string, opts []HandleOpt, args map[string]any) descriptor {
	var cfg handleConfig
	for _, o := range opts {
		o.applyHandle(&cfg)
	}
	refuse := func(sentinel error, format string, a ...any) {
		r.errs = append(r.errs, fmt.Errorf("%w: operator %q, state %q: %s", sentinel, r.operatorID, name, fmt.Sprintf(format, a...)))
	}
	switch {
	case name == "":
		refuse(ErrInvalidState, "empty name")
	case slices.Contains(r.names, name):
		refuse(ErrDuplicateState, "declared twice")
	default:
		r.names = append(r.names, name)
	}
	if cfg.ttlSet && cfg.ttl <= 0 {
		refuse(ErrInvalidState, "TTL %v is not positive", cfg.ttl)
	}
	for _, arg := range slices.Sorted(maps.Keys(args)) {
		if args[arg] == nil {
			refuse(ErrInvalidState, "nil %s", arg)
		}
	}
	return descriptor{
		operator: r.operatorID,
		name:     name,
		prefix:   appendPart(slices.Clone(r.prefix), []byte(name)),
		ttl:      max(cfg.ttl, 0),
	}
}

// stateKey returns the state prefix of s's current key and namespace
// (layout.go), built in the TaskStore's scratch buffer: valid until the
// next handle operation on that TaskStore.
func (d *descriptor) stateKey(ts *TaskStore, s Scope) []byte {
	ts.stateKey = appendPart(appendPart(append(ts.stateKey[:0], d.prefix...), s.CurrentKey()), s.Namespace())
	return ts.stateKey
}

// fail wraps err as the handle's Error for operation op.
func (d *descriptor) fail(op string, err error) error {
	return &Error{Operator: d.operator, State: d.name, Op: op, Err: err}
}

// failIf is fail for a non-nil err, else nil.
func (d *descriptor) failIf(op string, err error) error {
	if err == nil {
		return nil
	}
	return d.fail(op, err)
}
