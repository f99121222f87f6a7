// Package enginetest holds helpers for testing modules, in the tradition of
// net/http/httptest: a recording Emitter for sources.
package enginetest

import (
	"sync"
	"testing"
	"time"

	"github.com/bucky3/bucky3/engine"
)

// Recorder is an engine.Emitter that keeps every batch a source emits. The
// zero value is ready to use; it is safe for concurrent use.
type Recorder struct {
	mu      sync.Mutex
	batches []*engine.Batch
	// emitted wakes WaitFor after an Emit; created on first use.
	emitted chan struct{}
}

func (r *Recorder) notify() chan struct{} {
	if r.emitted == nil {
		r.emitted = make(chan struct{}, 1)
	}
	return r.emitted
}

// Emit records b.
func (r *Recorder) Emit(b *engine.Batch) {
	r.mu.Lock()
	r.batches = append(r.batches, b)
	ch := r.notify()
	r.mu.Unlock()
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Batches returns the batches recorded so far.
func (r *Recorder) Batches() []*engine.Batch {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*engine.Batch(nil), r.batches...)
}

// Metrics returns the metrics of every batch recorded so far, in order.
func (r *Recorder) Metrics() []engine.Metric {
	var ms []engine.Metric
	for _, b := range r.Batches() {
		ms = append(ms, b.Metrics...)
	}
	return ms
}

// WaitFor waits until at least n metrics were recorded and returns all of
// them; it fails the test after timeout.
func (r *Recorder) WaitFor(t testing.TB, n int, timeout time.Duration) []engine.Metric {
	t.Helper()
	r.mu.Lock()
	ch := r.notify()
	r.mu.Unlock()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		if ms := r.Metrics(); len(ms) >= n {
			return ms
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("after %v: %d metrics recorded, want at least %d", timeout, len(r.Metrics()), n)
		}
	}
}
