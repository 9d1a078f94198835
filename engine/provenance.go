package engine

import (
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/provenance"
)

// tracer stamps a task's outputs with provenance headers (package
// provenance) when the job runs with Provenance on: the input record being
// processed (carried through repartition topics), the output's index
// among that record's outputs to the same topic, and the checkpoint. The
// task owns it; nil when provenance is off, which costs one nil check per
// produce.
type tracer struct {
	task string
	// origin and path are those of the record in process: origin nil
	// between records (outputs of ticks carry only the checkpoint). They
	// are shared by every output of the record, so never written to after.
	origin, path []byte
	counts       map[string]int // outputs of the record in process, by topic
}

// enter starts tracing the outputs of r: a record of the job's own source
// is its own origin; a record from a repartition topic names the origin
// it carries, and its path extends the upstream one.
func (tr *tracer) enter(r *kgo.Record) {
	tr.origin, tr.path = nil, nil
	for _, h := range r.Headers {
		switch h.Key {
		case provenance.SourceHeader:
			tr.origin = h.Value
		case provenance.PathHeader:
			tr.path = h.Value
		}
	}
	if tr.origin == nil {
		tr.origin = provenance.AppendOrigin(nil, provenance.Origin{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset})
		tr.path = nil
	}
	clear(tr.counts)
}

// leave ends the record: outputs from here on (ticks) have no origin.
func (tr *tracer) leave() { tr.origin, tr.path = nil, nil }

// stamp adds the headers to an output of checkpoint cp.
func (tr *tracer) stamp(r *kgo.Record, cp int64) {
	cpH := kgo.RecordHeader{Key: provenance.CheckpointHeader, Value: []byte(provenance.Checkpoint(tr.task, cp))}
	if tr.origin == nil {
		r.Headers = append(r.Headers, cpH)
		return
	}
	i := tr.counts[r.Topic]
	tr.counts[r.Topic] = i + 1
	r.Headers = append(r.Headers,
		kgo.RecordHeader{Key: provenance.SourceHeader, Value: tr.origin},
		kgo.RecordHeader{Key: provenance.PathHeader, Value: provenance.AppendPath(nil, tr.path, i)},
		cpH)
}
