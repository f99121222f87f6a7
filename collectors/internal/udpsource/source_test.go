package udpsource_test

import (
	"bytes"
	"compress/zlib"
	"context"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bucky3/bucky3/collectors/internal/udpsource"
	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/io/udp"
)

func newSource(t *testing.T, tryDecompress bool) (*udpsource.Source, *engine.Stats) {
	t.Helper()
	o := udp.DefaultServerOptions("127.0.0.1:0", tryDecompress)
	o.Readers = 1
	o.MaxDecompressedBytes = 1024
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	stats := engine.NewStats()
	return udpsource.New(engine.Module{Name: "t", Log: slog.New(slog.DiscardHandler), Stats: stats}, o), stats
}

func zlibOf(t *testing.T, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := zlib.NewWriter(&buf)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDecoder(t *testing.T) {
	f := func(tryDecompress bool, packet []byte, want string, wantOK bool, counts map[string]uint64) {
		t.Helper()
		src, stats := newSource(t, tryDecompress)
		d := src.NewDecoder()
		got, ok := d.Decode(packet)
		if ok != wantOK || string(got) != want {
			t.Fatalf("Decode = %q, %v; want %q, %v", got, ok, want, wantOK)
		}
		for name, n := range map[string]uint64{"packets_received": 1, "packets_dropped": 0, "packets_dropped_too_large": 0, "packets_dropped_corrupt": 0} {
			if c, ok := counts[name]; ok {
				n = c
			}
			if got := stats.Counter(name).Load(); got != n {
				t.Fatalf("%s = %d, want %d", name, got, n)
			}
		}
	}
	zipped := zlibOf(t, []byte("a:1|c"))
	f(false, []byte("a:1|c"), "a:1|c", true, nil)
	f(false, zipped, string(zipped), true, nil)
	f(true, []byte("a:1|c"), "a:1|c", true, nil)
	f(true, zipped, "a:1|c", true, nil)
	f(true, zlibOf(t, make([]byte, 2048)), "", false, map[string]uint64{"packets_dropped": 1, "packets_dropped_too_large": 1})
	f(true, append(zipped[:len(zipped)-1:len(zipped)-1], zipped[len(zipped)-1]^1), "", false, map[string]uint64{"packets_dropped": 1, "packets_dropped_corrupt": 1})
}

// TestSource_Run checks the loop: the handler sees the datagrams, the
// first flush comes after FirstFlush, and a cancel stops the readers
// before one last publish and flush.
func TestSource_Run(t *testing.T) {
	src, stats := newSource(t, false)
	var received, flushes, publishes atomic.Int64
	flushed := make(chan struct{}, 16)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- src.Run(ctx, udpsource.Loop{
			Handler: func(int) func([]byte) {
				d := src.NewDecoder()
				return func(packet []byte) {
					if _, ok := d.Decode(packet); ok {
						received.Add(1)
					}
				}
			},
			FirstFlush: 10 * time.Millisecond,
			FlushEvery: time.Hour,
			Flush: func() {
				flushes.Add(1)
				flushed <- struct{}{}
			},
			Publish: func() { publishes.Add(1) },
		})
	}()
	addrCtx, cancelAddr := context.WithTimeout(ctx, 10*time.Second)
	defer cancelAddr()
	addr, err := src.Addr(addrCtx)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-flushed:
	case <-time.After(10 * time.Second):
		t.Fatal("no flush after FirstFlush")
	}
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for received.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("datagram not handled")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v after cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if flushes.Load() != 2 || publishes.Load() < 2 {
		t.Fatalf("%d flushes, %d publishes; want 2 and at least 2", flushes.Load(), publishes.Load())
	}
	if got := stats.Counter("packets_received").Load(); got != 1 {
		t.Fatalf("packets_received = %d, want 1", got)
	}
}

func TestReaders(t *testing.T) {
	if udpsource.Readers(3) != 3 || udpsource.Readers(0) < 1 {
		t.Fatalf("Readers(3) = %d, Readers(0) = %d", udpsource.Readers(3), udpsource.Readers(0))
	}
}
