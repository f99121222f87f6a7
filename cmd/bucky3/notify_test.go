package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeHealth is an agent whose readiness and stuck loops the test sets.
type fakeHealth struct {
	ready chan struct{}
	mu    sync.Mutex
	stuck []string
	lines uint64
}

func (f *fakeHealth) Ready() <-chan struct{} { return f.ready }

func (f *fakeHealth) Stuck() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stuck
}

func (f *fakeHealth) Totals() (lines, series, dropped uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lines, 7, 3
}

func (f *fakeHealth) set(stuck []string, lines uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stuck, f.lines = stuck, lines
}

// notifySocket listens on a unixgram NOTIFY_SOCKET, as systemd does, and
// returns the messages as they arrive.
func notifySocket(t *testing.T) <-chan string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	msgs := make(chan string, 1000)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	return msgs
}

// next returns the next message that is not a WATCHDOG=1 ping (pings are
// counted into pings) within a generous time.
func next(t *testing.T, msgs <-chan string, pings *int) string {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m := <-msgs:
			if m == "WATCHDOG=1" {
				*pings++
				continue
			}
			return m
		case <-timeout:
			t.Fatal("no message from the notifier")
		}
	}
}

func TestNotifier_Protocol(t *testing.T) {
	msgs := notifySocket(t)
	t.Setenv("WATCHDOG_USEC", "100000") // pings every 50 ms
	t.Setenv("WATCHDOG_PID", "")
	agent := &fakeHealth{ready: make(chan struct{})}
	stderr := &notifyLog{b: &bytes.Buffer{}}
	n := newNotifier(agent, stderr, 100*time.Millisecond, 5*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		n.run(ctx, done)
	}()

	pings := 0
	if m := next(t, msgs, &pings); m != "STATUS=starting" {
		t.Fatalf("first message %q", m)
	}
	// Not ready: pings and nothing else, however long.
	for range 3 {
		select {
		case m := <-msgs:
			if m != "WATCHDOG=1" {
				t.Fatalf("%q before the agent was ready", m)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no watchdog ping before ready")
		}
	}
	close(agent.ready)
	for m := next(t, msgs, &pings); m != "READY=1\nSTATUS=ready"; m = next(t, msgs, &pings) {
		if strings.Contains(m, "READY") {
			t.Fatalf("unexpected %q", m)
		}
	}
	agent.set(nil, 1000)
	if m := next(t, msgs, &pings); !strings.HasPrefix(m, "STATUS=") || !strings.HasSuffix(m, " lines/s, 7 series, 3 dropped since start") {
		t.Fatalf("status %q", m)
	}

	// A wedged reader: no more pings, one log line naming it.
	agent.set([]string{"statsd/reader 0"}, 1000)
	drain := time.After(100 * time.Millisecond) // a ping already on its way
	for draining := true; draining; {
		select {
		case <-msgs:
		case <-drain:
			draining = false
		}
	}
	pings = 0
	quiet := time.After(500 * time.Millisecond) // ten watchdog periods
	for waiting := true; waiting; {
		select {
		case m := <-msgs:
			if m == "WATCHDOG=1" {
				t.Fatal("pinged while a loop was stuck")
			}
		case <-quiet:
			waiting = false
		}
	}
	if got := stderr.String(); strings.Count(got, "stuck: statsd/reader 0") != 1 {
		t.Fatalf("want one log line naming the stuck loop, got %q", got)
	}
	// Unstuck: pings again.
	agent.set(nil, 1000)
	for pings == 0 {
		next := time.After(10 * time.Second)
		select {
		case m := <-msgs:
			if m == "WATCHDOG=1" {
				pings++
			}
		case <-next:
			t.Fatal("no ping after the loop recovered")
		}
	}

	cancel()
	m := next(t, msgs, &pings)
	for strings.HasPrefix(m, "STATUS=") && !strings.Contains(m, "stopping") {
		m = next(t, msgs, &pings)
	}
	// The final flush and push may take shutdown_timeout (5 s): the stop
	// timeout is extended past it.
	if m != "STOPPING=1\nSTATUS=stopping: final flush and push\nEXTEND_TIMEOUT_USEC=10000000" {
		t.Fatalf("at shutdown: %q", m)
	}
	close(done)
	<-finished
}

func TestNotifier_OutsideSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	agent := &fakeHealth{ready: make(chan struct{})}
	n := newNotifier(agent, &bytes.Buffer{}, time.Second, time.Second)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		n.run(context.Background(), make(chan struct{}))
	}()
	select {
	case <-finished:
	case <-time.After(10 * time.Second):
		t.Fatal("the notifier runs without a NOTIFY_SOCKET")
	}
}

type notifyLog struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (s *notifyLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *notifyLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The shipped binary under a NOTIFY_SOCKET: READY=1 comes only once the
// StatsD socket is bound and the scrape endpoint answers, watchdog pings
// follow, and SIGTERM brings STOPPING=1.
func TestNotify_RealBinary(t *testing.T) {
	msgs := notifySocket(t)
	t.Setenv("WATCHDOG_USEC", "200000")
	statsdAddr, promAddr := freeAddr(t), freeAddr(t)
	p := start(t, writeConfig(t, fmt.Sprintf(`
[statsd]
module_type = "statsd_server"
local_host = %q
[prom]
module_type = "prometheus_exporter"
local_host = %q
`, statsdAddr, promAddr)))
	pings := 0
	for m := next(t, msgs, &pings); m != "READY=1\nSTATUS=ready"; m = next(t, msgs, &pings) {
		if strings.Contains(m, "READY") {
			t.Fatalf("unexpected %q", m)
		}
	}
	// At READY the port is taken (bucky3 binds with SO_REUSEPORT; a plain
	// bind fails while it holds the port) and the page is served.
	if c, err := net.ListenPacket("udp", statsdAddr); err == nil {
		c.Close()
		t.Fatal("READY=1 before the StatsD socket was bound")
	}
	if page := scrape("http://" + promAddr + "/metrics"); page == "" {
		t.Fatal("READY=1 before the scrape endpoint answered")
	}
	for deadline := time.After(10 * time.Second); pings < 3; {
		select {
		case m := <-msgs:
			if m == "WATCHDOG=1" {
				pings++
			}
		case <-deadline:
			t.Fatalf("%d watchdog pings in 10 s at WATCHDOG_USEC=200000", pings)
		}
	}
	p.signal(t, syscall.SIGTERM)
	for m := next(t, msgs, &pings); !strings.HasPrefix(m, "STOPPING=1\n"); m = next(t, msgs, &pings) {
	}
	if code := p.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}
