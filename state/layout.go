package state

import (
	"encoding/binary"
	"fmt"
)

// The key layout: every key this package writes to Pebble, and every logical
// key the typed handles hand to a TaskStore. All integers are big-endian, so
// byte order is numeric order and Pebble's default comparer (bytes.Compare)
// keeps each task, and within it each state, in one contiguous range.
//
// Physical keys (in Pebble):
//
//	+------+
//	| 0x00 | "format"                                  store format marker (one per DB)
//	+------+
//	+------+-----------+----------------+------+
//	| 0x01 | stage u16 | partition u32* | 0x00 |       task metadata: checkpoint id,
//	+------+-----------+----------------+------+       changelog offsets (one per task)
//	+------+-----------+----------------+------+-------------+
//	| 0x01 | stage u16 | partition u32* | 0x01 | logical key |   task data
//	+------+-----------+----------------+------+-------------+
//	\__________ task prefix (7 bytes) _/
//
//	* the partition's sign bit is flipped, so negative int32s sort first.
//
// A task's whole range, metadata included, is [task prefix, task prefix+1):
// Drop deletes it with one range tombstone. A TaskStore's Get, Set and Scan
// take logical keys; the task prefix and the data tag are added underneath.
//
// Logical keys written by the typed handles:
//
//	+-----------+------------+------------+-------------+-------------+
//	| operator  | state name | user key   | namespace   | suffix      |
//	| len  data | len  data  | len  data  | len  data   | (raw bytes) |
//	+-----------+------------+------------+-------------+-------------+
//	\________________ state prefix: one (key, namespace) __/
//
// Each "len" is a uvarint. Length-prefixed components make the encoding
// prefix-free: key "a" + namespace "bc" (01 61 02 62 63) and key "ab" +
// namespace "c" (02 61 62 01 63) differ, and no (operator, state, key,
// namespace) is a prefix of another's. A nil namespace is the empty one.
// The suffix is what follows the state prefix:
//
//	Value, Aggregating  empty: the value lives at the state prefix itself
//	Map                 the encoded map key, raw; entries sort by its bytes
//	List                empty for the list's length record, an 8-byte
//	                    big-endian sequence number for each element
//
// So one (key, namespace) of a map or list is the contiguous range
// [state prefix, prefixEnd(state prefix)), which Range and Clear scan.
const (
	keyspaceStore byte = 0x00 // replica-wide records (the format marker)
	keyspaceTask  byte = 0x01 // per-task records

	taskMeta byte = 0x00 // the task's checkpoint metadata
	taskData byte = 0x01 // the task's logical keys

	// taskPrefixLen is the length of keyspaceTask, stage and partition.
	taskPrefixLen = 1 + 2 + 4
	// dataPrefixLen is taskPrefixLen plus the data tag: the offset at
	// which a physical data key's logical key starts.
	dataPrefixLen = taskPrefixLen + 1
)

// formatKey holds the store's layout version (formatVersion, a uvarint).
var formatKey = []byte{keyspaceStore, 'f', 'o', 'r', 'm', 'a', 't'}

// formatVersion is the version of the layout drawn above. Open refuses a
// store written with another.
const formatVersion = 1

// TaskID names a task: one partition of one stage. A stage is a chain of
// operators between Kafka topics; the partition is the input partition
// number it processes (co-partitioned inputs share it).
type TaskID struct {
	Stage     uint16
	Partition int32
}

// String formats the id as the engine does: "<stage>_<partition>".
func (id TaskID) String() string { return fmt.Sprintf("%d_%d", id.Stage, id.Partition) }

// appendTaskPrefix appends the task prefix of id.
func appendTaskPrefix(dst []byte, id TaskID) []byte {
	dst = append(dst, keyspaceTask)
	dst = binary.BigEndian.AppendUint16(dst, id.Stage)
	return binary.BigEndian.AppendUint32(dst, uint32(id.Partition)^(1<<31))
}

// prefixEnd returns the smallest key greater than every key that starts
// with prefix, or nil (no upper bound) if prefix is all 0xff bytes.
func prefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}

// appendPart appends one length-prefixed component of a logical key.
func appendPart(dst, part []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(part)))
	return append(dst, part...)
}

// readPart splits one length-prefixed component off the front of b.
func readPart(b []byte) (part, rest []byte, ok bool) {
	n, w := binary.Uvarint(b)
	if w <= 0 || uint64(len(b)-w) < n {
		return nil, b, false
	}
	return b[w : w+int(n)], b[w+int(n):], true
}

// OperatorOf returns the operator id a logical key written by a typed
// handle belongs to, so the engine can route a flushed Mutation to that
// operator's changelog topic. op shares key's bytes: a map indexed by
// string(op) finds the topic without a copy. It returns ErrCorrupt if key
// does not start with a length-prefixed component.
func OperatorOf(key []byte) (op []byte, err error) {
	op, _, ok := readPart(key)
	if !ok {
		return nil, fmt.Errorf("%w: key %q has no operator component", ErrCorrupt, key)
	}
	return op, nil
}
