package tcp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// failAfter bounds every wait in these tests: it only detects a hang, it
// never decides a result.
const failAfter = 10 * time.Second

// start listens on cfg (127.0.0.1, port 0) and runs the listener with h
// until the test ends.
func start(t *testing.T, cfg Config, h Handler) *Listener {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	l, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx, h) }()
	t.Cleanup(func() {
		cancel()
		waitStopped(t, done)
	})
	return l
}

func waitStopped(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run() = %v, want nil on shutdown", err)
		}
	case <-time.After(failAfter):
		t.Error("Run did not return after cancel")
	}
}

func dial(t *testing.T, l *Listener) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

func write(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := c.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds; it fails the test after failAfter.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(failAfter)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitClosed fails unless the server closes c (the client reads EOF).
func waitClosed(t *testing.T, c net.Conn, why string) {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(failAfter)); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) && !isReset(err) {
		t.Fatalf("%s: read %d bytes, %v; want the connection closed", why, n, err)
	}
}

func isReset(err error) bool { return err != nil && strings.Contains(err.Error(), "reset") }

// lineCollector is a handler that sends each line it gets to a channel,
// and checks that every call holds whole lines.
func lineCollector(t *testing.T, lines chan<- string) Handler {
	return func(int) func([]byte) {
		return func(p []byte) {
			if cap(p) != len(p) {
				t.Errorf("batch of %d bytes has capacity %d", len(p), cap(p))
			}
			for _, line := range strings.SplitAfter(string(p), "\n") {
				if line != "" {
					lines <- line
				}
			}
		}
	}
}

func receive(t *testing.T, lines <-chan string, want ...string) {
	t.Helper()
	for _, w := range want {
		select {
		case got := <-lines:
			if got != w {
				t.Fatalf("received %q, want %q", got, w)
			}
		case <-time.After(failAfter):
			t.Fatalf("%q not received", w)
		}
	}
}

// TestListener_ExactLines: many connections, each writing its lines in
// random pieces that split lines anywhere: every line arrives exactly
// once, whole, in its connection's order, and each handler call holds
// whole lines only.
func TestListener_ExactLines(t *testing.T) {
	const conns, perConn = 20, 500
	var mu sync.Mutex
	got := map[int][]string{} // per client, in order
	var batches atomic.Int64
	var total atomic.Int64
	all := make(chan struct{})
	l := start(t, Config{MaxConnections: conns}, func(int) func([]byte) {
		return func(p []byte) {
			batches.Add(1)
			if p[len(p)-1] != '\n' {
				t.Errorf("batch %q does not end with a newline", p)
			}
			for _, line := range bytes.SplitAfter(p, []byte("\n")) {
				if len(line) == 0 {
					continue
				}
				var c, i int
				if _, err := fmt.Sscanf(string(line), "client %d line %d\n", &c, &i); err != nil {
					t.Errorf("line %q: %v", line, err)
					continue
				}
				mu.Lock()
				got[c] = append(got[c], string(line))
				mu.Unlock()
				if total.Add(1) == conns*perConn {
					close(all)
				}
			}
		}
	})
	var wg sync.WaitGroup
	var size int
	for c := range conns {
		var stream bytes.Buffer
		for i := range perConn {
			fmt.Fprintf(&stream, "client %d line %d\n", c, i)
		}
		size += stream.Len()
		conn := dial(t, l)
		wg.Go(func() {
			p := stream.Bytes()
			for len(p) > 0 {
				n := min(len(p), 1+rand.N(200))
				if _, err := conn.Write(p[:n]); err != nil {
					t.Error(err)
					return
				}
				p = p[n:]
			}
		})
	}
	wg.Wait()
	select {
	case <-all:
	case <-time.After(failAfter):
		t.Fatalf("received %d of %d lines", total.Load(), conns*perConn)
	}
	for c := range conns {
		if len(got[c]) != perConn {
			t.Fatalf("client %d: %d lines, want %d", c, len(got[c]), perConn)
		}
		for i, line := range got[c] {
			if want := fmt.Sprintf("client %d line %d\n", c, i); line != want {
				t.Fatalf("client %d: line %d is %q, want %q", c, i, line, want)
			}
		}
	}
	if l.Bytes() != uint64(size) || l.Batches() != uint64(batches.Load()) || l.Accepted() != conns ||
		l.Refused() != 0 || l.LinesTooLong() != 0 || l.Panics() != 0 {
		t.Fatalf("Bytes %d (want %d), Batches %d (want %d), Accepted %d, Refused %d, LinesTooLong %d, Panics %d",
			l.Bytes(), size, l.Batches(), batches.Load(), l.Accepted(), l.Refused(), l.LinesTooLong(), l.Panics())
	}
}

// TestListener_MaxConnections: past the bound, a connection is closed at
// once and counted; a slot freed by a closed connection serves the next,
// with the function its handler gave the slot the first time.
func TestListener_MaxConnections(t *testing.T) {
	lines := make(chan string, 10)
	var slots atomic.Int64
	collect := lineCollector(t, lines)
	l := start(t, Config{MaxConnections: 2}, func(slot int) func([]byte) {
		if slot < 0 || slot >= 2 {
			t.Errorf("slot %d", slot)
		}
		slots.Add(1)
		return collect(slot)
	})
	c1, c2 := dial(t, l), dial(t, l)
	write(t, c1, "one\n")
	write(t, c2, "two\n")
	// Both are served, in either order: they hold the two slots.
	if a, b := <-lines, <-lines; a+b != "one\ntwo\n" && a+b != "two\none\n" {
		t.Fatalf("received %q and %q", a, b)
	}

	c3 := dial(t, l)
	waitClosed(t, c3, "the third connection")
	if l.Refused() != 1 || l.Accepted() != 2 || l.Active() != 2 {
		t.Fatalf("Refused %d, Accepted %d, Active %d; want 1, 2, 2", l.Refused(), l.Accepted(), l.Active())
	}

	c1.Close()
	waitFor(t, "the slot freed", func() bool { return l.Active() == 1 })
	c4 := dial(t, l)
	write(t, c4, "four\n")
	receive(t, lines, "four\n")
	if l.Accepted() != 3 || slots.Load() != 2 {
		t.Fatalf("Accepted %d, handler called for %d slots; want 3, 2", l.Accepted(), slots.Load())
	}
}

// TestListener_IdleTimeout: a silent connection is closed and counted; one
// that keeps sending is not.
func TestListener_IdleTimeout(t *testing.T) {
	lines := make(chan string, 100)
	l := start(t, Config{IdleTimeout: 100 * time.Millisecond}, lineCollector(t, lines))
	silent, busy := dial(t, l), dial(t, l)
	write(t, silent, "hello\n")
	receive(t, lines, "hello\n")
	closed := make(chan struct{})
	go func() {
		waitClosed(t, silent, "the silent connection")
		close(closed)
	}()
	// The busy one sends every 20 ms until the silent one is closed.
	timeout := time.After(failAfter)
	for i := 0; ; i++ {
		select {
		case <-closed:
			if l.ClosedIdle() != 1 {
				t.Fatalf("ClosedIdle %d, want 1", l.ClosedIdle())
			}
			write(t, busy, "still here\n")
			for len(lines) > 0 {
				<-lines
			}
			receive(t, lines, "still here\n")
			return
		case <-time.After(20 * time.Millisecond):
			write(t, busy, fmt.Sprintf("busy %d\n", i))
		case <-timeout:
			t.Fatal("the silent connection was not closed")
		}
	}
}

// TestListener_LineTooLong: a line past MaxLineSize is dropped, counted,
// and the connection goes on after its newline, however the line is
// split across reads; a line of exactly MaxLineSize bytes is kept.
func TestListener_LineTooLong(t *testing.T) {
	const max = MinLineSize
	lines := make(chan string, 10)
	l := start(t, Config{MaxLineSize: max}, lineCollector(t, lines))
	exact := strings.Repeat("e", max) + "\n"
	stream := "a\n" + strings.Repeat("x", 5*max) + "\nb\n" + exact + strings.Repeat("y", max+1) + "\nc\n" + strings.Repeat("z", max+1) + "\n" + "last"
	for _, piece := range []int{len(stream), 1, 7, max - 1, max, max + 1, 3 * max} {
		c := dial(t, l)
		before := l.LinesTooLong()
		for p := stream; len(p) > 0; {
			n := min(len(p), piece)
			write(t, c, p[:n])
			p = p[n:]
		}
		if err := c.CloseWrite(); err != nil { // half-closed: the server reads to the end, then closes
			t.Fatal(err)
		}
		receive(t, lines, "a\n", "b\n", exact, "c\n", "last")
		waitClosed(t, c, "the half-closed connection")
		if n := l.LinesTooLong() - before; n != 3 {
			t.Fatalf("pieces of %d bytes: LinesTooLong +%d, want +3", piece, n)
		}
	}
}

// TestListener_Garbage: a client sending bytes without newlines costs
// only its connection: another connection's lines go through meanwhile,
// the garbage counts as one line too long, and its connection delivers
// again after a newline.
func TestListener_Garbage(t *testing.T) {
	lines := make(chan string, 10)
	l := start(t, Config{MaxLineSize: 1024, MaxConnections: 2}, lineCollector(t, lines))
	garbage, good := dial(t, l), dial(t, l)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		junk := bytes.Repeat([]byte{0, 0xff, ' ', 'q'}, 4096)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := garbage.Write(junk); err != nil {
				t.Error(err)
				return
			}
		}
	})
	waitFor(t, "the garbage to exceed the line limit", func() bool { return l.LinesTooLong() == 1 })
	for i := range 20 {
		line := fmt.Sprintf("good %d\n", i)
		write(t, good, line)
		receive(t, lines, line)
	}
	close(stop)
	wg.Wait()
	write(t, garbage, "\nafter garbage\n")
	receive(t, lines, "after garbage\n")
	if l.LinesTooLong() != 1 || l.Panics() != 0 || l.Active() != 2 {
		t.Fatalf("LinesTooLong %d, Panics %d, Active %d; want 1, 0, 2", l.LinesTooLong(), l.Panics(), l.Active())
	}
}

// TestListener_HandlerPanics: a handler's panic loses the lines of that
// call only; the connection goes on, and the log has one line.
func TestListener_HandlerPanics(t *testing.T) {
	var logs bytes.Buffer
	var logMu sync.Mutex
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, nil))
	lines := make(chan string, 10)
	collect := lineCollector(t, lines)
	l := start(t, Config{Log: log}, func(slot int) func([]byte) {
		fn := collect(slot)
		return func(p []byte) {
			if bytes.HasPrefix(p, []byte("panic")) {
				panicOn(p)
			}
			fn(p)
		}
	})
	c := dial(t, l)
	for i := range 5 {
		// The panic is seen before the next line is sent: one read each.
		write(t, c, "panic now\n")
		waitFor(t, "the panic", func() bool { return l.Panics() == uint64(i+1) })
		write(t, c, fmt.Sprintf("ok %d\n", i))
		receive(t, lines, fmt.Sprintf("ok %d\n", i))
	}
	if l.Panics() != 5 || l.Active() != 1 {
		t.Fatalf("Panics %d, Active %d; want 5, 1", l.Panics(), l.Active())
	}
	logMu.Lock()
	defer logMu.Unlock()
	if n := strings.Count(logs.String(), "line handler panicked"); n != 1 || !strings.Contains(logs.String(), `lines="\"panic now\\n\""`) {
		t.Fatalf("%d log lines, want 1 quoting the lines:\n%s", n, logs.String())
	}
}

// lockedWriter serialises the writes of a log shared by goroutines.
type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// TestListener_Shutdown: cancelling Run closes the listener and every
// open connection, and Run returns after their goroutines.
func TestListener_Shutdown(t *testing.T) {
	l, err := Listen(Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx, lineCollector(t, lines)) }()
	conns := []net.Conn{dial(t, l), dial(t, l), dial(t, l)}
	for i, c := range conns {
		write(t, c, fmt.Sprintf("open %d\n", i))
	}
	for range conns {
		<-lines
	}
	write(t, conns[0], "a partial line") // dropped: shutdown is no end of stream
	cancel()
	waitStopped(t, done)
	for _, c := range conns {
		waitClosed(t, c, "after shutdown")
	}
	if l.Active() != 0 || len(lines) != 0 {
		t.Fatalf("Active %d, %d lines after shutdown", l.Active(), len(lines))
	}
	if c, err := net.Listen("tcp", l.Addr().String()); err != nil {
		t.Fatalf("port still bound after Run returned: %v", err)
	} else {
		c.Close()
	}
	if err := l.Run(context.Background(), nil); err == nil {
		t.Fatal("second Run succeeded")
	}
}

func TestListen_Failure(t *testing.T) {
	f := func(cfg Config) {
		t.Helper()
		if l, err := Listen(cfg); err == nil {
			l.Close()
			t.Fatalf("Listen(%+v) succeeded", cfg)
		}
	}
	f(Config{Addr: "127.0.0.1"})
	f(Config{Addr: "127.0.0.1:0", MaxConnections: -1})
	f(Config{Addr: "127.0.0.1:0", IdleTimeout: -time.Second})
	f(Config{Addr: "127.0.0.1:0", MaxLineSize: MinLineSize - 1})
	f(Config{Addr: "192.0.2.1:0"}) // not a local address
}

func TestServerOptions_Validate(t *testing.T) {
	o := DefaultServerOptions(":9125")
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	c := o.Config(1000)
	if c.Addr != ":9125" || c.MaxConnections != 256 || c.IdleTimeout != 5*time.Minute || c.MaxLineSize != 1000 {
		t.Fatalf("Config() = %+v", c)
	}
	f := func(option string, change func(o *ServerOptions)) {
		t.Helper()
		o := DefaultServerOptions(":9125")
		change(&o)
		if err := o.Validate(); err == nil || !strings.HasPrefix(err.Error(), option+":") {
			t.Fatalf("Validate() = %v, want an error naming %s", err, option)
		}
	}
	f("max_connections", func(o *ServerOptions) { o.MaxConnections = 0 })
	f("idle_timeout", func(o *ServerOptions) { o.IdleTimeout = 0 })
	f("idle_timeout", func(o *ServerOptions) { o.IdleTimeout = -1 })
}

// panicOn panics the way a buggy handler does: a runtime error, not a
// panic call.
func panicOn(p []byte) {
	var m map[string]int
	m[string(p)]++ //nolint:staticcheck // the nil map write is the point
}
