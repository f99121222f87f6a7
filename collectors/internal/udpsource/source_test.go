package udpsource_test

import (
	"bytes"
	"compress/zlib"
	"context"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bucky3/bucky3/collectors/internal/udpsource"
	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/io/tcp"
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

// runSource runs src with l until the test ends, and returns the address
// and a function that stops it and returns Run's error.
func runSource(t *testing.T, src *udpsource.Source, l udpsource.Loop) (net.Conn, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, l) }()
	addrCtx, cancelAddr := context.WithTimeout(ctx, 10*time.Second)
	defer cancelAddr()
	addr, err := src.Addr(addrCtx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	conn, err := net.Dial("udp", addr)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	stopped := false
	stop := func() error {
		stopped = true
		cancel()
		conn.Close()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return after cancel")
			return nil
		}
	}
	t.Cleanup(func() {
		if !stopped {
			_ = stop()
		}
	})
	return conn, stop
}

// A flush that panics once is counted and logged, and the next flushes
// work; so do publishes and handlers (the datagram in flight is lost).
func TestSource_Panics(t *testing.T) {
	o := udp.DefaultServerOptions("127.0.0.1:0", false)
	o.Readers = 1
	var logs syncBuffer
	stats := engine.NewStats()
	src := udpsource.New(engine.Module{Name: "t", Log: slog.New(slog.NewTextHandler(&logs, nil)), Stats: stats}, o)
	var flushes, publishes, handled atomic.Int64
	flushed := make(chan int64, 64)
	conn, stop := runSource(t, src, udpsource.Loop{
		Handler: func(int) func([]byte) {
			return func(packet []byte) {
				if string(packet) == "panic" {
					panic("handler")
				}
				handled.Add(1)
			}
		},
		FirstFlush: time.Millisecond,
		FlushEvery: time.Millisecond,
		Flush: func() {
			n := flushes.Add(1)
			if n == 1 {
				panic("first flush")
			}
			flushed <- n
		},
		Publish: func() {
			if publishes.Add(1) == 1 {
				panic("first publish")
			}
		},
	})
	for _, want := range []int64{2, 3} {
		select {
		case got := <-flushed:
			if got != want {
				t.Fatalf("flush %d completed, want %d", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("flush %d did not come after a panicking flush", want)
		}
	}
	for _, d := range []string{"a", "panic", "b"} {
		if _, err := conn.Write([]byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for handled.Load() < 2 || stats.Counter("packets_dropped_panic").Load() < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("handled %d, packets_dropped_panic %d", handled.Load(), stats.Counter("packets_dropped_panic").Load())
		}
		time.Sleep(time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run = %v after cancel", err)
	}
	for name, want := range map[string]uint64{"panics": 3, "packets_dropped_panic": 1, "packets_dropped": 1} {
		if got := stats.Counter(name).Load(); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
	// The flush and publish panics come within a minute: one log line.
	if n := strings.Count(logs.String(), "panic recovered"); n != 1 || !strings.Contains(logs.String(), "first flush") && !strings.Contains(logs.String(), "first publish") {
		t.Errorf("want one rate-limited log line of the first panic, got %d:\n%s", n, logs.String())
	}
}

// syncBuffer is a log destination the test reads while Run writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testOptions make a minimal UDP source module type for an agent.
type testOptions struct {
	engine.SourceOptions
	udp.ServerOptions
	tcpOptions
}

type tcpOptions = tcp.ServerOptions

func (o *testOptions) Validate() error { return udpsource.ValidateOptions(&o.ServerOptions) }

type testSource struct {
	src   *udpsource.Source
	flush func()
}

func (s *testSource) Run(ctx context.Context, _ engine.Emitter) error {
	return s.src.Run(ctx, udpsource.Loop{
		Handler:    func(int) func([]byte) { return func([]byte) {} },
		TCPHandler: func(int) func([]byte) { return func([]byte) {} },
		FirstFlush: time.Millisecond,
		FlushEvery: time.Millisecond,
		Flush:      s.flush,
	})
}

// startAgent runs an agent of one test_udp source listening on localHost,
// whose flushes call flush.
func startAgent(t *testing.T, localHost string, flush func()) *engine.Agent {
	return startAgentTCP(t, localHost, "", flush)
}

// startAgentTCP is startAgent with a TCP listener on localTCP too.
func startAgentTCP(t *testing.T, localHost, localTCP string, flush func()) *engine.Agent {
	t.Helper()
	types := []engine.Type{engine.SourceType("test_udp",
		func() testOptions {
			return testOptions{SourceOptions: engine.DefaultSourceOptions(), ServerOptions: udp.DefaultServerOptions(localHost, false),
				tcpOptions: tcp.DefaultServerOptions(localTCP)}
		},
		func(m engine.Module, o testOptions) (*testSource, error) {
			return &testSource{src: udpsource.New(m, o.ServerOptions).WithTCP(o.tcpOptions), flush: flush}, nil
		})}
	cfg, err := engine.Parse([]byte("[src]\nmodule_type = \"test_udp\"\nreaders = 1\n"), types, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	a, err := engine.NewAgent(cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = a.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return a
}

// The agent is ready once the sockets are bound, never while they cannot
// be; a flush that does not return is reported stuck.
func TestSource_ReadyAndStuck(t *testing.T) {
	// 192.0.2.1 (TEST-NET-1) is no address of this host: bind fails, of
	// the UDP socket or of the TCP listener after a UDP socket was bound.
	unbound := startAgent(t, "192.0.2.1:0", func() {})
	unboundTCP := startAgentTCP(t, "127.0.0.1:0", "192.0.2.1:0", func() {})
	select {
	case <-unbound.Ready():
		t.Fatal("ready although the socket could not be bound")
	case <-unboundTCP.Ready():
		t.Fatal("ready although the TCP listener could not be bound")
	case <-time.After(300 * time.Millisecond):
	}
	select {
	case <-startAgentTCP(t, "127.0.0.1:0", "127.0.0.1:0", func() {}).Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("not ready after binding UDP and TCP")
	}

	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	var once sync.Once
	a := startAgent(t, "127.0.0.1:0", func() {
		once.Do(func() {
			entered <- struct{}{}
			<-release
		})
	})
	select {
	case <-a.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("not ready after binding")
	}
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no flush")
	}
	a.Stuck() // the period in which the flush began
	if got := a.Stuck(); !slices.Equal(got, []string{"src/flush"}) {
		t.Fatalf("Stuck() = %v with a flush that does not return, want [src/flush]", got)
	}
	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for len(a.Stuck()) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("still stuck after the flush returned")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSource_ReaderGaps: a reader held by its handler while datagrams
// queue shows in reader_gap_seconds, and the queue it found in
// socket_queue_bytes at the next publish; the self report carries both.
func TestSource_ReaderGaps(t *testing.T) {
	const hold = 30 * time.Millisecond
	src, stats := newSource(t, false)
	handled := make(chan struct{}, 16)
	conn, stop := runSource(t, src, udpsource.Loop{
		Handler: func(int) func([]byte) {
			return func(p []byte) {
				if string(p) == "hold" {
					time.Sleep(hold)
				}
				handled <- struct{}{}
			}
		},
		FirstFlush: time.Hour,
		FlushEvery: time.Hour,
		Flush:      func() {},
	})
	if _, err := conn.Write([]byte("hold")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(hold / 3)
	for range 10 {
		if _, err := conn.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	for range 11 {
		<-handled
	}
	gaps := stats.Histogram("reader_gap_seconds", nil)
	if v := gaps.Load(); v.Max < (hold*2/3).Seconds() || v.Count == 0 {
		t.Errorf("reader_gap_seconds: max %v s, count %d; want a gap of at least %v", v.Max, v.Count, hold*2/3)
	}
	// Publishes come every second: the first after the hold sets it.
	queue := stats.Gauge("socket_queue_bytes")
	deadline := time.Now().Add(5 * time.Second)
	for queue.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("socket_queue_bytes stayed 0 after a held reader")
		}
		time.Sleep(time.Millisecond)
	}
	fields := map[string]bool{}
	for _, f := range stats.Snapshot() {
		fields[f.Name] = true
	}
	for _, name := range []string{"reader_gap_seconds_count", "reader_gap_seconds_sum", "reader_gap_seconds_max", "socket_queue_bytes"} {
		if !fields[name] {
			t.Errorf("self report lacks %s", name)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
