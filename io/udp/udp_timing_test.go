//go:build linux

package udp

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkListener measures loopback throughput with a handler that only
// counts. Senders keep at most window datagrams in flight, so the receive
// buffer never overflows and every datagram sent is received.
func BenchmarkListener(b *testing.B) {
	for _, readers := range []int{1, 2} {
		for _, size := range []int{64, 1024} {
			b.Run(fmt.Sprintf("readers=%d/size=%d", readers, size), func(b *testing.B) {
				benchmarkListener(b, readers, size)
			})
		}
	}
}

func benchmarkListener(b *testing.B, readers, size int) {
	const window = 256
	var sent, received atomic.Int64
	l, err := Listen(Config{Addr: "127.0.0.1:0", Readers: readers})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- l.Run(ctx, func(int) func([]byte) {
			return func(p []byte) {
				if len(p) != size {
					panic(fmt.Sprintf("received %d bytes, want %d", len(p), size))
				}
				received.Add(1)
			}
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()

	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	// One connection per sender goroutine: SO_REUSEPORT spreads datagrams
	// over the readers by source address.
	b.RunParallel(func(pb *testing.PB) {
		conn, err := net.DialUDP("udp", nil, l.Addr().(*net.UDPAddr))
		if err != nil {
			b.Error(err)
			return
		}
		defer conn.Close()
		msg := make([]byte, size)
		for pb.Next() {
			for sent.Load()-received.Load() >= window {
				runtime.Gosched()
			}
			if _, err := conn.Write(msg); err != nil {
				b.Error(err)
				return
			}
			sent.Add(1)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for received.Load() < sent.Load() {
		if time.Now().After(deadline) {
			b.Fatalf("received %d of %d datagrams (dropped %d)", received.Load(), sent.Load(), l.Dropped())
		}
		runtime.Gosched()
	}
	b.StopTimer()
	b.ReportMetric(float64(received.Load())/b.Elapsed().Seconds(), "datagrams/s")
}
