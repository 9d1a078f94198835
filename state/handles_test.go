package state

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weirstream/weir/codec"
)

func TestRegistryRefusesNilArguments(t *testing.T) {
	r := NewRegistry("op")
	handles := []any{
		NewValue[string](r, "v", nil),
		NewMap[string, string](r, "m", codec.String(), nil),
		NewList[int](r, "l", nil),
		NewAggregating[int, int, string](r, "a", nil, codec.JSON[int]()),
	}
	for _, h := range handles {
		if h == nil {
			t.Fatal("a refused declaration returned a nil handle")
		}
	}
	err := r.Err()
	if !errors.Is(err, ErrInvalidState) {
		t.Fatalf("Err() = %v; want ErrInvalidState", err)
	}
	for _, want := range []string{`"v": nil codec`, `"m": nil value codec`, `"l": nil codec`, `"a": nil aggregate function`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Err() = %v; want it to mention %s", err, want)
		}
	}
	if r := NewRegistry(""); !errors.Is(r.Err(), ErrInvalidState) {
		t.Errorf("NewRegistry(\"\").Err() = %v; want ErrInvalidState", r.Err())
	}
}

type failingCodec struct{}

func (failingCodec) Encode(string) ([]byte, error) { return nil, errors.New("cannot encode") }
func (failingCodec) Decode([]byte) (string, error) { return "", errors.New("cannot decode") }

// TestHandleErrors: failures come back as *Error naming the operator, the
// state and the operation, wrapping the cause.
func TestHandleErrors(t *testing.T) {
	s := openMem(t)
	sc := &scope{ts: s.Task(TaskID{}), key: []byte("k"), now: scriptEpoch}

	// An encode error writes nothing.
	bad := NewValue(NewRegistry("op"), "v", codec.Codec[string](failingCodec{}))
	err := bad.Set(sc, "x")
	var se *Error
	if !errors.As(err, &se) || se.Operator != "op" || se.State != "v" || se.Op != "set" {
		t.Fatalf("Set with a failing codec: %v; want *Error op/v set", err)
	}
	if sc.ts.DirtyKeys() != 0 {
		t.Fatalf("a failed Set left %d dirty keys", sc.ts.DirtyKeys())
	}

	// The same state read with a codec that cannot decode what is stored.
	if err := NewValue(NewRegistry("op"), "v", codec.String()).Set(sc, "not json"); err != nil {
		t.Fatal(err)
	}
	_, ok, err := NewValue(NewRegistry("op"), "v", codec.JSON[int]()).Get(sc)
	if !errors.As(err, &se) || se.Op != "get" || ok {
		t.Fatalf("Get with the wrong codec: ok=%t, %v; want *Error get", ok, err)
	}

	// Bytes that are not an envelope are ErrCorrupt.
	v := NewValue(NewRegistry("op"), "raw", codec.String())
	sc.ts.Set(v.d.stateKey(sc.ts, sc), []byte{0x07, 'x'})
	if _, _, err := v.Get(sc); !errors.Is(err, ErrCorrupt) || !errors.As(err, &se) {
		t.Fatalf("Get of a bad envelope: %v; want *Error wrapping ErrCorrupt", err)
	}

	// A map entry that does not decode stops Range with the error.
	m := NewMap(NewRegistry("op"), "m", codec.String(), codec.JSON[int]())
	if err := m.Put(sc, "a", 1); err != nil {
		t.Fatal(err)
	}
	if err := NewMap(NewRegistry("op"), "m", codec.String(), codec.String()).Put(sc, "b", "two"); err != nil {
		t.Fatal(err)
	}
	var seen []string
	err = m.Range(sc, func(k string, v int) bool { seen = append(seen, k); return true })
	if !errors.As(err, &se) || se.Op != "range" || len(seen) != 1 {
		t.Fatalf("Range over an undecodable entry: saw %q, %v; want [a] and *Error range", seen, err)
	}

	// A List.Update whose codec fails leaves the list as it was.
	l := NewList(NewRegistry("op"), "l", codec.Codec[string](failingCodec{}))
	good := NewList(NewRegistry("op"), "l", codec.String())
	if err := good.Add(sc, "kept"); err != nil {
		t.Fatal(err)
	}
	if err := l.Update(sc, []string{"x"}); !errors.As(err, &se) {
		t.Fatalf("Update with a failing codec: %v; want *Error", err)
	}
	if got, err := good.Get(sc); err != nil || len(got) != 1 || got[0] != "kept" {
		t.Fatalf("list after a failed Update: %q, %v; want [kept]", got, err)
	}
}

type count struct{}

func (count) Zero() int                 { return 0 }
func (count) Add(acc int, _ string) int { return acc + 1 }
func (count) Result(acc int) int        { return acc }
func (count) Merge(a, b int) int        { return a + b }

// TestHandlesSharedAcrossTasks: one registry's handles serve many task
// goroutines at once, each with its own TaskStore and clock, committing
// concurrently into the one Pebble DB. Run with -race.
func TestHandlesSharedAcrossTasks(t *testing.T) {
	s := openMem(t)
	r := NewRegistry("op")
	last := NewValue(r, "last", codec.String(), WithTTL(time.Hour))
	seen := NewMap(r, "seen", codec.String(), codec.JSON[int]())
	log := NewList(r, "log", codec.String())
	n := NewAggregating(r, "n", count{}, codec.JSON[int]())
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}

	const tasks, records, keys = 8, 300, 7
	var wg sync.WaitGroup
	errs := make(chan error, tasks)
	for p := range int32(tasks) {
		wg.Go(func() {
			sc := &scope{ts: s.Task(TaskID{Stage: 1, Partition: p}), now: scriptEpoch}
			for i := range records {
				sc.key = []byte(strconv.Itoa(i % keys))
				sc.now = sc.now.Add(time.Millisecond)
				v := fmt.Sprintf("p%d-%d", p, i)
				err := errors.Join(last.Set(sc, v), seen.Put(sc, v, i), log.Add(sc, v), n.Add(sc, v))
				if i%50 == 49 {
					sc.ts.Flush()
					err = errors.Join(err, sc.ts.CommitPending(int64(i), nil))
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	lastI := 0 // the last record of key 3
	for i := range records {
		if i%keys == 3 {
			lastI = i
		}
	}
	for p := range int32(tasks) {
		sc := &scope{ts: s.Task(TaskID{Stage: 1, Partition: p}), key: []byte("3"), now: scriptEpoch}
		got, ok, err := n.Get(sc)
		wantN := records/keys + 1 // keys 0..records%keys-1 get one more
		if err != nil || !ok || got != wantN {
			t.Fatalf("task %d key 3: count %d, %t, %v; want %d", p, got, ok, err, wantN)
		}
		v, ok, err := last.Get(sc)
		if want := fmt.Sprintf("p%d-%d", p, lastI); err != nil || !ok || v != want {
			t.Fatalf("task %d key 3: last %q, %t, %v; want %q", p, v, ok, err, want)
		}
		entries := 0
		if err := seen.Range(sc, func(k string, _ int) bool {
			if !strings.HasPrefix(k, fmt.Sprintf("p%d-", p)) {
				t.Errorf("task %d sees another task's entry %q", p, k)
			}
			entries++
			return true
		}); err != nil || entries != wantN {
			t.Fatalf("task %d key 3: %d map entries, %v; want %d", p, entries, err, wantN)
		}
		if l, err := log.Get(sc); err != nil || len(l) != wantN {
			t.Fatalf("task %d key 3: list of %d, %v; want %d", p, len(l), err, wantN)
		}
	}
}

// Value.Each visits every live value of its state in the task, committed
// or not, with its key and namespace, and no other state's; expired and
// deleted values are skipped.
func TestValueEach(t *testing.T) {
	s := openMem(t)
	ts := s.Task(TaskID{})
	r := NewRegistry("op")
	v := NewValue(r, "v", codec.String(), WithTTL(time.Minute))
	other := NewValue(r, "w", codec.String())
	sc := &scope{ts: ts, now: scriptEpoch}
	set := func(val *Value[string], key, ns, x string) {
		sc.key, sc.ns = []byte(key), []byte(ns)
		if err := val.Set(sc, x); err != nil {
			t.Fatal(err)
		}
	}
	set(v, "a", "", "a0")
	set(v, "a", "n1", "a1")
	set(v, "b", "n1", "b1")
	set(other, "a", "", "other")
	ts.Flush()
	if err := ts.CommitPending(1, nil); err != nil {
		t.Fatal(err)
	}
	set(v, "c", "n2", "c2") // dirty
	sc.now = scriptEpoch.Add(30 * time.Second)
	set(v, "d", "", "d0") // expires a minute after b's and the rest
	sc.key, sc.ns = []byte("b"), []byte("n1")
	v.Clear(sc)
	sc.now = scriptEpoch.Add(70 * time.Second) // past the first writes' TTL but d's
	var got []string
	err := v.Each(sc, func(key, ns []byte, x string) bool {
		got = append(got, fmt.Sprintf("%s/%s=%s", key, ns, x))
		return true
	})
	if err != nil || fmt.Sprint(got) != "[d/=d0]" {
		t.Fatalf("Each after the TTL: %v, %v; want [d/=d0]", got, err)
	}
	sc.now = scriptEpoch
	got = got[:0]
	if err := v.Each(sc, func(key, ns []byte, x string) bool {
		got = append(got, fmt.Sprintf("%s/%s=%s", key, ns, x))
		return true
	}); err != nil || fmt.Sprint(got) != "[a/=a0 a/n1=a1 c/n2=c2 d/=d0]" {
		t.Fatalf("Each: %v, %v; want [a/=a0 a/n1=a1 c/n2=c2 d/=d0]", got, err)
	}
}

// TestListKnownLength checks the list methods that read nothing: AddAt
// and ClearBelow keep a list as Add and Clear would, given the next
// element number GetNext, Next and Each report.
func TestListKnownLength(t *testing.T) {
	s := openMem(t)
	ts := s.Task(TaskID{})
	r := NewRegistry("op")
	l := NewList(r, "l", codec.String())
	other := NewList(r, "m", codec.String())
	sc := &scope{ts: ts, now: scriptEpoch}
	at := func(key, ns string) *scope { sc.key, sc.ns = []byte(key), []byte(ns); return sc }
	for _, x := range []string{"a0", "a1"} {
		if err := l.Add(at("a", "n"), x); err != nil {
			t.Fatal(err)
		}
	}
	if err := other.Add(at("a", "n"), "other"); err != nil {
		t.Fatal(err)
	}
	vs, next, err := l.GetNext(at("a", "n"))
	if err != nil || fmt.Sprint(vs) != "[a0 a1]" || next != 2 {
		t.Fatalf("GetNext: %v, %d, %v; want [a0 a1], 2", vs, next, err)
	}
	if n, err := l.AddAt(at("a", "n"), next, []string{"a2", "a3"}); err != nil || n == 0 {
		t.Fatalf("AddAt: %d, %v", n, err)
	}
	if _, err := l.AddAt(at("b", ""), 0, []string{"b0"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Add(at("a", "n"), "a4"); err != nil { // Add finds AddAt's length
		t.Fatal(err)
	}
	ts.Flush()
	if err := ts.CommitPending(1, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := l.AddAt(at("c", "n2"), 0, []string{"c0"}); err != nil { // dirty
		t.Fatal(err)
	}
	each := func() string {
		var got []string
		if err := l.Each(sc, func(key, ns []byte, vs []string, next uint64) bool {
			got = append(got, fmt.Sprintf("%s/%s=%v@%d", key, ns, vs, next))
			return true
		}); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(got)
	}
	if got, want := each(), "[a/n=[a0 a1 a2 a3 a4]@5 b/=[b0]@1 c/n2=[c0]@1]"; got != want {
		t.Fatalf("Each: %s, want %s", got, want)
	}
	for _, c := range []struct {
		key, ns string
		want    uint64
	}{{"a", "n", 5}, {"b", "", 1}, {"c", "n2", 1}, {"d", "n", 0}} {
		if next, err := l.Next(at(c.key, c.ns)); err != nil || next != c.want {
			t.Fatalf("Next of %s/%s: %d, %v; want %d", c.key, c.ns, next, err, c.want)
		}
	}
	l.ClearBelow(at("a", "n"), 5)
	if next, err := l.Next(at("a", "n")); err != nil || next != 0 {
		t.Fatalf("Next after ClearBelow: %d, %v; want 0", next, err)
	}
	if got, want := each(), "[b/=[b0]@1 c/n2=[c0]@1]"; got != want {
		t.Fatalf("Each after ClearBelow: %s, want %s", got, want)
	}
	if vs, err := other.Get(at("a", "n")); err != nil || fmt.Sprint(vs) != "[other]" {
		t.Fatalf("the other list: %v, %v", vs, err)
	}
	// Nothing of a's list is left, not even its length record.
	n := 0
	if err := ts.Scan(nil, nil, func(k, _ []byte) bool { n++; return true }); err != nil || n != 6 {
		t.Fatalf("%d keys left, want 6 (b's and c's two each, the other list's two): %v", n, err)
	}
	stops := 0
	if err := l.Each(sc, func([]byte, []byte, []string, uint64) bool { stops++; return false }); err != nil || stops != 1 {
		t.Fatalf("Each went on after false: %d calls, %v", stops, err)
	}
}
