package engine

import (
	"time"
)

// Record is one element flowing through a task's operator chain: a typed
// value with the Kafka key it travels under and its event time. Operators
// that do not change the key pass it on, as Kafka Streams does, so a sink
// writes each output under its input's key unless told otherwise.
//
// Key is shared, not copied, between a record and what operators derive
// from it; treat it as read-only.
type Record[T any] struct {
	Key       []byte
	Value     T
	Timestamp time.Time
}

// Emit hands one record to the next operator. It returns the first error
// any operator downstream returned for it.
type Emit[T any] func(Record[T]) error

// Stream is a typed stream of records in a job's topology. Streams are
// values; building on one (Map, Filter, a sink) subscribes to it, and a
// stream may have several subscribers, each receiving every record.
type Stream[T any] struct {
	job *Job
	n   *node[T]
}

// node holds what a stream needs to instantiate itself in each task: the
// builders of its subscribers. Builders run once per task, at assignment,
// in the goroutine that will own the task.
type node[T any] struct {
	name  string
	stage int
	subs  []func(*Task) (Emit[T], error)
	// sides build the operator's side outputs, by tag (see SideOutput).
	sides map[string]func(*Task) (any, error)
	// eventTime says the stream's records carry event time with
	// watermarks: its source has a watermark strategy (see EventTime).
	eventTime bool
}

// NewStream returns a stream of the job's first stage with no subscribers
// yet, for source connectors; name identifies it in metrics and errors,
// and must be the job's only operator by that name (see Job.UniqueName
// for a default one).
func NewStream[T any](job *Job, name string) Stream[T] {
	return newStageStream[T](job, name, 0)
}

// newStageStream is NewStream for a source of the given stage (a
// repartition topic's reader).
func newStageStream[T any](job *Job, name string, stage int) Stream[T] {
	return Stream[T]{job: job, n: &node[T]{name: job.claimName(name), stage: stage}}
}

// Derive returns a stream produced by an operator subscribed to in: it runs
// in the same stage, in the same task as in's records. name is the
// operator's; two operators of one name are a topology error (Run reports
// it), so an operator the user need not name takes a default from
// Job.UniqueName.
func Derive[U, T any](in Stream[T], name string) Stream[U] {
	return Stream[U]{job: in.job, n: &node[U]{name: in.job.claimName(name), stage: in.n.stage, eventTime: in.n.eventTime}}
}

// EventTime reports whether the stream's records carry event time with
// watermarks: its source has a watermark strategy, and every stream it
// was derived from did. Event-time operators (windows, joins) check it
// when they are built, so that a window whose input has no watermark is
// an error at start rather than a window that never fires.
func (s Stream[T]) EventTime() bool { return s.n.eventTime }

// WithEventTime marks the stream as carrying event time with watermarks,
// for a source connector that gives it a watermark strategy, or an
// operator merging inputs that all do.
func (s Stream[T]) WithEventTime() Stream[T] {
	s.n.eventTime = true
	return s
}

// Stage is the stage the stream's records flow in.
func (s Stream[T]) Stage() int { return s.n.stage }

// Job is the job the stream belongs to.
func (s Stream[T]) Job() *Job { return s.job }

// Name is the name of the operator producing the stream.
func (s Stream[T]) Name() string { return s.n.name }

// Subscribe registers an operator on the stream. build runs once per task
// and returns the function receiving the stream's records in that task.
func (s Stream[T]) Subscribe(build func(*Task) (Emit[T], error)) {
	s.n.subs = append(s.n.subs, build)
}

// Build instantiates the stream's subscribers for t and returns the
// function that feeds them all. A stream nobody subscribed to discards.
func (s Stream[T]) Build(t *Task) (Emit[T], error) {
	emits := make([]Emit[T], 0, len(s.n.subs))
	for _, b := range s.n.subs {
		e, err := b(t)
		if err != nil {
			return nil, err
		}
		emits = append(emits, e)
	}
	switch len(emits) {
	case 0:
		return func(Record[T]) error { return nil }, nil
	case 1:
		return emits[0], nil
	}
	return func(r Record[T]) error {
		for _, e := range emits {
			if err := e(r); err != nil {
				return err
			}
		}
		return nil
	}, nil
}

// Named renames the operator producing the stream, for metrics and errors.
// Call it while building the topology, before Run; the name must be the
// job's only operator by that name.
func (s Stream[T]) Named(name string) Stream[T] {
	if name == s.n.name {
		return s
	}
	delete(s.job.names, s.n.name)
	s.n.name = s.job.claimName(name)
	return s
}
