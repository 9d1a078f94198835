package operators_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/windowing"
)

// runTopology runs job against no broker: a topology error comes back
// before Run dials anything.
func runTopology(t *testing.T, job *engine.Job) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return job.Run(ctx)
}

func newTopologyJob(t *testing.T) (*engine.Job, engine.KeyedStream[string, string]) {
	job := engine.NewJob("names", engine.WithBrokers("127.0.0.1:1"), engine.WithMetricsAddr(""), engine.WithStateDir(t.TempDir()))
	src := connectors.KafkaSource(job, "in", codec.String())
	return job, operators.KeyByRecordKey(src, codec.String())
}

// Two stateful operators given one name must not share (or silently
// rename) state: reordering the code would swap their changelogs.
func TestTwoOperatorsOfOneNameAreRejected(t *testing.T) {
	job, keyed := newTopologyJob(t)
	count := operators.Count[string]{}
	a := operators.WindowAggregate(keyed, "per-minute", windowing.Tumbling(time.Minute), count, codec.JSON[int64]())
	b := operators.WindowAggregate(keyed, "per-minute", windowing.Tumbling(time.Hour), count, codec.JSON[int64]())
	if a.Name() != "per-minute" || b.Name() != "per-minute" {
		t.Errorf("names %q and %q: a name the user gives is never changed", a.Name(), b.Name())
	}
	err := runTopology(t, job)
	if !errors.Is(err, engine.ErrTopology) || !strings.Contains(err.Error(), `two operators are named "per-minute"`) {
		t.Fatalf("Run returned %v, want an ErrTopology naming per-minute", err)
	}
}

func TestNamedToATakenNameIsRejected(t *testing.T) {
	job, keyed := newTopologyJob(t)
	operators.Map(keyed.Stream, func(s string) (string, error) { return s, nil }).Named("clean")
	operators.Filter(keyed.Stream, func(string) bool { return true }).Named("clean")
	if err := runTopology(t, job); !errors.Is(err, engine.ErrTopology) || !strings.Contains(err.Error(), `"clean"`) {
		t.Fatalf("Run returned %v, want an ErrTopology naming clean", err)
	}
}

func TestDefaultNamesAreNumbered(t *testing.T) {
	_, keyed := newTopologyJob(t)
	m1 := operators.Map(keyed.Stream, func(s string) (string, error) { return s, nil })
	m2 := operators.Map(keyed.Stream, func(s string) (string, error) { return s, nil })
	k1 := operators.KeyBy(m1, func(s string) string { return s })
	k2 := operators.KeyBy(m2, func(s string) string { return s })
	if m1.Name() != "map" || m2.Name() != "map-2" || k1.Name() != "keyby" || k2.Name() != "keyby-2" {
		t.Errorf("default names %q %q %q %q, want map map-2 keyby keyby-2", m1.Name(), m2.Name(), k1.Name(), k2.Name())
	}
	// A renamed operator frees its default name.
	m1.Named("first")
	if m3 := operators.Map(keyed.Stream, func(s string) (string, error) { return s, nil }); m3.Name() != "map" {
		t.Errorf("after renaming map, a new map is %q", m3.Name())
	}
}

func TestWindowOptionsOfAnotherTypeAreRejected(t *testing.T) {
	job, keyed := newTopologyJob(t)
	count := operators.Count[string]{}
	operators.WindowAggregate(keyed, "w", windowing.Tumbling(time.Minute), count, codec.JSON[int64](),
		operators.LateOutput(engine.NewOutputTag[int]("late")))
	if err := runTopology(t, job); !errors.Is(err, engine.ErrTopology) || !strings.Contains(err.Error(), "LateOutput's tag") {
		t.Fatalf("Run returned %v, want an ErrTopology about the late-output tag", err)
	}
}
