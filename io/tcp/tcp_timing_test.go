package tcp

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkListener measures loopback throughput of lines with a handler
// that only counts them: one or eight connections, each writing lines of
// size bytes in writes of 4 KiB.
func BenchmarkListener(b *testing.B) {
	for _, conns := range []int{1, 8} {
		for _, size := range []int{32, 256} {
			b.Run(fmt.Sprintf("conns=%d/line=%d", conns, size), func(b *testing.B) {
				benchmarkListener(b, conns, size)
			})
		}
	}
}

func benchmarkListener(b *testing.B, conns, size int) {
	var received atomic.Int64
	all := make(chan struct{})
	l, err := Listen(Config{Addr: "127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- l.Run(ctx, func(int) func([]byte) {
			return func(p []byte) {
				if len(p)%size != 0 {
					panic(fmt.Sprintf("batch of %d bytes: not whole lines of %d", len(p), size))
				}
				if received.Add(int64(len(p)/size)) == int64(b.N) {
					close(all)
				}
			}
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()
	line := append(bytes.Repeat([]byte("x"), size-1), '\n')
	chunk := bytes.Repeat(line, max(1, 4096/size))
	clients := make([]net.Conn, conns)
	for i := range clients {
		if clients[i], err = net.Dial("tcp", l.Addr().String()); err != nil {
			b.Fatal(err)
		}
		defer clients[i].Close()
	}

	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	var next atomic.Int64 // lines handed to writers
	errs := make(chan error, conns)
	for _, c := range clients {
		go func() {
			for {
				n := int64(len(chunk) / size)
				end := next.Add(n)
				if end-n >= int64(b.N) {
					errs <- nil
					return
				}
				if over := end - int64(b.N); over > 0 {
					n -= over
				}
				if _, err := c.Write(chunk[:n*int64(size)]); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for range conns {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-all:
	case <-time.After(10 * time.Second):
		b.Fatalf("received %d of %d lines", received.Load(), b.N)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}
