//go:build linux && !race

package udp

import (
	"compress/zlib"
	"os"
	"testing"
	"time"

	"github.com/bucky3/bucky3/engine"
)

func TestListener_ZeroAllocs(t *testing.T) {
	// With a batch wait, every datagram is a short read followed by a
	// wait. Gaps are measured, as the statsd and jsond servers do.
	for _, wait := range []time.Duration{0, time.Millisecond} {
		got := make(chan int)
		cfg := Config{Addr: "127.0.0.1:0", Readers: 1, BatchWait: wait, Gaps: engine.NewHistogram(GapBounds())}
		l := start(t, cfg, func(int) func([]byte) {
			return func(p []byte) { got <- len(p) }
		})
		conn := dial(t, l.Addr())
		msg := []byte("requests:1|c|#path:/")
		roundTrip := func() {
			if _, err := conn.Write(msg); err != nil {
				t.Fatal(err)
			}
			if n := <-got; n != len(msg) {
				t.Fatalf("received %d bytes, want %d", n, len(msg))
			}
		}
		roundTrip()
		// Counts every allocation of the process: sender, poller and reader.
		if allocs := testing.AllocsPerRun(200, roundTrip); allocs != 0 {
			t.Fatalf("batch wait %v: %v allocations per datagram, want 0", wait, allocs)
		}
	}
}

// TestListener_UnixZeroAllocs: the unix socket's path, with and without
// origin detection (whose cache answers after the first datagram).
func TestListener_UnixZeroAllocs(t *testing.T) {
	for _, origin := range []bool{false, true} {
		path := socketPath(t)
		got := make(chan int)
		cfg := Config{Socket: path, OriginDetection: origin, Gaps: engine.NewHistogram(GapBounds())}
		if origin {
			cfg.ProcRoot = t.TempDir()
			writeCgroup(t, cfg.ProcRoot, os.Getpid(), "0::/docker/"+id1+"\n")
			startOrigin(t, cfg, func(int) func([]byte, string) {
				return func(p []byte, id string) {
					if id != id1 {
						panic("container id " + id)
					}
					got <- len(p)
				}
			})
		} else {
			start(t, cfg, func(int) func([]byte) { return func(p []byte) { got <- len(p) } })
		}
		conn := dialUnix(t, path)
		msg := []byte("requests:1|c|#path:/")
		roundTrip := func() {
			if _, err := conn.Write(msg); err != nil {
				t.Fatal(err)
			}
			if n := <-got; n != len(msg) {
				t.Fatalf("received %d bytes, want %d", n, len(msg))
			}
		}
		roundTrip()
		if allocs := testing.AllocsPerRun(200, roundTrip); allocs != 0 {
			t.Fatalf("origin detection %v: %v allocations per datagram, want 0", origin, allocs)
		}
	}
}

func TestInflate_ZeroAllocs(t *testing.T) {
	var inf Inflater
	for _, p := range [][]byte{
		zlibBytes(t, zlib.DefaultCompression, []byte("a:1|c\nb:2|g\n")),
		gzipBytes(t, []byte("a:1|c\nb:2|g\n")),
		[]byte("a:1|c"),
	} {
		if _, _, err := inf.Inflate(p); err != nil { // the first call of each format creates its reader
			t.Fatal(err)
		}
		if allocs := testing.AllocsPerRun(100, func() {
			if _, _, err := inf.Inflate(p); err != nil {
				t.Fatal(err)
			}
		}); allocs != 0 {
			t.Fatalf("Inflate(%x): %v allocations, want 0", p[:2], allocs)
		}
	}
}
