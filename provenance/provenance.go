// Package provenance defines the headers with which Weir marks where each
// output record came from, so a checker that reads the outputs (weir
// verify) can find duplicates, missing records and reordering without
// knowing the job.
//
// A job started with provenance on (WEIR_PROVENANCE=true) adds to every
// record its sinks write:
//
//	weir.src   origin: "<topic>/<partition>/<offset>" of the input record
//	           whose processing produced the output. Through a repartition
//	           topic the origin is carried along, so a second stage's
//	           output names the first stage's input. An output produced
//	           while a task processed a watermark control record (a window
//	           fired by the watermark) names that control record.
//	weir.path  which output of that origin it is: the index of the record
//	           among those the origin produced into the same topic, one
//	           index per stage, dot-separated ("0", "2.0"). Origin and path
//	           together identify an output: in an exactly-once run no two
//	           committed records of a topic share them.
//	weir.cp    "<task>@<checkpoint>": the task (stage_partition) and the
//	           checkpoint whose transaction carried the record.
//
// Outputs made outside any record's processing (processing-time timers,
// idle ticks) carry only weir.cp.
//
// This package must stay free of the engine: it is the contract between
// the engine, which writes these headers, and tools that read them.
package provenance

import (
	"fmt"
	"strconv"
	"strings"
)

// Header keys.
const (
	SourceHeader     = "weir.src"
	PathHeader       = "weir.path"
	CheckpointHeader = "weir.cp"
)

// Origin is an input record's position.
type Origin struct {
	Topic     string
	Partition int32
	Offset    int64
}

// String formats o as weir.src holds it.
func (o Origin) String() string {
	return o.Topic + "/" + strconv.FormatInt(int64(o.Partition), 10) + "/" + strconv.FormatInt(o.Offset, 10)
}

// AppendOrigin appends o's weir.src form to dst.
func AppendOrigin(dst []byte, o Origin) []byte {
	dst = append(dst, o.Topic...)
	dst = append(dst, '/')
	dst = strconv.AppendInt(dst, int64(o.Partition), 10)
	dst = append(dst, '/')
	return strconv.AppendInt(dst, o.Offset, 10)
}

// ParseOrigin parses a weir.src value. Topic names may not contain '/',
// so the last two '/' separate partition and offset.
func ParseOrigin(s string) (Origin, error) {
	j := strings.LastIndexByte(s, '/')
	if j <= 0 {
		return Origin{}, fmt.Errorf("provenance: bad origin %q: want topic/partition/offset", s)
	}
	i := strings.LastIndexByte(s[:j], '/')
	if i <= 0 {
		return Origin{}, fmt.Errorf("provenance: bad origin %q: want topic/partition/offset", s)
	}
	p, err := strconv.ParseInt(s[i+1:j], 10, 32)
	if err != nil || p < 0 {
		return Origin{}, fmt.Errorf("provenance: bad partition in origin %q", s)
	}
	off, err := strconv.ParseInt(s[j+1:], 10, 64)
	if err != nil || off < 0 {
		return Origin{}, fmt.Errorf("provenance: bad offset in origin %q", s)
	}
	return Origin{Topic: s[:i], Partition: int32(p), Offset: off}, nil
}

// AppendPath appends index to a weir.path value: path "" gives "3", path
// "1" gives "1.3".
func AppendPath(dst []byte, path []byte, index int) []byte {
	dst = append(dst, path...)
	if len(path) > 0 {
		dst = append(dst, '.')
	}
	return strconv.AppendInt(dst, int64(index), 10)
}

// Checkpoint formats a weir.cp value.
func Checkpoint(task string, id int64) string { return task + "@" + strconv.FormatInt(id, 10) }

// ParseCheckpoint splits a weir.cp value into task and checkpoint id.
func ParseCheckpoint(s string) (task string, id int64, err error) {
	i := strings.LastIndexByte(s, '@')
	if i <= 0 {
		return "", 0, fmt.Errorf("provenance: bad checkpoint %q: want task@id", s)
	}
	id, err = strconv.ParseInt(s[i+1:], 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("provenance: bad checkpoint id in %q", s)
	}
	return s[:i], id, nil
}
