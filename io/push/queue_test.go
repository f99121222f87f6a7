package push

import (
	"strconv"
	"testing"

	"github.com/bucky3/bucky3/engine"
)

// metrics returns n metrics whose buckets number them from first.
func metrics(first, n int) []engine.Metric {
	ms := make([]engine.Metric, n)
	for i := range ms {
		ms[i] = engine.Metric{Bucket: strconv.Itoa(first + i), Fields: []engine.Field{{Name: "value", Value: engine.Number(1)}}}
	}
	return ms
}

// buckets returns the bucket numbers of ms, for compact comparisons.
func buckets(ms []engine.Metric) (first, last int) {
	first, _ = strconv.Atoi(ms[0].Bucket)
	last, _ = strconv.Atoi(ms[len(ms)-1].Bucket)
	return first, last
}

func TestQueue(t *testing.T) {
	q := NewQueue(100)
	// f adds n metrics numbered from first, then checks the drop count and
	// the range of bucket numbers queued.
	f := func(first, n, wantDropped, wantFirst, wantLast int) {
		t.Helper()
		if got := q.Add(metrics(first, n)); got != wantDropped {
			t.Fatalf("Add(%d..): dropped %d, want %d", first, got, wantDropped)
		}
		if q.Len() > 100 {
			t.Fatalf("Len %d above the limit", q.Len())
		}
		gotFirst, gotLast := buckets(q.Peek(q.Len()))
		if gotFirst != wantFirst || gotLast != wantLast || q.Len() != wantLast-wantFirst+1 {
			t.Fatalf("queue holds %d..%d (len %d), want %d..%d", gotFirst, gotLast, q.Len(), wantFirst, wantLast)
		}
	}
	f(0, 60, 0, 0, 59)
	f(60, 40, 0, 0, 99)        // exactly at the limit: nothing dropped
	f(100, 1, 51, 51, 100)     // one over: trimmed to the newest half
	f(101, 10, 0, 51, 110)     // keeps accepting
	f(200, 500, 510, 650, 699) // a batch larger than the limit alone
	q.Remove(20)
	f(700, 5, 0, 670, 704)
	q.Remove(q.Len())
	if q.Len() != 0 || len(q.Peek(10)) != 0 {
		t.Fatalf("queue not empty after removing everything")
	}
	f(1000, 3, 0, 1000, 1002)
}

func TestQueue_RemoveReleasesMetrics(t *testing.T) {
	q := NewQueue(100)
	q.Add(metrics(0, 10))
	q.Remove(4)
	for i, m := range q.buf[:q.head] {
		if m.Bucket != "" || m.Fields != nil {
			t.Fatalf("slot %d still references a sent metric: %+v", i, m)
		}
	}
}

// AddTight keeps the newest half of the queue and the batch together,
// never more than half the limit, so that batches received while memory
// stays tight shrink the queue.
func TestQueue_AddTight(t *testing.T) {
	q := NewQueue(100)
	f := func(first, n, wantDropped, wantFirst, wantLast int) {
		t.Helper()
		if got := q.AddTight(metrics(first, n)); got != wantDropped {
			t.Fatalf("AddTight(%d..): dropped %d, want %d", first, got, wantDropped)
		}
		gotFirst, gotLast := buckets(q.Peek(q.Len()))
		if gotFirst != wantFirst || gotLast != wantLast || q.Len() != wantLast-wantFirst+1 {
			t.Fatalf("queue holds %d..%d (len %d), want %d..%d", gotFirst, gotLast, q.Len(), wantFirst, wantLast)
		}
	}
	q.Add(metrics(0, 60))
	f(60, 20, 40, 40, 79)      // 80 held: the oldest half goes, from the queue
	f(80, 10, 25, 65, 89)      // 50 held: 25 go
	f(100, 300, 275, 350, 399) // more than the limit: half the limit stays, from the batch
	q.Remove(q.Len())
	if q.AddTight(metrics(500, 1)) != 1 || q.Len() != 0 {
		t.Fatalf("a single metric into an empty queue while tight: want it dropped")
	}
}
