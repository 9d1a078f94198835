package verify

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/provenance"
)

// provHeaders is an output record's provenance, read from its headers.
type provHeaders struct {
	attributed bool // it has weir.src and weir.path
	origin     provenance.Origin
	src        string // weir.src as written
	path       []byte // weir.path; aliases the record's header value
	checkpoint string // weir.cp, "" when absent
}

// parseHeaders reads the provenance headers of a record. A record with
// neither weir.src nor weir.path is unattributed (attributed false, no
// error). An error means the headers are malformed: a repeated header,
// weir.src without weir.path or the other way round, or a value that does
// not parse.
func parseHeaders(headers []kgo.RecordHeader) (provHeaders, error) {
	var h provHeaders
	var src, path, cp []byte
	for _, hd := range headers {
		var dst *[]byte
		switch hd.Key {
		case provenance.SourceHeader:
			dst = &src
		case provenance.PathHeader:
			dst = &path
		case provenance.CheckpointHeader:
			dst = &cp
		default:
			continue
		}
		if *dst != nil {
			return h, fmt.Errorf("header %s appears twice", hd.Key)
		}
		*dst = hd.Value
		if *dst == nil {
			*dst = []byte{} // present but empty
		}
	}
	if cp != nil {
		if _, _, err := provenance.ParseCheckpoint(string(cp)); err != nil {
			return h, err
		}
		h.checkpoint = string(cp)
	}
	switch {
	case src == nil && path == nil:
		return h, nil
	case src == nil:
		return h, fmt.Errorf("header %s without %s", provenance.PathHeader, provenance.SourceHeader)
	case path == nil:
		return h, fmt.Errorf("header %s without %s", provenance.SourceHeader, provenance.PathHeader)
	}
	h.src = string(src)
	origin, err := provenance.ParseOrigin(h.src)
	if err != nil {
		return h, err
	}
	if err := checkPath(path); err != nil {
		return h, err
	}
	h.attributed, h.origin, h.path = true, origin, path
	return h, nil
}

var errBadPath = errors.New("bad " + provenance.PathHeader + ": want dot-separated output indexes, like 0 or 2.0")

// checkPath checks that a weir.path value is one or more dot-separated
// decimal indexes.
func checkPath(p []byte) error {
	digits := 0
	for _, c := range p {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && digits > 0:
			digits = 0
		default:
			return fmt.Errorf("%w (got %q)", errBadPath, p)
		}
	}
	if digits == 0 {
		return fmt.Errorf("%w (got %q)", errBadPath, p)
	}
	return nil
}
