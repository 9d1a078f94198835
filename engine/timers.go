package engine

import (
	"bytes"
	"encoding/binary"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/weirstream/weir/windowing"
)

// clock is the processing-time clock of a job's tasks. Tests and harnesses
// inject their own; a running job uses the system clock.
type clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// TimeDomain says which clock a timer follows.
type TimeDomain uint8

const (
	// EventTime timers fire when the task's watermark passes them.
	EventTime TimeDomain = iota
	// ProcessingTime timers fire when the task's clock passes them.
	ProcessingTime
)

func (d TimeDomain) String() string {
	if d == EventTime {
		return "event-time"
	}
	return "processing-time"
}

// minWatermark is the watermark before any event time is known: the
// windowing package's, as a task keeps it (int64 Unix ms).
const minWatermark = int64(windowing.MinWatermark)

func watermarkTime(ms int64) time.Time {
	if ms == minWatermark {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// timerState is the state name timers live under, in their operator's
// part of the store (see the layout in package state): user state names
// cannot start with a NUL, so the two never meet, and a timer belongs to
// its operator's changelog like the rest of the operator's state.
const timerState = "\x00timers"

// Timers are one keyed operator's timers in one task (Flink's
// InternalTimerService): what an operator registers to be called back at
// an event time (when the task's watermark passes it) or a processing
// time (when the task's clock does). A timer is (domain, time, subject):
// the subject is the operator's own bytes, usually the record key it is
// for plus what the operator needs to act (a window, a join side);
// registering the same timer twice keeps one.
//
// The task's state store holds timers durably, in the operator's part of
// the store (so they are checkpointed and restored with its state), keyed
// so that a scan yields them in (time, subject) order: len(op) op |
// len(timerState) timerState | domain | time (sign-flipped big-endian) |
// subject. Firing works from an in-memory queue per domain of the
// earliest timers (all of them while they fit the replica's memory for
// timers; see timerQueue), loaded from the store when the task starts and
// read from it again as the queue runs out: a scan of the store per
// watermark move would cost a merge iterator per record. The task owns
// them; nothing here takes a lock.
type Timers struct {
	task   *Task
	prefix []byte // len(op) op | len(timerState) timerState
	fire   func(subject []byte, at windowing.Millis, domain TimeDomain) error
	queues [2]timerQueue
	loaded bool
	keyBuf []byte // storeKey's
}

// Timers registers the named operator's timers in the task; the operator
// sets OnFire before its first record. An operator registers before it
// builds the operators downstream of it, so the task's timers are in
// topology order, which is the order a watermark fires them in: a timer
// that a downstream operator sets for a time the watermark passed, while
// an upstream window fires at that watermark, fires at the same watermark,
// as Flink's forwarding of the watermark operator by operator does.
func (t *Task) Timers(op string) *Timers {
	p := binary.AppendUvarint(nil, uint64(len(op)))
	p = append(p, op...)
	p = binary.AppendUvarint(p, uint64(len(timerState)))
	p = append(p, timerState...)
	o := &Timers{task: t, prefix: p}
	if t.store != nil {
		t.store.Uncached(p) // the queues are the timers' memory
	}
	o.queues[EventTime].init(t.timerMem)
	o.queues[ProcessingTime].init(t.timerMem)
	t.timers = append(t.timers, o)
	return o
}

// OnFire sets what a due timer calls, in the task's goroutine, with the
// timer's subject, time and domain. Timers of a task fire in time order,
// then subject order; the timer is gone from the store when fire runs, and
// an error fails the task with a TimerError (or meets the operator's
// error policy, when it comes from user code run through its Guard).
func (o *Timers) OnFire(fire func(subject []byte, at windowing.Millis, domain TimeDomain) error) {
	o.fire = fire
}

func (o *Timers) domainPrefix(d TimeDomain) []byte {
	return append(append([]byte(nil), o.prefix...), byte(d))
}

// appendOrderedMillis appends ms encoded so that byte order is numeric
// order (the sign bit flipped, big-endian); millisAt decodes it.
func appendOrderedMillis(b []byte, ms int64) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(ms)^(1<<63))
}

func millisAt(b []byte) int64 { return int64(binary.BigEndian.Uint64(b[:8]) ^ (1 << 63)) }

// appendKey appends the store key of the timer (d, at, key) to b.
func (o *Timers) appendKey(b []byte, d TimeDomain, at int64, key []byte) []byte {
	b = append(append(b, o.prefix...), byte(d))
	return append(appendOrderedMillis(b, at), key...)
}

func (o *Timers) key(d TimeDomain, at int64, key []byte) []byte { return o.appendKey(nil, d, at, key) }

// storeKey is key in o's scratch buffer, valid until the next call: for
// the store's Set and Delete, which copy it.
func (o *Timers) storeKey(d TimeDomain, at int64, key []byte) []byte {
	o.keyBuf = o.appendKey(o.keyBuf[:0], d, at, key)
	return o.keyBuf
}

// load reads the first timers of each domain from the store, those a
// previous run of the task left: all of them if they fit. It runs once,
// before the first timer is registered or fired.
func (o *Timers) load() error {
	if o.loaded {
		return nil
	}
	o.loaded = true
	for _, d := range []TimeDomain{EventTime, ProcessingTime} {
		q := &o.queues[d]
		q.all, q.ceil = false, timerEntry{at: math.MinInt64}
		if err := o.refill(d); err != nil {
			return err
		}
	}
	return nil
}

// refill reads into the queue of domain d the timers of the store from
// its ceiling on, up to timerRefill of them (fewer when the replica's
// share has less room), and moves the ceiling past them.
func (o *Timers) refill(d TimeDomain) error {
	q := &o.queues[d]
	n := timerRefill
	if q.mem != nil {
		// As many as there is room for, about, and timerKeep at least.
		room := (q.mem.limit - q.mem.used.Load()) / timerCost16
		n = int(min(max(room, int64(q.mem.keep)), timerRefill))
	}
	lower := o.key(d, q.ceil.at, q.ceil.key())
	upper := append(o.domainPrefix(d), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	read := 0
	q.all = true
	err := o.task.store.Scan(lower, upper, func(k, _ []byte) bool {
		rest := k[len(o.prefix)+1:] // time | subject
		at, key := millisAt(rest), rest[8:]
		if read == n {
			q.all, q.ceil = false, timerEntry{at: at, id: timerID(at, key)}
			return false
		}
		read++
		q.push(at, key, false)
		return true
	})
	if q.all {
		q.ceil = timerEntry{}
	}
	return err
}

// Register sets a timer of domain d at time at for subject. Registering
// a timer that is set already does nothing.
func (o *Timers) Register(d TimeDomain, at windowing.Millis, subject []byte) {
	o.register(d, int64(at), subject)
}

// Delete removes a timer; deleting one that is not set does nothing.
func (o *Timers) Delete(d TimeDomain, at windowing.Millis, subject []byte) {
	o.delete(d, int64(at), subject)
}

func (o *Timers) register(d TimeDomain, at int64, key []byte) {
	if err := o.load(); err != nil {
		o.task.timerErr = err
		return
	}
	q := &o.queues[d]
	if !q.inMemory(at, key) {
		o.task.store.Set(o.storeKey(d, at, key), nil) // may be set already
		return
	}
	// New or not, the store hears of it at the next barrier (save), if it
	// has not fired or gone by then.
	if q.push(at, key, true) && q.overLimit() {
		q.shrink(func(e timerEntry) { o.saveTimer(d, e) })
	}
}

// saveTimer writes a timer of the queue that the store does not have yet.
// The queue holds every stored timer before its ceiling, so the store
// has none of this one.
func (o *Timers) saveTimer(d TimeDomain, e timerEntry) {
	o.task.store.SetNew(o.storeKey(d, e.at, e.key()), nil)
}

// save writes to the store the timers registered since the last save
// that are still set: at each barrier, before the task's state is
// flushed. A timer set and fired or deleted between two barriers never
// reaches the store (a session's, replaced as it grows), as timers on
// Flink's heap never leave it between snapshots.
func (o *Timers) save() {
	for d := range o.queues {
		q := &o.queues[d]
		for _, u := range q.unsaved {
			if q.set[u.id] {
				// u.id, not a scratch id: an assignment keeps the key
				// it is given.
				q.set[u.id] = false
				o.saveTimer(TimeDomain(d), u)
			}
		}
		clear(q.unsaved)
		q.unsaved = q.unsaved[:0]
	}
}

func (o *Timers) delete(d TimeDomain, at int64, key []byte) {
	if err := o.load(); err != nil {
		o.task.timerErr = err
		return
	}
	q := &o.queues[d]
	if !q.inMemory(at, key) {
		o.task.store.Delete(o.storeKey(d, at, key))
		return
	}
	if was, unsaved := q.remove(at, key); was && !unsaved {
		o.task.store.Delete(o.storeKey(d, at, key))
	}
}

// release gives back the memory the timers count in the replica's share:
// their task is gone.
func (o *Timers) release() {
	for i := range o.queues {
		o.queues[i].release()
	}
}

// fireDue fires, in (time, key) order, every timer of domain d at or before
// upTo, including timers registered while firing that are due too.
func (o *Timers) fireDue(d TimeDomain, upTo int64) error {
	if err := o.load(); err != nil {
		return err
	}
	q := &o.queues[d]
	for {
		at, key, unsaved, ok, empty := q.popDue(upTo)
		if !ok {
			if !empty || q.all {
				return nil
			}
			// What is in memory is done: the next timers are in the store.
			if err := o.refill(d); err != nil {
				return err
			}
			continue
		}
		if !unsaved {
			o.task.store.Delete(o.storeKey(d, at, key))
		}
		// A timer due after a record's watermark fires while the record
		// is in hand; a dead letter of the timer must not name the record.
		cur := o.task.cur
		o.task.cur, o.task.curTimer = nil, timerInHand{set: true, at: at, domain: d, key: key}
		err := o.fire(key, windowing.Millis(at), d)
		o.task.cur, o.task.curTimer = cur, timerInHand{}
		if err != nil {
			return &TimerError{Timer: at, Domain: d, Key: key, Err: err}
		}
	}
}

// timerQueue orders one domain's timers by (time, subject), with each at
// most once, as Flink deduplicates timers. It holds in memory the
// earliest of the domain's timers, all of them while they fit the
// replica's share of memory for timers: past it the later ones are only
// in the store, as Flink's RocksDB timer service keeps a small cache of
// the earliest timers in memory and the rest in RocksDB. Every timer is
// in the store either way; the queue is what is due next.
//
// The invariant: h holds (live) every stored timer before ceil, and the
// timers registered before ceil since the last barrier, which the store
// does not have yet (see Timers.save), and only those; with all set,
// every timer. A timer at or after ceil is
// registered and deleted in the store alone (a write that may repeat an
// existing one), and the queue reads the next of them from the store when
// it runs out (refill).
type timerQueue struct {
	h timerHeap
	// set holds time|subject of the live timers in h: true for one the
	// store does not have yet.
	set map[string]bool
	// unsaved lists the timers registered since the last save (some
	// fired, deleted or saved since), sharing h's keys and set's ids.
	unsaved []timerEntry
	// idBuf is id's scratch buffer.
	idBuf []byte
	all   bool
	ceil  timerEntry
	// bytes is what the live timers in h cost, counted in mem too.
	bytes int64
	mem   *timerMemory // nil: no bound
}

func (q *timerQueue) init(mem *timerMemory) { q.set, q.mem = map[string]bool{}, mem }

// timerMemory is the memory the timers a replica's tasks keep in memory
// may use (memoryBudget.timers). The queues of every task count what they
// hold in used; a queue that adds a timer while the sum is past limit
// lets go of the later half of its timers (shrink).
type timerMemory struct {
	limit int64
	used  atomic.Int64
	// keep is how many timers a queue keeps in memory however tight the
	// share is: timerKeep, or fewer if the share itself is smaller than a
	// few times that many (a test's, to read every timer back from the
	// store).
	keep int
}

func newTimerMemory(limit int64) *timerMemory {
	return &timerMemory{limit: limit, keep: int(min(timerKeep, max(1, limit/(4*timerCost16))))}
}

// timerCost is about what a timer in memory costs: its subject in the
// set's id (which the heap's entry shares), the entries around it, and
// room for a deleted timer's entry left in the heap.
func timerCost(key []byte) int64 { return int64(2*len(key)) + 96 }

const (
	// timerKeep is how many timers a queue keeps in memory however
	// tight memory is, and twice it how many it must hold before it
	// shrinks: a shrink sorts what the queue holds, and at least
	// timerKeep new timers pay for each.
	timerKeep = 128
	// timerRefill is how many timers a refill reads from the store at
	// most: one scan per this many timers fired.
	timerRefill = 4096
	// timerCost16 is the cost of a timer with a 16-byte subject: what a
	// refill takes a timer to cost when it sizes itself to the room left.
	timerCost16 = 2*16 + 96
)

func timerID(at int64, key []byte) string {
	return string(appendTimerID(make([]byte, 0, 8+len(key)), at, key))
}

func appendTimerID(b []byte, at int64, key []byte) []byte {
	return append(appendOrderedMillis(b, at), key...)
}

// id returns the set's key of a timer in q's scratch buffer, valid until
// the next call: for lookups and deletes, which do not keep it.
func (q *timerQueue) id(at int64, key []byte) string {
	q.idBuf = appendTimerID(q.idBuf[:0], at, key)
	return unsafe.String(unsafe.SliceData(q.idBuf), len(q.idBuf))
}

func compareTimers(at int64, key []byte, e timerEntry) int {
	if at != e.at {
		if at < e.at {
			return -1
		}
		return 1
	}
	return bytes.Compare(key, e.key())
}

// inMemory reports whether the timer (at, key) belongs in h: before ceil.
func (q *timerQueue) inMemory(at int64, key []byte) bool {
	return q.all || compareTimers(at, key, q.ceil) < 0
}

func (q *timerQueue) account(n int64) {
	q.bytes += n
	if q.mem != nil {
		q.mem.used.Add(n)
	}
}

// push adds a timer that belongs in h and reports whether it was new;
// unsaved: the store does not have it.
func (q *timerQueue) push(at int64, key []byte, unsaved bool) bool {
	id := q.id(at, key)
	if _, ok := q.set[id]; ok {
		return false
	}
	// One allocation: the id built for the lookup, copied once.
	e := timerEntry{at: at, id: strings.Clone(id)}
	q.set[e.id] = unsaved
	q.h.push(e)
	if unsaved {
		q.unsaved = append(q.unsaved, e)
	}
	q.account(timerCost(key))
	return true
}

// overLimit reports whether the queue should shrink: the replica's timers
// are past their share and the queue holds enough to give some back.
func (q *timerQueue) overLimit() bool {
	return q.mem != nil && len(q.set) > 2*q.mem.keep && q.mem.used.Load() > q.mem.limit
}

// shrink keeps the earlier half of the timers in h (at least mem.keep)
// and lets go of the rest, which stay in the store: ceil moves down to the
// first of them. save writes those the store does not have yet.
func (q *timerQueue) shrink(save func(timerEntry)) {
	live := make([]timerEntry, 0, len(q.set))
	for _, e := range q.h {
		if _, ok := q.set[e.id]; ok {
			live = append(live, e)
		}
	}
	slices.SortFunc(live, func(a, b timerEntry) int { return strings.Compare(a.id, b.id) })
	// A timer deleted and set again is in h twice.
	live = slices.CompactFunc(live, func(a, b timerEntry) bool { return a.id == b.id })
	keep := max(q.mem.keep, len(live)/2)
	if keep >= len(live) {
		return
	}
	var freed int64
	for _, e := range live[keep:] {
		if q.set[e.id] {
			save(e)
		}
		delete(q.set, e.id)
		freed += timerCost(e.key())
	}
	q.account(-freed)
	q.ceil, q.all = live[keep], false
	clear(live[keep:])
	q.h = live[:keep] // sorted, so a heap
}

// remove deletes a timer of h and reports whether it was there, and
// whether the store does not have it. The heap entry goes lazily, when it
// reaches the top.
func (q *timerQueue) remove(at int64, key []byte) (was, unsaved bool) {
	id := q.id(at, key)
	unsaved, was = q.set[id]
	if !was {
		return false, false
	}
	delete(q.set, id)
	q.account(-timerCost(key))
	return true, unsaved
}

// popDue removes and returns the earliest live timer of h at or before
// upTo, and whether the store does not have it. empty reports that h ran
// out (so the store may hold the next).
func (q *timerQueue) popDue(upTo int64) (at int64, key []byte, unsaved, ok, empty bool) {
	for len(q.h) > 0 && q.h[0].at <= upTo {
		e := q.h.pop()
		unsaved, live := q.set[e.id]
		if !live {
			continue // deleted
		}
		delete(q.set, e.id)
		key = e.key()
		q.account(-timerCost(key))
		return e.at, key, unsaved, true, false
	}
	return 0, nil, false, false, len(q.h) == 0
}

// release gives back the memory the queue counts: its task is gone.
func (q *timerQueue) release() { q.account(-q.bytes) }

// timerEntry is a timer in the queue: its time, and its id in the set
// (timerID: the time, ordered, then the subject), which orders timers as
// (time, subject) does.
type timerEntry struct {
	at int64
	id string
}

// key returns the timer's subject, sharing the id's bytes: not to be
// written to (its capacity is its length, so an append copies).
func (e timerEntry) key() []byte {
	if len(e.id) < 8 {
		return nil
	}
	k := e.id[8:]
	return unsafe.Slice(unsafe.StringData(k), len(k))
}

// timerHeap is a binary min-heap of timers in (time, subject) order, typed
// rather than through container/heap, whose interface boxes every entry
// pushed and popped: an allocation per timer, twice.
type timerHeap []timerEntry

func (h timerHeap) less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].id < h[j].id
}

func (h *timerHeap) push(e timerEntry) {
	*h = append(*h, e)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if !s.less(i, p) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

// pop removes and returns the earliest timer; h must not be empty.
func (h *timerHeap) pop() timerEntry {
	s := *h
	top := s[0]
	n := len(s) - 1
	s[0] = s[n]
	s[n] = timerEntry{}
	s = s[:n]
	for i := 0; ; {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && s.less(r, l) {
			m = r
		}
		if !s.less(m, i) {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}

// saveTimers writes to the store the timers registered since the last
// barrier that are still set (Timers.save): the barrier's state includes
// them.
func (t *Task) saveTimers() {
	for _, o := range t.timers {
		o.save()
	}
}

// releaseTimers gives back the memory the task's timers count in the
// replica's share: the task is done.
func (t *Task) releaseTimers() {
	for _, o := range t.timers {
		o.release()
	}
}

// advanceWatermark moves the task's event time to wm (never back) and fires
// the event-time timers it passes, operator by operator in topology order.
//
// Records in flight (see InFlight) hold it: it goes no further than just
// below the earliest of them, and the rest of the way once their results
// are out (flushInFlight).
func (t *Task) advanceWatermark(wm int64) error {
	if len(t.inflight) > 0 {
		t.wmTarget = max(t.wmTarget, wm)
		wm = t.watermarkHold(t.wmTarget)
	}
	if wm <= t.watermark {
		return nil
	}
	t.watermark = wm
	for _, o := range t.timers {
		if err := o.fireDue(EventTime, wm); err != nil {
			return err
		}
	}
	if len(t.inflight) > 0 && t.watermarkHold(t.watermark) < t.watermark {
		// Timers sent records in flight that the watermark has passed
		// already: their results must come out before anything else.
		for _, f := range t.inflight {
			if err := f.Flush(true); err != nil {
				return err
			}
		}
	}
	return nil
}

// fireProcessingTimers fires the processing-time timers the clock passed.
func (t *Task) fireProcessingTimers() error {
	if len(t.timers) == 0 {
		return nil
	}
	now := t.clock.Now().UnixMilli()
	for _, o := range t.timers {
		if err := o.fireDue(ProcessingTime, now); err != nil {
			return err
		}
	}
	return nil
}
