package engine

import "fmt"

// OutputTag names a side output of type T: a second stream an operator
// emits to besides its main output, as Flink's OutputTag. Late data,
// invalid records, alerts beside results.
type OutputTag[T any] struct{ id string }

// NewOutputTag returns the tag called name. Tags with one name are the
// same side output.
func NewOutputTag[T any](name string) OutputTag[T] { return OutputTag[T]{id: name} }

// Name is the tag's name.
func (t OutputTag[T]) Name() string { return t.id }

// Emit sends v to the tag's side output, under the current key and event
// time. A side output no stream reads (see SideOutput) discards.
func (t OutputTag[T]) Emit(c SideEmitter, v T) error {
	e, rec := c.SideOutput(t.id)
	if e == nil {
		return nil
	}
	emit, ok := e.(Emit[T])
	if !ok {
		return fmt.Errorf("side output %q is of another type than %T", t.id, v)
	}
	return emit(Record[T]{Key: rec.Key, Value: v, Timestamp: rec.Timestamp})
}

// SideEmitter is what OutputTag.Emit emits through: a process function's
// Context, or a FlatMap function's collector.
type SideEmitter interface {
	// SideOutput returns the emitter of side output id (nil when no
	// stream reads it) and the key and time of the record in hand.
	SideOutput(id string) (any, Record[struct{}])
}

// SideOutputs are one operator's side outputs in one task, by tag name.
type SideOutputs map[string]any

// Lookup returns side output id's emitter, nil when no stream reads it.
func (s SideOutputs) Lookup(id string) any { return s[id] }

// BuildSides builds, for task t, the side outputs of the operator that
// produces s, for operator packages (see SideOutput).
func (s Stream[T]) BuildSides(t *Task) (SideOutputs, error) { return buildSides(t, s.n) }

// SideOutput returns the side output tag of the operator producing s. Call
// it while building the topology.
func SideOutput[T, OUT any](s Stream[OUT], tag OutputTag[T]) Stream[T] {
	out := Derive[T](s, s.Name()+"/"+tag.id)
	if s.n.sides == nil {
		s.n.sides = map[string]func(*Task) (any, error){}
	}
	if _, dup := s.n.sides[tag.id]; dup {
		s.job.buildErr(fmt.Errorf("side output %q of %s is read twice; subscribe twice to the stream SideOutput returned", tag.id, s.Name()))
	}
	s.n.sides[tag.id] = func(t *Task) (any, error) { return out.Build(t) }
	return out
}

// buildSides builds, for task t, the side outputs of the operator whose
// node is n.
func buildSides[T any](t *Task, n *node[T]) (map[string]any, error) {
	if len(n.sides) == 0 {
		return nil, nil
	}
	m := make(map[string]any, len(n.sides))
	for id, b := range n.sides {
		e, err := b(t)
		if err != nil {
			return nil, err
		}
		m[id] = e
	}
	return m, nil
}
