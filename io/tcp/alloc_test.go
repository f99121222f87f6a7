//go:build !race

package tcp

import (
	"testing"
	"time"
)

// TestListener_ZeroAllocs: a read and its handler call allocate nothing,
// the deadline's refresh included (an idle timeout short enough that the
// run moves it).
func TestListener_ZeroAllocs(t *testing.T) {
	got := make(chan int)
	// The deadline moves every sixteenth of the timeout: every millisecond.
	l := start(t, Config{IdleTimeout: 16 * time.Millisecond}, func(int) func([]byte) {
		return func(p []byte) { got <- len(p) }
	})
	c := dial(t, l)
	msg := []byte("requests:1|c|#path:/\n")
	roundTrip := func() {
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if n := <-got; n != len(msg) {
			t.Fatalf("received %d bytes, want %d", n, len(msg))
		}
	}
	roundTrip()
	// Counts every allocation of the process: sender, poller and reader.
	if allocs := testing.AllocsPerRun(500, roundTrip); allocs != 0 {
		t.Fatalf("%v allocations per read, want 0", allocs)
	}
}
