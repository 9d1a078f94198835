package operators_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/datadriven"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/internal/local"
	"github.com/weirstream/weir/observe"
	"github.com/weirstream/weir/operators"
)

type view struct {
	User   string `json:"user"`
	Seq    int    `json:"seq"`
	Bot    bool   `json:"bot,omitempty"`
	Fail   bool   `json:"fail,omitempty"`
	Panic  bool   `json:"panic,omitempty"`
	Copies int    `json:"copies,omitempty"`
}

type tagged struct {
	User string `json:"user"`
	Seq  int    `json:"seq"`
	Copy int    `json:"copy"`
}

// recorder is a Producer that acknowledges at once and keeps what it got.
type recorder struct {
	mu   sync.Mutex
	recs []*kgo.Record
}

func (r *recorder) Produce(_ context.Context, rec *kgo.Record, promise func(*kgo.Record, error)) {
	r.mu.Lock()
	kept := *rec // the engine reuses its changelog records after the promise
	r.recs = append(r.recs, &kept)
	r.mu.Unlock()
	promise(rec, nil)
}

func (r *recorder) take() []*kgo.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.recs
	r.recs = nil
	return out
}

// counts is an observer keeping per-operator totals.
type counts struct {
	observe.Nop
	mu              sync.Mutex
	in, out, failed map[string]int
}

func newCounts() *counts {
	return &counts{in: map[string]int{}, out: map[string]int{}, failed: map[string]int{}}
}

func (c *counts) RecordsIn(op string, n int)     { c.add(c.in, op, n) }
func (c *counts) RecordsOut(op string, n int)    { c.add(c.out, op, n) }
func (c *counts) RecordsFailed(op string, n int) { c.add(c.failed, op, n) }
func (c *counts) add(m map[string]int, op string, n int) {
	c.mu.Lock()
	m[op] += n
	c.mu.Unlock()
}

func (c *counts) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ops []string
	for op := range c.in {
		ops = append(ops, op)
	}
	slices.Sort(ops)
	var b strings.Builder
	for _, op := range ops {
		fmt.Fprintf(&b, "%s: in=%d out=%d failed=%d\n", op, c.in[op], c.out[op], c.failed[op])
	}
	return b.String()
}

// buildChain is the job the scripts drive: drop bots, tag (failing or
// panicking on request), fan out copies.
func buildChain(routeInvalid bool, opts ...engine.Opt) *engine.Job {
	job := engine.NewJob("chain", opts...)
	var checkOpts []operators.Option[view]
	if routeInvalid {
		checkOpts = append(checkOpts, operators.Invalid(rejected))
	}
	views := connectors.KafkaSource(job, "views", codec.JSON[view]())
	humans := operators.Filter(views, func(v view) bool { return !v.Bot }).Named("drop-bots")
	checked := operators.Map(humans, func(v view) (view, error) {
		if v.Panic {
			panic("user code panicked")
		}
		if v.Fail {
			return v, fmt.Errorf("refused %s/%d", v.User, v.Seq)
		}
		return v, nil
	}, checkOpts...).Named("check")
	copies := operators.FlatMap(checked, func(v view, out operators.Collector[tagged]) error {
		if v.Copies < 0 {
			// Routed aside by the function itself.
			return invalid.Emit(out, v)
		}
		for i := range max(1, v.Copies) {
			if err := out.Collect(tagged{User: v.User, Seq: v.Seq, Copy: i}); err != nil {
				return err
			}
		}
		return nil
	}).Named("copies")
	connectors.KafkaSink(copies, "out", codec.JSON[tagged]())
	connectors.KafkaSink(engine.SideOutput(copies, invalid), "invalid", codec.JSON[view]())
	if routeInvalid {
		connectors.KafkaSink(engine.SideOutput(checked, rejected), "rejected", codec.JSON[view]())
	}
	return job
}

var rejected = engine.NewOutputTag[view]("rejected")

var invalid = engine.NewOutputTag[view]("invalid")

// TestChain runs the scripts in testdata/operators. Commands:
//
//	new-task [policy=P] [invalid]   a fresh task of the chain job, with
//	                                error policy P (default fail); with
//	                                invalid, check routes what it fails on
//	                                to the side output "rejected"
//	process                         one record per line: <offset> <key> <json value>
//	stats                           per-operator counts reported so far
//
// process prints each output record, then the task's next offset, or the
// error that stopped it.
func TestChain(t *testing.T) {
	datadriven.Walk(t, "../testdata/operators", func(t *testing.T, path string) {
		var task local.Task
		var prod *recorder
		var obs *counts
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			switch d.Cmd {
			case "new-task":
				prod, obs = &recorder{}, newCounts()
				var opts []engine.Opt
				if d.HasArg("policy") {
					var p string
					d.ScanArgs(t, "policy", &p)
					opts = append(opts, engine.WithErrorPolicy(engine.ErrorPolicy(p)))
				}
				var err error
				if task, err = local.NewTask(context.Background(), buildChain(d.HasArg("invalid"), opts...), 0, 0, local.Env{Producer: prod, Observer: obs}); err != nil {
					d.Fatalf(t, "%v", err)
				}
				return ""
			case "process":
				var recs []*kgo.Record
				for line := range strings.SplitSeq(strings.TrimSpace(d.Input), "\n") {
					f := strings.SplitN(line, " ", 3)
					if len(f) != 3 {
						d.Fatalf(t, "want <offset> <key> <value>: %q", line)
					}
					off, err := strconv.ParseInt(f[0], 10, 64)
					if err != nil {
						d.Fatalf(t, "offset %q: %v", f[0], err)
					}
					recs = append(recs, &kgo.Record{Topic: "views", Partition: 0, Offset: off, Key: []byte(f[1]), Value: []byte(f[2])})
				}
				err := task.Process("views", recs)
				var b strings.Builder
				for _, r := range prod.take() {
					fmt.Fprintf(&b, "%s key=%s %s\n", r.Topic, r.Key, r.Value)
					for _, h := range r.Headers {
						if h.Key != engine.HeaderErrorTime && h.Key != engine.HeaderErrorTask {
							fmt.Fprintf(&b, "  %s: %s\n", h.Key, h.Value)
						}
					}
				}
				if err != nil {
					fmt.Fprintf(&b, "error: %v\n", err)
				}
				fmt.Fprintf(&b, "next offset: %d\n", task.NextOffset("views"))
				return b.String()
			case "stats":
				return obs.String()
			}
			d.Fatalf(t, "unknown command %q", d.Cmd)
			return ""
		})
	})
}
