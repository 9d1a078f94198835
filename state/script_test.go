package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/weirstream/weir/codec"
)

// TestTaskStoreScripts runs the scripts in testdata/state/taskstore: the
// byte-level TaskStore, its cache and the checkpoint protocol.
func TestTaskStoreScripts(t *testing.T) {
	datadriven.Walk(t, "../testdata/state/taskstore", runScript)
}

// TestHandleScripts runs the scripts in testdata/state/handles: the typed
// handles, key layout and TTL.
func TestHandleScripts(t *testing.T) {
	datadriven.Walk(t, "../testdata/state/handles", runScript)
}

// runScript interprets one script. Each script starts with an empty store
// on an in-memory file system and a clock at scriptEpoch. Commands:
//
// Store and TaskStore (task=<stage>/<partition> defaults to 0/0; keys and
// values are written bare, or Go-quoted for other bytes: "a\x00b"):
//
//	set [task=] [key= value=]   Set; or one <key>=<value> per input line
//	delete [task] [key=]        Delete; or one key per input line
//	get [task] [key=]           Get; or one key per input line
//	scan [task] [lower=] [upper=]
//	dirty [task]                DirtyKeys and DirtyBytes
//	flush [task] [decode]       Flush; prints the mutations (decode: keys by
//	                            layout.go, values by ttl.go)
//	commit [task] id= [offsets=(topic:offset,...)]
//	abort [task]                AbortPending
//	checkpoint [task]           Checkpoint
//	drop [task]                 Drop
//	restore [task]              Restore each input line: <key>=<value> or -<key>
//	finish-restore [task] id= [offsets=]
//	reopen [sync-interval=]     close the store and open it again on the same FS
//	                            (with WithLocalSyncInterval; scripts start at 0)
//	crash                       stop without Close (no Sync) and open again
//	close                       close the store
//	pebble [decode]             every key in Pebble, with its task (committed state)
//
// Handles (op=, state=, key= name the operator, state and user key; ns= the
// namespace, default nil; task= as above):
//
//	declare op=                 one declaration per input line:
//	                            value|map|list|agg <name> [ttl=<duration>];
//	                            values, map keys and list elements are
//	                            strings, agg sums integers; prints Names, Err
//	value-set value= | value-get | value-clear
//	map-put (input <k>=<v>) | map-get (input keys) | map-delete (input keys)
//	map-contains (input keys) | map-range [limit=] | map-clear
//	list-add (input lines) | list-get | list-update (input lines) | list-clear
//	agg-add (input integers) | agg-get | agg-clear
//	advance <duration>          move the processing-time clock
//	dump [task]                 the task's view (Scan), keys decoded by layout.go
func runScript(t *testing.T, path string) {
	h := &harness{t: t, fs: NewMemFS(), now: scriptEpoch, handles: map[string]any{}}
	h.open()
	t.Cleanup(func() {
		if h.s != nil {
			_ = h.s.Close()
		}
	})
	datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
		h.t = t
		return h.run(d)
	})
}

var scriptEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

type harness struct {
	t       *testing.T
	fs      *MemFS
	s       *Store
	now     time.Time
	handles map[string]any // "op/state" -> *Value[string], *Map[string, string], ...
	// syncInterval is the store's WithLocalSyncInterval: 0 (Pebble
	// written at each commit) unless a script sets it with reopen.
	syncInterval time.Duration
}

func (h *harness) open() {
	s, err := Open("/store", InMemory(h.fs), WithLocalSyncInterval(h.syncInterval), WithClock(func() time.Time { return h.now }))
	if err != nil {
		h.t.Fatalf("open: %v", err)
	}
	h.s = s
}

func (h *harness) run(d *datadriven.TestData) string {
	var out strings.Builder
	switch d.Cmd {
	case "set":
		ts := h.task(d)
		for k, v := range h.pairs(d) {
			ts.Set(k, v)
		}
	case "delete":
		ts := h.task(d)
		for _, k := range h.keys(d) {
			ts.Delete(k)
		}
	case "get":
		ts := h.task(d)
		for _, k := range h.keys(d) {
			v, ok, err := ts.Get(k)
			switch {
			case err != nil:
				fmt.Fprintf(&out, "%s: error: %v\n", fmtBytes(k), err)
			case !ok:
				fmt.Fprintf(&out, "%s: absent\n", fmtBytes(k))
			default:
				fmt.Fprintf(&out, "%s=%s\n", fmtBytes(k), fmtBytes(v))
			}
		}
	case "scan":
		ts := h.task(d)
		err := ts.Scan(h.bytesArg(d, "lower"), h.bytesArg(d, "upper"), func(k, v []byte) bool {
			fmt.Fprintf(&out, "%s=%s\n", fmtBytes(k), fmtBytes(v))
			return true
		})
		if err != nil {
			fmt.Fprintf(&out, "error: %v\n", err)
		} else if out.Len() == 0 {
			out.WriteString("(empty)\n")
		}
	case "dirty":
		ts := h.task(d)
		fmt.Fprintf(&out, "keys=%d bytes=%d\n", ts.DirtyKeys(), ts.DirtyBytes())
	case "flush":
		muts := h.task(d).Flush()
		// Flush promises no order: print in key order.
		slices.SortFunc(muts, func(a, b Mutation) int { return bytes.Compare(a.Key, b.Key) })
		if len(muts) == 0 {
			out.WriteString("(no mutations)\n")
		}
		decode := d.HasArg("decode")
		for _, m := range muts {
			switch {
			case m.Tombstone && decode:
				fmt.Fprintf(&out, "del %s\n", fmtLogicalKey(m.Key))
			case m.Tombstone:
				fmt.Fprintf(&out, "del %s\n", fmtBytes(m.Key))
			case decode:
				fmt.Fprintf(&out, "set %s -> %s\n", fmtLogicalKey(m.Key), fmtEnvelope(m.Value))
			default:
				fmt.Fprintf(&out, "set %s=%s\n", fmtBytes(m.Key), fmtBytes(m.Value))
			}
		}
	case "commit":
		var id int64
		d.ScanArgs(h.t, "id", &id)
		h.printErr(&out, h.task(d).CommitPending(id, h.offsets(d)))
	case "abort":
		h.task(d).AbortPending()
	case "checkpoint":
		id, offsets, ok, err := h.task(d).Checkpoint()
		switch {
		case err != nil:
			fmt.Fprintf(&out, "error: %v\n", err)
		case !ok:
			out.WriteString("none\n")
		default:
			fmt.Fprintf(&out, "id=%d offsets=%s\n", id, fmtOffsets(offsets))
		}
	case "drop":
		h.printErr(&out, h.task(d).Drop())
	case "restore":
		ts := h.task(d)
		for line := range strings.SplitSeq(strings.TrimSpace(d.Input), "\n") {
			var err error
			if k, ok := strings.CutPrefix(line, "-"); ok {
				err = ts.Restore(h.parseBytes(k), nil, true)
			} else {
				k, v := h.pair(line)
				err = ts.Restore(k, v, false)
			}
			if err != nil {
				fmt.Fprintf(&out, "%s: error: %v\n", line, err)
			}
		}
	case "finish-restore":
		var id int64
		d.ScanArgs(h.t, "id", &id)
		h.printErr(&out, h.task(d).FinishRestore(id, h.offsets(d)))
	case "reopen":
		if err := h.s.Close(); err != nil {
			h.t.Fatalf("close: %v", err)
		}
		if d.HasArg("sync-interval") {
			var v string
			d.ScanArgs(h.t, "sync-interval", &v)
			dur, err := time.ParseDuration(v)
			if err != nil {
				h.t.Fatal(err)
			}
			h.syncInterval = dur
		}
		h.open()
	case "crash":
		// The process dies: Pebble keeps what it was given, nothing else.
		h.s.closed.Store(true)
		if err := h.s.db.Close(); err != nil {
			h.t.Fatalf("close: %v", err)
		}
		h.open()
	case "close":
		h.printErr(&out, h.s.Close())
	case "pebble":
		h.dumpPebble(&out, d.HasArg("decode"))
	case "declare":
		h.declare(&out, d)
	case "advance":
		dur, err := time.ParseDuration(d.CmdArgs[0].Key)
		if err != nil {
			h.t.Fatal(err)
		}
		h.now = h.now.Add(dur)
		fmt.Fprintf(&out, "now=+%v\n", h.now.Sub(scriptEpoch))
	case "dump":
		err := h.task(d).Scan(nil, nil, func(k, v []byte) bool {
			fmt.Fprintf(&out, "%s -> %s\n", fmtLogicalKey(k), fmtEnvelope(v))
			return true
		})
		h.printErr(&out, err)
	default:
		if !h.runHandle(&out, d) {
			d.Fatalf(h.t, "unknown command %q", d.Cmd)
		}
	}
	if out.Len() == 0 {
		return "ok"
	}
	return out.String()
}

func (h *harness) printErr(out *strings.Builder, err error) {
	if err != nil {
		fmt.Fprintf(out, "error: %v\n", err)
	}
}

// task returns the TaskStore named by task=<stage>/<partition>, default 0/0.
func (h *harness) task(d *datadriven.TestData) *TaskStore {
	var id TaskID
	if arg, ok := d.Arg("task"); ok {
		s, p, found := strings.Cut(arg.SingleVal(h.t), "/")
		stage, err1 := strconv.ParseUint(s, 10, 16)
		part, err2 := strconv.ParseInt(p, 10, 32)
		if !found || err1 != nil || err2 != nil {
			d.Fatalf(h.t, "task=%s: want <stage>/<partition>", arg.SingleVal(h.t))
		}
		id = TaskID{Stage: uint16(stage), Partition: int32(part)}
	}
	return h.s.Task(id)
}

// parseBytes reads a key or value: bare, or Go-quoted.
func (h *harness) parseBytes(s string) []byte {
	if strings.HasPrefix(s, `"`) {
		u, err := strconv.Unquote(s)
		if err != nil {
			h.t.Fatalf("%s: %v", s, err)
		}
		return []byte(u)
	}
	return []byte(s)
}

// fmtBytes prints b bare if it is plain text, else Go-quoted.
func fmtBytes(b []byte) string {
	for _, c := range b {
		if c <= ' ' || c > '~' || c == '"' || c == '=' {
			return strconv.Quote(string(b))
		}
	}
	if len(b) == 0 {
		return `""`
	}
	return string(b)
}

func (h *harness) bytesArg(d *datadriven.TestData, name string) []byte {
	if arg, ok := d.Arg(name); ok {
		return h.parseBytes(arg.SingleVal(h.t))
	}
	return nil
}

// pair splits a <key>=<value> line; a quoted key may contain '='.
func (h *harness) pair(line string) ([]byte, []byte) {
	i := strings.Index(line, "=")
	if strings.HasPrefix(line, `"`) {
		end := strings.Index(line[1:], `"=`)
		if end < 0 {
			h.t.Fatalf("%q: want <key>=<value>", line)
		}
		i = end + 2
	}
	if i < 0 {
		h.t.Fatalf("%q: want <key>=<value>", line)
	}
	return h.parseBytes(line[:i]), h.parseBytes(line[i+1:])
}

// pairs yields key=/value= arguments, or one pair per input line, in order.
func (h *harness) pairs(d *datadriven.TestData) func(func([]byte, []byte) bool) {
	return func(yield func([]byte, []byte) bool) {
		if d.HasArg("key") {
			yield(h.bytesArg(d, "key"), h.bytesArg(d, "value"))
			return
		}
		for _, line := range h.lines(d) {
			if !yield(h.pair(line)) {
				return
			}
		}
	}
}

// keys returns the key= argument, or one key per input line.
func (h *harness) keys(d *datadriven.TestData) [][]byte {
	if d.HasArg("key") {
		return [][]byte{h.bytesArg(d, "key")}
	}
	var ks [][]byte
	for _, line := range h.lines(d) {
		ks = append(ks, h.parseBytes(line))
	}
	return ks
}

func (h *harness) lines(d *datadriven.TestData) []string {
	in := strings.TrimSpace(d.Input)
	if in == "" {
		return nil
	}
	return strings.Split(in, "\n")
}

func (h *harness) offsets(d *datadriven.TestData) map[string]int64 {
	offsets := map[string]int64{}
	arg, ok := d.Arg("offsets")
	if !ok {
		return offsets
	}
	for _, v := range arg.Vals {
		topic, off, found := strings.Cut(v, ":")
		n, err := strconv.ParseInt(off, 10, 64)
		if !found || err != nil {
			d.Fatalf(h.t, "offsets: %q: want topic:offset", v)
		}
		offsets[topic] = n
	}
	return offsets
}

func fmtOffsets(offsets map[string]int64) string {
	var parts []string
	for _, topic := range slices.Sorted(maps.Keys(offsets)) {
		parts = append(parts, fmt.Sprintf("%s:%d", topic, offsets[topic]))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// dumpPebble prints every key in the DB, bypassing every cache: what a
// crash right now would leave.
func (h *harness) dumpPebble(out *strings.Builder, decode bool) {
	it, err := h.s.db.NewIter(nil)
	if err != nil {
		h.t.Fatal(err)
	}
	defer it.Close()
	for valid := it.First(); valid; valid = it.Next() {
		k, v := it.Key(), it.Value()
		switch {
		case bytes.Equal(k, formatKey):
			n, _ := binary.Uvarint(v)
			fmt.Fprintf(out, "format %d\n", n)
		case len(k) >= taskPrefixLen+1 && k[0] == keyspaceTask:
			id := TaskID{
				Stage:     binary.BigEndian.Uint16(k[1:3]),
				Partition: int32(binary.BigEndian.Uint32(k[3:7]) ^ (1 << 31)),
			}
			switch k[taskPrefixLen] {
			case taskMeta:
				cp, offsets, _, err := decodeMeta(v)
				if err != nil {
					fmt.Fprintf(out, "task %v meta: error: %v\n", id, err)
					continue
				}
				fmt.Fprintf(out, "task %v meta: id=%d offsets=%s\n", id, cp, fmtOffsets(offsets))
			case taskData:
				lk := k[dataPrefixLen:]
				if decode {
					fmt.Fprintf(out, "task %v %s -> %s\n", id, fmtLogicalKey(lk), fmtEnvelope(v))
				} else {
					fmt.Fprintf(out, "task %v %s=%s\n", id, fmtBytes(lk), fmtBytes(v))
				}
			default:
				fmt.Fprintf(out, "task %v unknown %q\n", id, k)
			}
		default:
			fmt.Fprintf(out, "unknown %q\n", k)
		}
	}
	if err := it.Error(); err != nil {
		h.t.Fatal(err)
	}
}

// fmtLogicalKey prints a handle's key as op/state[key][namespace]suffix,
// or the raw key if it is not in that layout.
func fmtLogicalKey(k []byte) string {
	var parts [4][]byte
	rest := k
	for i := range parts {
		var ok bool
		if parts[i], rest, ok = readPart(rest); !ok {
			return fmtBytes(k)
		}
	}
	s := fmt.Sprintf("%s/%s[%s][%s]", fmtBytes(parts[0]), fmtBytes(parts[1]), fmtBytes(parts[2]), fmtBytes(parts[3]))
	if len(rest) == seqLen && bytes.IndexFunc(rest, func(r rune) bool { return r > '~' || r < ' ' }) >= 0 {
		return s + fmt.Sprintf("#%d", binary.BigEndian.Uint64(rest))
	}
	if len(rest) > 0 {
		s += "." + fmtBytes(rest)
	}
	return s
}

// fmtEnvelope prints a handle's value with its expiry relative to
// scriptEpoch; a list length record prints as its number.
func fmtEnvelope(v []byte) string {
	switch {
	case len(v) == seqLen && v[0] == 0 && v[1] == 0:
		return fmt.Sprintf("len=%d", binary.BigEndian.Uint64(v))
	case len(v) > 0 && v[0] == envPlain:
		return fmtBytes(v[1:])
	case len(v) >= envExpiryLen && v[0] == envExpiry:
		exp := time.Unix(0, int64(binary.BigEndian.Uint64(v[1:envExpiryLen])))
		return fmt.Sprintf("%s (expires +%v)", fmtBytes(v[envExpiryLen:]), exp.Sub(scriptEpoch))
	}
	return fmtBytes(v)
}

// scope is the Scope a script's handle command runs in.
type scope struct {
	ts      *TaskStore
	key, ns []byte
	now     time.Time
}

func (s *scope) TaskStore() *TaskStore     { return s.ts }
func (s *scope) CurrentKey() []byte        { return s.key }
func (s *scope) Namespace() []byte         { return s.ns }
func (s *scope) ProcessingTime() time.Time { return s.now }

// sum is the scripts' aggregate function: it sums integers.
type sum struct{}

func (sum) Zero() int             { return 0 }
func (sum) Add(acc, in int) int   { return acc + in }
func (sum) Result(acc int) string { return "sum=" + strconv.Itoa(acc) }
func (sum) Merge(a, b int) int    { return a + b }

func (h *harness) declare(out *strings.Builder, d *datadriven.TestData) {
	var op string
	d.ScanArgs(h.t, "op", &op)
	r := NewRegistry(op)
	for _, line := range h.lines(d) {
		f := strings.Fields(line)
		if len(f) < 2 {
			f = append(f, "")
		}
		var opts []HandleOpt
		for _, o := range f[2:] {
			v, ok := strings.CutPrefix(o, "ttl=")
			dur, err := time.ParseDuration(v)
			if !ok || err != nil {
				d.Fatalf(h.t, "%q: want ttl=<duration>", o)
			}
			opts = append(opts, WithTTL(dur))
		}
		var hd any
		switch f[0] {
		case "value":
			hd = NewValue(r, f[1], codec.String(), opts...)
		case "map":
			hd = NewMap(r, f[1], codec.String(), codec.String(), opts...)
		case "list":
			hd = NewList(r, f[1], codec.String(), opts...)
		case "agg":
			hd = NewAggregating(r, f[1], sum{}, codec.JSON[int](), opts...)
		default:
			d.Fatalf(h.t, "%q: unknown state kind", f[0])
		}
		if _, dup := h.handles[op+"/"+f[1]]; !dup {
			h.handles[op+"/"+f[1]] = hd
		}
	}
	fmt.Fprintf(out, "names: %s\n", strings.Join(r.Names(), " "))
	if err := r.Err(); err != nil {
		fmt.Fprintf(out, "error: %v\n", err)
		if errors.Is(err, ErrDuplicateState) {
			out.WriteString("is ErrDuplicateState\n")
		}
		if errors.Is(err, ErrInvalidState) {
			out.WriteString("is ErrInvalidState\n")
		}
	}
}

// runHandle runs a handle command; false if d.Cmd is not one.
func (h *harness) runHandle(out *strings.Builder, d *datadriven.TestData) bool {
	kind, method, ok := strings.Cut(d.Cmd, "-")
	if !ok || !slices.Contains([]string{"value", "map", "list", "agg"}, kind) {
		return false
	}
	var op, name, key string
	d.ScanArgs(h.t, "op", &op)
	d.ScanArgs(h.t, "state", &name)
	d.ScanArgs(h.t, "key", &key)
	s := &scope{ts: h.task(d), key: h.parseBytes(key), now: h.now}
	if d.HasArg("ns") {
		s.ns = h.bytesArg(d, "ns")
	}
	hd, ok := h.handles[op+"/"+name]
	if !ok {
		d.Fatalf(h.t, "state %s/%s not declared", op, name)
	}
	report := func(err error) {
		if err != nil {
			fmt.Fprintf(out, "error: %v\n", err)
		}
	}
	switch hd := hd.(type) {
	case *Value[string]:
		switch method {
		case "set":
			var v string
			d.ScanArgs(h.t, "value", &v)
			report(hd.Set(s, v))
		case "get":
			v, ok, err := hd.Get(s)
			report(err)
			if err == nil {
				fmtGot(out, v, ok)
			}
		case "clear":
			hd.Clear(s)
		default:
			return false
		}
	case *Map[string, string]:
		switch method {
		case "put":
			for _, line := range h.lines(d) {
				k, v, _ := strings.Cut(line, "=")
				report(hd.Put(s, k, v))
			}
		case "get":
			for _, k := range h.lines(d) {
				v, ok, err := hd.Get(s, k)
				report(err)
				if err == nil {
					out.WriteString(k + ": ")
					fmtGot(out, v, ok)
				}
			}
		case "contains":
			for _, k := range h.lines(d) {
				ok, err := hd.Contains(s, k)
				report(err)
				fmt.Fprintf(out, "%s: %t\n", k, ok)
			}
		case "delete":
			for _, k := range h.lines(d) {
				report(hd.Delete(s, k))
			}
		case "range":
			limit := -1
			d.MaybeScanArgs(h.t, "limit", &limit)
			n := 0
			report(hd.Range(s, func(k, v string) bool {
				fmt.Fprintf(out, "%s=%s\n", k, v)
				n++
				return n != limit
			}))
			if n == 0 {
				out.WriteString("(empty)\n")
			}
		case "clear":
			report(hd.Clear(s))
		default:
			return false
		}
	case *List[string]:
		switch method {
		case "add":
			for _, v := range h.lines(d) {
				report(hd.Add(s, v))
			}
		case "get":
			vs, err := hd.Get(s)
			report(err)
			if err == nil {
				fmt.Fprintf(out, "%q\n", vs)
			}
		case "update":
			report(hd.Update(s, h.lines(d)))
		case "clear":
			report(hd.Clear(s))
		default:
			return false
		}
	case *Aggregating[int, int, string]:
		switch method {
		case "add":
			for _, line := range h.lines(d) {
				n, err := strconv.Atoi(line)
				if err != nil {
					d.Fatalf(h.t, "%q: not an integer", line)
				}
				report(hd.Add(s, n))
			}
		case "get":
			v, ok, err := hd.Get(s)
			report(err)
			if err == nil {
				fmtGot(out, v, ok)
			}
		case "clear":
			hd.Clear(s)
		default:
			return false
		}
	default:
		d.Fatalf(h.t, "%s/%s is a %T, not a %s", op, name, hd, kind)
	}
	return true
}

func fmtGot(out *strings.Builder, v string, ok bool) {
	if !ok {
		out.WriteString("absent\n")
		return
	}
	fmt.Fprintf(out, "%s\n", v)
}
