package push

import "github.com/bucky3/bucky3/engine"

// Queue holds metrics waiting to be pushed, oldest first, never more than
// its limit. It copies the Metric structs it is given but not what they
// point to: batches are immutable, so a queued metric shares its fields and
// tags with the batch it came from.
//
// A Queue is not safe for concurrent use.
type Queue struct {
	limit int
	buf   []engine.Metric // buf[head:] is queued
	head  int
}

// NewQueue returns an empty queue holding at most limit metrics.
func NewQueue(limit int) *Queue { return &Queue{limit: limit} }

// Len returns the number of queued metrics.
func (q *Queue) Len() int { return len(q.buf) - q.head }

// Add appends ms. If the queue would exceed its limit, it keeps only the
// newest limit/2 metrics of the queue and ms together, and returns how many
// it discarded. The discarded ones are never copied in, so memory stays
// bounded whatever the size of ms.
func (q *Queue) Add(ms []engine.Metric) (dropped int) {
	keep := q.Len() + len(ms)
	if keep > q.limit {
		keep = q.limit / 2
	}
	return q.add(ms, keep)
}

// AddTight is Add for when the agent's memory is tight: it keeps only the
// newest half of the queue and ms together (at most limit/2), oldest
// dropped first, so that each batch received while memory stays tight
// shrinks the queue instead of growing it.
func (q *Queue) AddTight(ms []engine.Metric) (dropped int) {
	return q.add(ms, min(q.Len()+len(ms), q.limit)/2)
}

// add appends the newest keep metrics of the queue and ms together.
func (q *Queue) add(ms []engine.Metric, keep int) (dropped int) {
	if total := q.Len() + len(ms); total > keep {
		dropped = total - keep
		fromQueue := min(dropped, q.Len())
		q.Remove(fromQueue)
		ms = ms[dropped-fromQueue:]
	}
	if q.head > 0 && len(q.buf)+len(ms) > cap(q.buf) {
		n := copy(q.buf, q.buf[q.head:])
		clear(q.buf[n:])
		q.buf, q.head = q.buf[:n], 0
	}
	q.buf = append(q.buf, ms...)
	return dropped
}

// Peek returns the oldest min(n, Len()) metrics. The slice aliases the
// queue: it is valid until the next Add or Remove.
func (q *Queue) Peek(n int) []engine.Metric {
	return q.buf[q.head : q.head+min(n, q.Len())]
}

// Remove discards the oldest n metrics (n ≤ Len()).
func (q *Queue) Remove(n int) {
	// Clear so that the queue does not keep the batches of sent metrics alive.
	clear(q.buf[q.head : q.head+n])
	q.head += n
	if q.head == len(q.buf) {
		q.buf, q.head = q.buf[:0], 0
	}
}
