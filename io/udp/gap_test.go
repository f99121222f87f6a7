package udp

import (
	"testing"
	"time"

	"github.com/bucky3/bucky3/engine"
)

// TestListener_Gaps: a handler that holds its reader while datagrams
// queue shows as a gap as long as the hold, and the queue it left is
// sampled; a socket that stays empty between two datagrams is no gap.
func TestListener_Gaps(t *testing.T) {
	const hold = 30 * time.Millisecond
	for _, wait := range []time.Duration{0, 5 * time.Millisecond} {
		gaps := engine.NewHistogram(GapBounds())
		got := make(chan string, 100)
		l := start(t, Config{Addr: "127.0.0.1:0", Readers: 1, BatchWait: wait, Gaps: gaps}, func(int) func([]byte) {
			return func(p []byte) {
				if string(p) == "hold" {
					time.Sleep(hold)
				}
				got <- string(p)
			}
		})
		conn := dial(t, l.Addr())

		// Idle: the second datagram comes long after the first, on an
		// empty socket.
		write(t, conn, "a")
		<-got
		time.Sleep(3 * hold)
		write(t, conn, "b")
		<-got
		if v := gaps.Load(); v.Max >= hold.Seconds() {
			t.Fatalf("batch wait %v: a gap of %v s over an idle socket", wait, v.Max)
		}
		l.QueuePeak()

		// Held: ten datagrams queue while the handler holds the reader.
		write(t, conn, "hold")
		time.Sleep(hold / 3)
		for range 10 {
			write(t, conn, "x")
		}
		for range 11 {
			<-got
		}
		v := gaps.Load()
		if v.Max < hold.Seconds()*2/3 {
			t.Errorf("batch wait %v: longest gap %v s, want at least %v", wait, v.Max, hold*2/3)
		}
		if v.Count == 0 || v.Counts[len(v.Counts)-1] != 0 {
			t.Errorf("batch wait %v: counts %v", wait, v.Counts)
		}
		// Ten datagrams are charged at least their payload each.
		if peak := l.QueuePeak(); peak < 10 {
			t.Errorf("batch wait %v: queue peak %d bytes after a held reader, want the ten datagrams'", wait, peak)
		}
		if peak := l.QueuePeak(); peak != 0 {
			t.Errorf("batch wait %v: queue peak %d right after the previous call, want 0", wait, peak)
		}
	}
}
