//go:build linux

package udp

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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

// runSized runs a Listener for cfg until stop, calling received for every
// datagram, each of which must be size bytes long. (Not b.Cleanup: the
// benchmark function runs several times per b, each with its Listener.)
func runSized(b *testing.B, cfg Config, size int, received func()) (l *Listener, stop func()) {
	l, err := Listen(cfg)
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
				received()
			}
		})
	}()
	return l, func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}
}

func benchmarkListener(b *testing.B, readers, size int) {
	const window = 256
	var sent, received atomic.Int64
	l, stop := runSized(b, Config{Addr: "127.0.0.1:0", Readers: readers}, size, func() { received.Add(1) })
	defer stop()

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

// BenchmarkListener_Unix is BenchmarkListener for a unix datagram socket:
// one or two readers sharing it, with and without origin detection (a
// cache hit per datagram, from a fixture procfs). Senders wait when the
// socket's queue is full, so the window only keeps them from running far
// ahead of the readers.
func BenchmarkListener_Unix(b *testing.B) {
	for _, readers := range []int{1, 2} {
		for _, origin := range []bool{false, true} {
			for _, size := range []int{64, 1024} {
				b.Run(fmt.Sprintf("readers=%d/origin=%v/size=%d", readers, origin, size), func(b *testing.B) {
					benchmarkUnix(b, readers, origin, size)
				})
			}
		}
	}
}

func benchmarkUnix(b *testing.B, readers int, origin bool, size int) {
	const window = 256
	var sent, received atomic.Int64
	dir := b.TempDir()
	cfg := Config{Socket: filepath.Join(dir, "bench.sock"), SocketReaders: readers, OriginDetection: origin}
	if origin {
		cfg.ProcRoot = dir
		pidDir := filepath.Join(dir, strconv.Itoa(os.Getpid()))
		if err := os.MkdirAll(pidDir, 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(pidDir, "cgroup"), []byte("0::/docker/"+id1+"\n"), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	l, err := Listen(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- l.RunOrigin(ctx, func(int) func([]byte, string) {
			return func(p []byte, id string) {
				if len(p) != size || origin && id != id1 {
					panic(fmt.Sprintf("received %d bytes from %q", len(p), id))
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
	b.RunParallel(func(pb *testing.PB) {
		conn, err := net.Dial("unixgram", cfg.Socket)
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
			b.Fatalf("received %d of %d datagrams", received.Load(), sent.Load())
		}
		runtime.Gosched()
	}
	b.StopTimer()
	if l.Panics() != 0 {
		b.Fatalf("%d datagrams received wrong", l.Panics())
	}
	b.ReportMetric(float64(received.Load())/b.Elapsed().Seconds(), "datagrams/s")
}

// cpuNanos returns the CPU time the process has used. The machine the
// benchmarks run on is shared: under contention wall time measures the
// neighbours, CPU time still measures the reader path.
func cpuNanos(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkListener_Paced measures the CPU the receiving process spends
// per datagram at fixed moderate rates, datagrams evenly spread: without a
// batch wait a reader pays a wakeup, an empty recvmmsg and a park for
// nearly every one; with one, a wakeup per step of a pause (results:
// bench/RESULTS.md, Round 6). One reader, 1000-byte datagrams (a 20-line
// StatsD packet). The sender is a child process (see TestPacedSender), so
// that its CPU is not counted; ns/op is only the pace, plus the last pause.
func BenchmarkListener_Paced(b *testing.B) {
	for _, rate := range []int{1000, 5000, 20000} {
		for _, wait := range []time.Duration{0, 100 * time.Millisecond, 300 * time.Millisecond} {
			b.Run(fmt.Sprintf("rate=%d/wait=%v", rate, wait), func(b *testing.B) {
				benchmarkPaced(b, rate, wait)
			})
		}
	}
}

func benchmarkPaced(b *testing.B, rate int, wait time.Duration) {
	const size = 1000
	var received atomic.Int64
	all := make(chan struct{})
	l, stop := runSized(b, Config{Addr: "127.0.0.1:0", Readers: 1, BatchWait: wait}, size, func() {
		if received.Add(1) == int64(b.N) {
			close(all)
		}
	})
	defer stop()

	cmd := exec.Command(os.Args[0], "-test.run=^TestPacedSender$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d %d %d", pacedSenderEnv, l.Addr(), rate, b.N, size))
	cmd.Stderr = os.Stderr
	start, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := cmd.Wait(); err != nil {
			b.Errorf("sender: %v", err)
		}
	}()
	if line, err := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
		b.Fatalf("sender: %q, %v", line, err)
	}

	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuNanos(b)
	start.Close() // the sender's cue
	select {
	case <-all:
	case <-time.After(time.Duration(b.N)*time.Second/time.Duration(rate) + 10*time.Second):
		b.Fatalf("received %d of %d datagrams (dropped %d)", received.Load(), b.N, l.Dropped())
	}
	cpu = cpuNanos(b) - cpu
	b.StopTimer()
	b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/datagram")
}

const pacedSenderEnv = "BUCKY3_UDP_PACED_SENDER"

// TestPacedSender is BenchmarkListener_Paced's sender when run as its child
// ($BUCKY3_UDP_PACED_SENDER = "addr rate count size"); otherwise it skips.
// It sends each datagram on its own on an absolute schedule, sleeping with
// clock_nanosleep: the Go scheduler would round sub-millisecond sleeps up
// to its poller's millisecond and send bursts instead.
func TestPacedSender(t *testing.T) {
	spec := os.Getenv(pacedSenderEnv)
	if spec == "" {
		t.Skip("run by BenchmarkListener_Paced")
	}
	var addr string
	var rate, count, size int
	if _, err := fmt.Sscan(spec, &addr, &rate, &count, &size); err != nil {
		t.Fatalf("%s=%q: %v", pacedSenderEnv, spec, err)
	}
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msg := []byte(strings.Repeat("x", size))
	runtime.LockOSThread()
	os.Stdout.WriteString("ready\n")
	_, _ = os.Stdin.Read(make([]byte, 1)) // EOF when the benchmark starts the clock
	var begin unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &begin); err != nil {
		t.Fatal(err)
	}
	interval := time.Second.Nanoseconds() / int64(rate)
	for i := range count {
		due := unix.NsecToTimespec(begin.Nano() + int64(i)*interval)
		for unix.ClockNanosleep(unix.CLOCK_MONOTONIC, unix.TIMER_ABSTIME, &due, nil) == unix.EINTR {
		}
		if _, err := conn.Write(msg); err != nil {
			t.Fatal(err)
		}
	}
}
