package verify

import (
	"math/bits"
	"slices"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/provenance"
)

// inputSet knows which offsets of the input topics hold committed records
// and which of those are the origin of some output. It keeps, per
// partition, two bitsets over the snapshot's [start, end): a quarter of a
// byte per offset, whatever the records hold. Membership is by record, not
// by range: commit markers and aborted records leave gaps.
type inputSet map[string]map[int32]*inputPartition

type inputPartition struct {
	start, end int64
	records    int64
	present    []uint64 // bit i: offset start+i is a committed record
	covered    []uint64 // bit i: that record is the origin of an output
}

func newInputSet(sp spans) inputSet {
	s := inputSet{}
	for t, ps := range sp {
		s[t] = map[int32]*inputPartition{}
		for p, sn := range ps {
			words := (sn.end - sn.start + 63) / 64
			s[t][p] = &inputPartition{
				start:   sn.start,
				end:     sn.end,
				present: make([]uint64, words),
				covered: make([]uint64, words),
			}
		}
	}
	return s
}

// add records that r, read from an input topic, exists.
func (s inputSet) add(r *kgo.Record) {
	ip := s[r.Topic][r.Partition]
	if ip == nil || r.Offset < ip.start || r.Offset >= ip.end {
		return // the reader keeps within the snapshot; be safe anyway
	}
	i := r.Offset - ip.start
	ip.present[i/64] |= 1 << (i % 64)
	ip.records++
}

// verdict is what the input says about an output's origin.
type verdict int

const (
	notAnInput  verdict = iota // the origin's topic is not an input topic
	found                      // the origin is an input record
	phantom                    // the origin names no input record
	beforeStart                // the origin lies before the input's log start: unknowable
)

// cover looks o up and, when it is an input record, marks it covered.
func (s inputSet) cover(o provenance.Origin) verdict {
	ps, ok := s[o.Topic]
	if !ok {
		return notAnInput
	}
	ip := ps[o.Partition]
	switch {
	case ip == nil || o.Offset >= ip.end:
		return phantom
	case o.Offset < ip.start:
		return beforeStart
	}
	i := o.Offset - ip.start
	if ip.present[i/64]&(1<<(i%64)) == 0 {
		return phantom
	}
	ip.covered[i/64] |= 1 << (i % 64)
	return found
}

// records returns how many records of topic were read.
func (s inputSet) records(topic string) int64 {
	var n int64
	for _, ip := range s[topic] {
		n += ip.records
	}
	return n
}

// missing returns how many input records are the origin of no output, and
// the first limit of them by topic, partition and offset.
func (s inputSet) missing(limit int) (int64, []Record) {
	var n int64
	var examples []Record
	for _, t := range sortedKeys(s) {
		ps := s[t]
		for _, p := range sortedKeys(ps) {
			ip := ps[p]
			for w, present := range ip.present {
				left := present &^ ip.covered[w]
				n += int64(bits.OnesCount64(left))
				for left != 0 && len(examples) < limit {
					b := bits.TrailingZeros64(left)
					left &^= 1 << b
					examples = append(examples, Record{Topic: t, Partition: p, Offset: ip.start + int64(w)*64 + int64(b)})
				}
			}
		}
	}
	return n, examples
}

func sortedKeys[K interface{ ~string | ~int32 }, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
