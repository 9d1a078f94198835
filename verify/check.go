package verify

import (
	"encoding/hex"
	"unicode"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/provenance"
)

// checker runs the checks on the records the readers hand it: first every
// input record (addInput), then every output record (addOutput). It owns
// all state of one Run; memory grows with the number of distinct
// (origin, path) pairs and distinct (key, origin partition) pairs of the
// outputs, plus two bits per input offset.
type checker struct {
	maxExamples       int
	requireProvenance bool

	inputs      inputSet
	topics      interner          // origin topic names
	checkpoints interner          // weir.cp values; id 0 is ""
	paths       map[string]string // weir.path values, interned
	outputs     map[string]*outputState

	r Report // counts and examples; report fills in the rest
}

// outputState is what the checks remember of one output topic.
type outputState struct {
	records int64
	// seen has the first copy of every output, by identity.
	seen map[outputID]copyRef
	// last has, per sequence that must stay ordered, its latest record.
	last map[orderKey]orderRef
}

// outputID identifies an output within its topic: origin and path.
type outputID struct {
	topic     uint32 // origin topic, interned
	partition int32
	offset    int64
	path      string // interned
}

type copyRef struct {
	partition  int32
	checkpoint uint32
	offset     int64
}

// orderKey names a sequence whose origin offsets must not decrease: the
// records of one output partition with one key from one origin partition.
type orderKey struct {
	partition       int32
	originTopic     uint32
	originPartition int32
	key             string
}

type orderRef struct {
	offset       int64
	originOffset int64
	checkpoint   uint32
	path         string
}

func newChecker(maxExamples int, requireProvenance bool, inputs spans) *checker {
	c := &checker{
		maxExamples:       maxExamples,
		requireProvenance: requireProvenance,
		inputs:            newInputSet(inputs),
		paths:             map[string]string{},
		outputs:           map[string]*outputState{},
	}
	c.checkpoints.id("")
	return c
}

// addInput records an input record.
func (c *checker) addInput(r *kgo.Record) { c.inputs.add(r) }

// addOutput checks an output record against those before it.
func (c *checker) addOutput(r *kgo.Record) {
	st := c.outputs[r.Topic]
	if st == nil {
		st = &outputState{seen: map[outputID]copyRef{}, last: map[orderKey]orderRef{}}
		c.outputs[r.Topic] = st
	}
	st.records++

	h, err := parseHeaders(r.Headers)
	rec := Record{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Checkpoint: h.checkpoint}
	if err != nil {
		c.r.Malformed++
		if len(c.r.Examples.Malformed) < c.maxExamples {
			c.r.Examples.Malformed = append(c.r.Examples.Malformed, Malformed{Record: rec, Reason: err.Error()})
		}
		return
	}
	if !h.attributed {
		c.r.Unattributed++
		if len(c.r.Examples.Unattributed) < c.maxExamples {
			c.r.Examples.Unattributed = append(c.r.Examples.Unattributed, rec)
		}
		return
	}
	rec.Origin, rec.Path = h.src, c.internPath(h.path)
	cp := c.checkpoints.id(h.checkpoint)

	switch c.inputs.cover(h.origin) {
	case phantom:
		c.r.Phantoms++
		if len(c.r.Examples.Phantoms) < c.maxExamples {
			c.r.Examples.Phantoms = append(c.r.Examples.Phantoms, rec)
		}
	case beforeStart:
		c.r.UncheckedOrigins++
	}

	originTopic := c.topics.id(h.origin.Topic)
	id := outputID{topic: originTopic, partition: h.origin.Partition, offset: h.origin.Offset, path: rec.Path}
	if first, dup := st.seen[id]; dup {
		c.r.Duplicates++
		if len(c.r.Examples.Duplicates) < c.maxExamples {
			firstRec := rec
			firstRec.Partition, firstRec.Offset, firstRec.Checkpoint = first.partition, first.offset, c.checkpoints.name(first.checkpoint)
			c.r.Examples.Duplicates = append(c.r.Examples.Duplicates, Duplicate{First: firstRec, Second: rec})
		}
		return // a copy is not checked for order: it is a violation already
	}
	st.seen[id] = copyRef{partition: r.Partition, checkpoint: cp, offset: r.Offset}

	if r.Key == nil {
		return // keyless records have no order to keep
	}
	k := orderKey{partition: r.Partition, originTopic: originTopic, originPartition: h.origin.Partition, key: string(r.Key)}
	prev, ok := st.last[k]
	st.last[k] = orderRef{offset: r.Offset, originOffset: h.origin.Offset, checkpoint: cp, path: rec.Path}
	if !ok || h.origin.Offset >= prev.originOffset {
		return
	}
	c.r.OrderViolations++
	if len(c.r.Examples.OrderViolations) < c.maxExamples {
		earlier := Record{
			Topic: r.Topic, Partition: r.Partition, Offset: prev.offset,
			Origin:     provenance.Origin{Topic: h.origin.Topic, Partition: h.origin.Partition, Offset: prev.originOffset}.String(),
			Path:       prev.path,
			Checkpoint: c.checkpoints.name(prev.checkpoint),
		}
		c.r.Examples.OrderViolations = append(c.r.Examples.OrderViolations,
			OrderViolation{Key: printableKey(r.Key), Earlier: earlier, Later: rec})
	}
}

func (c *checker) internPath(p []byte) string {
	if s, ok := c.paths[string(p)]; ok {
		return s
	}
	s := string(p)
	c.paths[s] = s
	return s
}

// interner gives strings small ids, so maps of many records hold four
// bytes instead of a string each.
type interner struct {
	ids   map[string]uint32
	names []string
}

func (in *interner) id(s string) uint32 {
	if id, ok := in.ids[s]; ok {
		return id
	}
	if in.ids == nil {
		in.ids = map[string]uint32{}
	}
	id := uint32(len(in.names))
	in.ids[s] = id
	in.names = append(in.names, s)
	return id
}

func (in *interner) name(id uint32) string { return in.names[id] }

// printableKey returns a record key for a report: as is when it is
// printable UTF-8, else hex with a 0x prefix.
func printableKey(k []byte) string {
	if utf8.Valid(k) {
		printable := true
		for _, r := range string(k) {
			if !unicode.IsPrint(r) {
				printable = false
				break
			}
		}
		if printable {
			return string(k)
		}
	}
	return "0x" + hex.EncodeToString(k)
}
