package engine

// This file owns a task's inbox: the bounded queue of fetched batches
// between the poll loop and the task, which pauses partitions when full.

import (
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// batch is one fetch's records of one input partition.
type batch struct {
	topic         string
	records       []*kgo.Record
	highWatermark int64 // -1 when unknown
	// end marks the end of topic's input in a bounded run: no records,
	// after the last one below the stop (see bounded.go).
	end bool
	// bytes is what the batch holds (batchBytes), counted once when an
	// inbox with a byte bound queues it.
	bytes int64
}

// inbox queues fetched batches for a task. The poll loop pushes, the task
// pops; when more than high records wait, the task's partitions are paused
// so the broker, not this process, holds the backlog, and resumed when the
// task has drained to half of it.
type inbox struct {
	high          int
	highBytes     int64 // 0: no bound
	pause, resume func()
	notify        chan struct{}

	mu struct {
		sync.Mutex
		batches []batch
		records int
		bytes   int64
		paused  bool // what the queue wants of its partitions
	}
	// told serializes the calls of pause and resume, outside mu (the task
	// pops under it while a client call runs), and applied is what they
	// last told the client. The poll loop pauses while the task may drain
	// the queue and resume: each applies the state the queue wants when
	// its turn comes, so the last decision is the one the client keeps.
	// (Calling the two outside any lock once left a drained queue's
	// partitions paused for good: resume ran before the pause it undid.)
	told struct {
		sync.Mutex
		applied bool
	}
}

// tell brings the client's pause of the queue's partitions to what the
// queue wants now.
func (q *inbox) tell() {
	q.told.Lock()
	defer q.told.Unlock()
	q.mu.Lock()
	want := q.mu.paused
	q.mu.Unlock()
	if want == q.told.applied {
		return
	}
	q.told.applied = want
	if want {
		q.pause()
	} else {
		q.resume()
	}
}

func newInbox(high int, highBytes int64, pause, resume func()) *inbox {
	return &inbox{high: high, highBytes: highBytes, pause: pause, resume: resume, notify: make(chan struct{}, 1)}
}

// recordOverhead approximates what a fetched record costs beyond its key
// and value: the kgo.Record and its slices' headers.
const recordOverhead = 200

// batchBytes approximates the memory a batch holds.
func batchBytes(b batch) int64 {
	n := int64(len(b.records)) * recordOverhead
	for _, r := range b.records {
		n += int64(len(r.Key) + len(r.Value))
	}
	return n
}

// overLocked reports whether the queue is past its high marks.
func (q *inbox) overLocked() bool {
	return q.mu.records >= q.high || (q.highBytes > 0 && q.mu.bytes >= q.highBytes)
}

// drainedLocked reports whether a paused queue has drained to half.
func (q *inbox) drainedLocked() bool {
	return q.mu.records <= q.high/2 && (q.highBytes == 0 || q.mu.bytes <= q.highBytes/2)
}

func (q *inbox) push(b batch) {
	if q.highBytes > 0 {
		b.bytes = batchBytes(b) // outside the lock the task pops under
	}
	q.mu.Lock()
	q.mu.batches = append(q.mu.batches, b)
	q.mu.records += len(b.records)
	q.mu.bytes += b.bytes
	pause := !q.mu.paused && q.overLocked()
	if pause {
		q.mu.paused = true
	}
	q.mu.Unlock()
	if pause {
		q.tell()
	}
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// release drops what the queue holds and resumes its partitions if it
// paused them: its task stopped, and the next one starts empty.
func (q *inbox) release() {
	q.mu.Lock()
	q.mu.batches, q.mu.records, q.mu.bytes = nil, 0, 0
	resume := q.mu.paused
	q.mu.paused = false
	q.mu.Unlock()
	if resume {
		q.tell()
	}
}

func (q *inbox) pop() (batch, bool) {
	q.mu.Lock()
	if len(q.mu.batches) == 0 {
		q.mu.Unlock()
		return batch{}, false
	}
	b := q.mu.batches[0]
	q.mu.batches[0] = batch{}
	q.mu.batches = q.mu.batches[1:]
	q.mu.records -= len(b.records)
	q.mu.bytes -= b.bytes
	resume := q.mu.paused && q.drainedLocked()
	if resume {
		q.mu.paused = false
	}
	q.mu.Unlock()
	if resume {
		q.tell()
	}
	return b, true
}
