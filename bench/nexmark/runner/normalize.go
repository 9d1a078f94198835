package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/bench/nexmark"
	"github.com/weirstream/weir/verify"
)

// Normalize returns a query result (a JSON object) in one canonical form,
// so that the outputs of engines that write the same values differently
// compare equal: members sorted by name, integers as integers, other
// numbers in Go's shortest form, and times ("yyyy-MM-dd HH:mm:ss.SSS" or
// RFC 3339 in UTC, any number of fraction digits) as
// "yyyy-MM-dd HH:mm:ss.SSS".
func Normalize(value []byte) (string, error) {
	d := json.NewDecoder(bytes.NewReader(value))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return "", fmt.Errorf("nexmark: output %.200q is not JSON: %w", value, err)
	}
	if d.More() {
		return "", fmt.Errorf("nexmark: output %.200q has more than one JSON value", value)
	}
	b, err := json.Marshal(canonical(v))
	return string(b), err
}

func canonical(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			v[k] = canonical(x)
		}
	case []any:
		for i, x := range v {
			v[i] = canonical(x)
		}
	case json.Number:
		if i, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			return i
		}
		if f, err := strconv.ParseFloat(string(v), 64); err == nil {
			if f == float64(int64(f)) && !strings.ContainsAny(string(v), "eE") {
				return int64(f) // "12.000" is the integer 12
			}
			return f
		}
	case string:
		if len(v) >= 19 && v[4] == '-' && v[7] == '-' && (v[10] == ' ' || v[10] == 'T') {
			var d nexmark.DateTime
			if err := d.UnmarshalJSON(strconv.AppendQuote(nil, v)); err == nil {
				return d.String()
			}
		}
	}
	return v
}

// Multiset counts normalised results.
type Multiset map[string]int

// Len is the number of results, repeats counted.
func (m Multiset) Len() int {
	n := 0
	for _, c := range m {
		n += c
	}
	return n
}

// Diff describes how b differs from a: the results only in a and only in
// b (repeats counted), with up to limit examples of each, or "" if they
// are equal.
func Diff(aName string, a Multiset, bName string, b Multiset, limit int) string {
	var onlyA, onlyB []string
	nA, nB := 0, 0
	for _, k := range slices.Sorted(maps.Keys(a)) {
		if d := a[k] - b[k]; d > 0 {
			nA += d
			if len(onlyA) < limit {
				onlyA = append(onlyA, fmt.Sprintf("%s ×%d", k, d))
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(b)) {
		if d := b[k] - a[k]; d > 0 {
			nB += d
			if len(onlyB) < limit {
				onlyB = append(onlyB, fmt.Sprintf("%s ×%d", k, d))
			}
		}
	}
	if nA == 0 && nB == 0 {
		return ""
	}
	var s strings.Builder
	fmt.Fprintf(&s, "%s has %d results, %s %d; %d only in %s, %d only in %s", aName, a.Len(), bName, b.Len(), nA, aName, nB, bName)
	for _, x := range onlyA {
		fmt.Fprintf(&s, "\n  only in %s: %s", aName, x)
	}
	for _, x := range onlyB {
		fmt.Fprintf(&s, "\n  only in %s: %s", bName, x)
	}
	return s.String()
}

// ReadResults reads the committed results of topic whose record timestamp
// is before before (all if before is zero), normalised.
func ReadResults(ctx context.Context, brokers []string, topic string, before time.Time) (Multiset, error) {
	return readResults(ctx, brokers, topic, before, func() {})
}

// readResults is ReadResults, calling read after every record read.
func readResults(ctx context.Context, brokers []string, topic string, before time.Time, read func()) (Multiset, error) {
	m := Multiset{}
	var bad error
	err := verify.ReadCommitted(ctx, []string{topic}, func(r *kgo.Record) {
		read()
		if !before.IsZero() && !r.Timestamp.Before(before) {
			return
		}
		s, err := Normalize(r.Value)
		if err != nil {
			if bad == nil {
				bad = fmt.Errorf("%s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
			}
			return
		}
		m[s]++
	}, kgo.SeedBrokers(brokers...))
	if err == nil {
		err = bad
	}
	return m, err
}
