package enginetest

import (
	"testing"
	"time"

	"github.com/bucky3/bucky3/engine"
)

// CheckDelivery compares a push destination's counters with want and
// checks its balance: every metric received is sent, dropped or still
// buffered (metrics_received = metrics_sent + metrics_dropped +
// metrics_buffered).
func CheckDelivery(t testing.TB, s *engine.Stats, want map[string]uint64) {
	t.Helper()
	for name, w := range want {
		if got := s.Counter(name).Load(); got != w {
			t.Errorf("%s = %d, want %d", name, got, w)
		}
	}
	recv, sent, dropped := s.Counter("metrics_received").Load(), s.Counter("metrics_sent").Load(), s.Counter("metrics_dropped").Load()
	buffered := s.Gauge("metrics_buffered").Load()
	if recv != sent+dropped+uint64(buffered) {
		t.Errorf("received %d != sent %d + dropped %d + buffered %d", recv, sent, dropped, buffered)
	}
}

// WaitCounter waits up to 20 s until the counter name reaches want.
func WaitCounter(t testing.TB, s *engine.Stats, name string, want uint64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for s.Counter(name).Load() < want {
		if time.Now().After(deadline) {
			t.Fatalf("%s = %d after 20 s, want %d", name, s.Counter(name).Load(), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
