package verify

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/weirstream/weir/provenance"
)

// Report is the outcome of Run: what was read, how many violations of each
// kind were found, and up to Config.MaxExamples examples of each. Its JSON
// form (json.Marshal) adds "ok", the result of OK.
type Report struct {
	// Outputs and Inputs say how much of each topic was read, in the order
	// the topics were given.
	Outputs []TopicStats `json:"outputs"`
	Inputs  []TopicStats `json:"inputs,omitempty"`

	// Duplicates counts output records whose origin and path an earlier
	// record of the same topic has (each extra copy once).
	Duplicates int64 `json:"duplicates"`
	// OrderViolations counts consecutive pairs of records of one output
	// partition with the same key and origin partition whose origin offset
	// decreases. Keyless records and duplicate copies are not checked.
	OrderViolations int64 `json:"order_violations"`
	// Missing counts input records that are the origin of no output; it
	// is checked only when input topics are given.
	Missing int64 `json:"missing"`
	// Phantoms counts outputs whose origin is in an input topic but is not
	// one of its records.
	Phantoms int64 `json:"phantoms"`
	// Malformed counts outputs whose provenance headers do not parse.
	Malformed int64 `json:"malformed"`
	// Unattributed counts outputs without provenance; they are violations
	// only when RequireProvenance is set.
	Unattributed      int64 `json:"unattributed"`
	RequireProvenance bool  `json:"require_provenance"`
	// UncheckedOrigins counts outputs whose origin lies before the start
	// of its input partition (deleted by retention): neither missing nor
	// phantom can be decided for them. Not a violation.
	UncheckedOrigins int64 `json:"unchecked_origins"`

	Examples Examples `json:"examples"`
}

// TopicStats says how much of a topic Run read.
type TopicStats struct {
	Topic      string `json:"topic"`
	Partitions int    `json:"partitions"`
	// Records counts the committed data records read.
	Records int64 `json:"records"`
}

// Examples holds the first violations of each kind that Run found.
type Examples struct {
	Duplicates      []Duplicate      `json:"duplicates,omitempty"`
	OrderViolations []OrderViolation `json:"order_violations,omitempty"`
	Missing         []Record         `json:"missing,omitempty"`
	Phantoms        []Record         `json:"phantoms,omitempty"`
	Malformed       []Malformed      `json:"malformed,omitempty"`
	Unattributed    []Record         `json:"unattributed,omitempty"`
}

// Record names a record in a topic and, for an output, its provenance.
type Record struct {
	Topic      string `json:"topic"`
	Partition  int32  `json:"partition"`
	Offset     int64  `json:"offset"`
	Origin     string `json:"origin,omitempty"`     // weir.src
	Path       string `json:"path,omitempty"`       // weir.path
	Checkpoint string `json:"checkpoint,omitempty"` // weir.cp
}

// String returns "topic/partition@offset".
func (r Record) String() string {
	return r.Topic + "/" + strconv.FormatInt(int64(r.Partition), 10) + "@" + strconv.FormatInt(r.Offset, 10)
}

// Duplicate is two committed output records with the same origin and path.
type Duplicate struct {
	First  Record `json:"first"`
	Second Record `json:"second"`
}

// OrderViolation is two records of one output partition with the same key
// and origin partition, where the Later record (by output offset) has the
// smaller origin offset.
type OrderViolation struct {
	Key     string `json:"key"` // as is if printable UTF-8, else 0x-prefixed hex
	Earlier Record `json:"earlier"`
	Later   Record `json:"later"`
}

// Malformed is an output record whose provenance headers do not parse.
type Malformed struct {
	Record Record `json:"record"`
	Reason string `json:"reason"`
}

// Violations returns the number of violations of all kinds.
func (r *Report) Violations() int64 {
	n := r.Duplicates + r.OrderViolations + r.Missing + r.Phantoms + r.Malformed
	if r.RequireProvenance {
		n += r.Unattributed
	}
	return n
}

// OK reports whether the outputs show no violation.
func (r *Report) OK() bool { return r.Violations() == 0 }

// MarshalJSON encodes the report with an extra "ok" field.
func (r *Report) MarshalJSON() ([]byte, error) {
	type plain Report // without this method
	return json.Marshal(struct {
		OK bool `json:"ok"`
		*plain
	}{r.OK(), (*plain)(r)})
}

// WriteText writes a human-readable summary of the report to w.
func (r *Report) WriteText(w io.Writer) error {
	p := &printer{w: w}
	if r.OK() {
		p.printf("OK: no exactly-once violations\n")
	} else {
		p.printf("FAILED: %s\n", plural(r.Violations(), "exactly-once violation"))
	}
	for _, t := range r.Outputs {
		p.printf("  output %s: %s in %s\n", t.Topic, plural(t.Records, "record"), plural(int64(t.Partitions), "partition"))
	}
	for _, t := range r.Inputs {
		p.printf("  input  %s: %s in %s\n", t.Topic, plural(t.Records, "record"), plural(int64(t.Partitions), "partition"))
	}
	p.printf("\n")
	p.printf("  duplicates        %d\n", r.Duplicates)
	p.printf("  order violations  %d\n", r.OrderViolations)
	if len(r.Inputs) > 0 {
		p.printf("  missing           %d\n", r.Missing)
		p.printf("  phantoms          %d\n", r.Phantoms)
	} else {
		p.printf("  missing           not checked: no input topics given\n")
		p.printf("  phantoms          not checked: no input topics given\n")
	}
	p.printf("  malformed         %d\n", r.Malformed)
	if r.RequireProvenance {
		p.printf("  unattributed      %d (provenance required)\n", r.Unattributed)
	} else {
		p.printf("  unattributed      %d (not a violation: provenance not required)\n", r.Unattributed)
	}
	if r.UncheckedOrigins > 0 {
		p.printf("  unchecked origins %d (origin before the input's log start)\n", r.UncheckedOrigins)
	}

	ex := r.Examples
	p.section("duplicate outputs (same origin and path)", len(ex.Duplicates), r.Duplicates)
	for _, d := range ex.Duplicates {
		p.printf("  %s and %s: origin %s path %s, checkpoints %s and %s\n",
			d.First, d.Second, d.First.Origin, d.First.Path, orNone(d.First.Checkpoint), orNone(d.Second.Checkpoint))
	}
	p.section("order violations (same key and origin partition, origin offset decreases)", len(ex.OrderViolations), r.OrderViolations)
	for _, o := range ex.OrderViolations {
		p.printf("  key %q: %s (origin %s) before %s (origin %s)\n", o.Key, o.Earlier, o.Earlier.Origin, o.Later, o.Later.Origin)
	}
	p.section("missing input records (origin of no output)", len(ex.Missing), r.Missing)
	for _, m := range ex.Missing {
		p.printf("  %s\n", m)
	}
	p.section("phantom outputs (origin is no input record)", len(ex.Phantoms), r.Phantoms)
	for _, ph := range ex.Phantoms {
		p.printf("  %s: origin %s path %s, checkpoint %s\n", ph, ph.Origin, ph.Path, orNone(ph.Checkpoint))
	}
	p.section("malformed provenance headers", len(ex.Malformed), r.Malformed)
	for _, m := range ex.Malformed {
		p.printf("  %s: %s\n", m.Record, m.Reason)
	}
	if r.RequireProvenance {
		p.section("unattributed outputs (no "+provenance.SourceHeader+")", len(ex.Unattributed), r.Unattributed)
		for _, u := range ex.Unattributed {
			p.printf("  %s, checkpoint %s\n", u, orNone(u.Checkpoint))
		}
	}
	return p.err
}

// printer writes formatted text and keeps the first error.
type printer struct {
	w   io.Writer
	err error
}

func (p *printer) printf(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

// section starts a list of examples, when there is anything to list.
func (p *printer) section(title string, shown int, total int64) {
	if total == 0 {
		return
	}
	if int64(shown) < total {
		p.printf("\n%s, %d of %d:\n", title, shown, total)
	} else {
		p.printf("\n%s:\n", title)
	}
}

func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.FormatInt(n, 10) + " " + noun + "s"
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// report finishes the Report: topic stats and missing records.
func (c *checker) report(outputs, inputs []string, outSpans, inSpans spans) *Report {
	r := c.r
	r.RequireProvenance = c.requireProvenance
	for _, t := range outputs {
		var n int64
		if st := c.outputs[t]; st != nil {
			n = st.records
		}
		r.Outputs = append(r.Outputs, TopicStats{Topic: t, Partitions: len(outSpans[t]), Records: n})
	}
	for _, t := range inputs {
		r.Inputs = append(r.Inputs, TopicStats{Topic: t, Partitions: len(inSpans[t]), Records: c.inputs.records(t)})
	}
	if len(inputs) > 0 {
		r.Missing, r.Examples.Missing = c.inputs.missing(c.maxExamples)
	}
	return &r
}
