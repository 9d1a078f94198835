package engine

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/weirstream/weir/observe"
)

// LocalTask runs a job's operator chain for one task in the caller's
// goroutine, with no broker and no consumer group: records go in through
// Process, outputs go to the given Producer. It is the engine underneath
// test harnesses and the engine-only benchmarks; it is not for production.
type LocalTask struct {
	t *Task
}

// NewLocalTask builds the job's operators for the task id. obs may be nil.
func (j *Job) NewLocalTask(ctx context.Context, id TaskID, p Producer, obs observe.Observer) (*LocalTask, error) {
	if err := j.validateTopology(); err != nil {
		return nil, err
	}
	if obs == nil {
		obs = observe.Nop{}
	}
	log := j.cfg.logger
	if log == nil {
		log = zap.NewNop()
	}
	t, err := newTask(ctx, id, j, log, obs, p)
	if err != nil {
		return nil, err
	}
	return &LocalTask{t: t}, nil
}

// Process runs the records of one input topic through the chain in order.
// It stops at the first record that fails and returns its *RecordError;
// after that the task stays failed, as a running job's would.
func (l *LocalTask) Process(topic string, records []*kgo.Record) error {
	if l.t.err != nil {
		return l.t.err
	}
	if _, ok := l.t.sources[topic]; !ok {
		return &RecordError{Topic: topic, Partition: l.t.id.Partition, Offset: -1, Operator: "local", Err: fmt.Errorf("the job has no source for topic %q", topic)}
	}
	err := l.t.process(batch{topic: topic, records: records, highWatermark: -1})
	if err != nil {
		l.t.err = err
	}
	l.t.flushStats()
	return err
}

// NextOffset is the offset of the next record of topic the task would
// process: the offset a checkpoint would commit.
func (l *LocalTask) NextOffset(topic string) int64 { return l.t.next[topic].Offset }
