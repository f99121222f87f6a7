package carbon

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/engine/enginetest"
	"github.com/bucky3/bucky3/internal/backendtest"
)

// run starts a client for o and returns its inbox, its counters and a
// function that closes the inbox and waits for Run to return.
func run(t *testing.T, o Options) (chan<- *engine.Batch, *engine.Stats, func() error) {
	t.Helper()
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	stats := engine.NewStats()
	c, err := New(engine.Module{Name: "carbon", Stats: stats}, o)
	if err != nil {
		t.Fatal(err)
	}
	in, stop := enginetest.RunDestination(t, c, 10*time.Second)
	return in, stats, stop
}

// lineServer is a carbon stand-in that can be killed and restarted on the
// same port: it records every line it reads.
type lineServer struct {
	mu    sync.Mutex
	lines []string
	ln    net.Listener
	conns []net.Conn
	wg    sync.WaitGroup
}

func (s *lineServer) start(t *testing.T, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s.ln = ln
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, conn)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				sc := bufio.NewScanner(conn)
				for sc.Scan() {
					s.mu.Lock()
					s.lines = append(s.lines, sc.Text())
					s.mu.Unlock()
				}
			}()
		}
	}()
	t.Cleanup(s.kill)
}

// kill closes the listener and every connection, like a crashed server.
func (s *lineServer) kill() {
	s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *lineServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.lines)
}

// waitUntil polls cond; the client works on its own schedule, so tests wait
// for the state they need instead of sleeping a guessed time.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// freeAddr returns a 127.0.0.1 address reserved for the test (see
// backendtest.FreePort), for servers that start late or restart.
func freeAddr(t *testing.T) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(backendtest.FreePort(t)))
}

func batch(first, n int) *engine.Batch {
	b := &engine.Batch{}
	for i := first; i < first+n; i++ {
		b.Metrics = append(b.Metrics, engine.Metric{Bucket: "m", Tags: []engine.Tag{tag("i", fmt.Sprint(i))}, Fields: []engine.Field{num("v", float64(i))}})
	}
	return b
}

func TestClient_ServerKilledAndRestarted(t *testing.T) {
	// The server comes back on the same port: a reserved one, which no
	// other test can take while this one's server is down.
	addr := freeAddr(t)
	var srv lineServer
	srv.start(t, addr)
	o := DefaultOptions()
	o.RemoteHosts = []string{addr}
	o.FlushInterval = 0.02
	o.MaxFlushInterval = 0.1
	o.ChunkSize = 10
	o.BufferLimit = 100
	in, stats, stop := run(t, o)
	sent, dropped, full := stats.Counter("metrics_sent"), stats.Counter("metrics_dropped"), stats.Counter("metrics_dropped_buffer_full")
	buffered, connErrs := stats.Gauge("metrics_buffered"), stats.Counter("connection_errors")
	balanced := func(produced int) {
		t.Helper()
		if s, d, b := sent.Load(), dropped.Load(), buffered.Load(); s+d+uint64(b) != uint64(produced) {
			t.Fatalf("sent %d + dropped %d + buffered %d != produced %d", s, d, b, produced)
		}
	}

	in <- batch(0, 30)
	waitUntil(t, "the first 30 lines", func() bool { return srv.count() == 30 })
	waitUntil(t, "an empty queue", func() bool { return buffered.Load() == 0 })
	balanced(30)

	srv.kill()
	for i := range 16 {
		in <- batch(30+10*i, 10)
	}
	waitUntil(t, "failed pushes", func() bool { return connErrs.Load() >= 3 })
	waitUntil(t, "all batches queued", func() bool { return stats.Counter("metrics_received").Load() == 190 })
	// 160 metrics into a buffer of 100: trimmed once to the newest 50 at
	// 110, then 50 more.
	if got := full.Load(); got != 60 {
		t.Fatalf("metrics_dropped_buffer_full = %d, want 60", got)
	}
	if got := buffered.Load(); got != 100 {
		t.Fatalf("metrics_buffered = %d while the server is down, want 100", got)
	}
	balanced(190)

	srv.start(t, addr)
	waitUntil(t, "the backlog", func() bool { return buffered.Load() == 0 })
	in <- batch(190, 5)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	balanced(195)
	if sent.Load() != 135 || dropped.Load() != 60 {
		t.Fatalf("sent %d dropped %d, want 135 and 60", sent.Load(), dropped.Load())
	}
	waitUntil(t, "the last lines", func() bool { return srv.count() >= int(sent.Load()) })
	srv.kill()
	if got := srv.count(); got != int(sent.Load()) {
		t.Fatalf("server read %d lines, client counted %d sent", got, sent.Load())
	}
	// The newest metrics survived the trim: the last one queued while down.
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if !strings.Contains(strings.Join(srv.lines, "\n"), "m.189.v 189 ") {
		t.Fatal("the newest buffered metric was not delivered after recovery")
	}
}

func TestClient_ServerAbsentAtStart(t *testing.T) {
	addr := freeAddr(t) // nothing listens there yet
	o := DefaultOptions()
	o.RemoteHosts = []string{addr}
	o.FlushInterval = 0.02
	o.MaxFlushInterval = 0.05
	in, stats, stop := run(t, o)
	in <- batch(0, 3)
	waitUntil(t, "failed pushes", func() bool { return stats.Counter("connection_errors").Load() >= 2 })
	var srv lineServer
	srv.start(t, addr)
	waitUntil(t, "delivery", func() bool { return srv.count() == 3 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := stats.FlushErrors.Load(); got < 2 {
		t.Fatalf("flush_errors = %d, want at least 2", got)
	}
}

func testMetrics(now time.Time) []engine.Metric {
	past := now.Add(-30 * time.Second).UnixMilli()
	return []engine.Metric{
		{Bucket: "bucky", Tags: []engine.Tag{tag("host", "web.1"), tag("zone", "eu")}, Fields: []engine.Field{num("load", 1.25)}, Timestamp: past},
		{Bucket: "bucky", Tags: []engine.Tag{tag("host", "no ts")}, Fields: []engine.Field{num("load", 2)}},
		{Bucket: "bucky", Tags: []engine.Tag{tag("host", "future")}, Fields: []engine.Field{num("load", 3)}, Timestamp: now.Add(time.Hour).UnixMilli()},
	}
}

func TestClient_Carbon(t *testing.T) {
	srv := backendtest.StartCarbon(t)
	o := DefaultOptions()
	o.RemoteHosts = []string{srv.Addr}
	o.NameMapping = []string{"bucket", "host"}
	in, _, stop := run(t, o)
	now := time.Now()
	in <- &engine.Batch{Metrics: testMetrics(now)}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	pushed := time.Now()
	// The 1 s archive keeps the second sent, exactly: no slack beyond the send window.
	f := func(path string, value float64, first, last time.Time) {
		t.Helper()
		p := srv.WaitFor(t, path, 15*time.Second)
		from, until := time.Unix(first.Unix(), 0), time.Unix(last.Unix(), 0)
		if len(p) != 1 || p[0].Value != value || p[0].Time.Before(from) || p[0].Time.After(until) {
			t.Fatalf("%s read back as %v, want %v at %v…%v", path, p, value, from, until)
		}
	}
	// Its own timestamp, to the second.
	f("bucky.web_1.load.eu", 1.25, now.Add(-30*time.Second), now.Add(-30*time.Second))
	// Stamped with the push time.
	f("bucky.no_ts.load", 2, now, pushed)
	f("bucky.future.load", 3, now, pushed) // clamped, else carbon drops it
}

func TestClient_VictoriaMetricsGraphite(t *testing.T) {
	vm := backendtest.StartVictoriaMetrics(t)
	o := DefaultOptions()
	o.RemoteHosts = []string{vm.GraphiteAddr}
	in, _, stop := run(t, o)
	in <- &engine.Batch{Metrics: testMetrics(time.Now())}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]float64{"bucky.web_1.load.eu": 1.25, "bucky.no_ts.load": 2, "bucky.future.load": 3} {
		s := vm.WaitFor(t, fmt.Sprintf(`last_over_time({__name__=%q}[1h])`, path), 10*time.Second)
		if len(s) != 1 || s[0].Value != want {
			t.Fatalf("%s read back as %v, want %v", path, s, want)
		}
	}
}

// Against carbon-cache stopped mid-run and started again on the same port
// and whisper tree: every metric produced is sent, dropped by reason or still
// queued, and carbon stores exactly the ones counted as sent.
func TestClient_CarbonStoppedAndRestarted(t *testing.T) {
	srv := backendtest.StartCarbon(t)
	o := DefaultOptions()
	o.RemoteHosts = []string{srv.Addr}
	o.FlushInterval = 0.02
	o.MaxFlushInterval = 0.1
	o.ChunkSize = 10
	o.BufferLimit = 100
	in, stats, stop := run(t, o)
	sent, dropped, full := stats.Counter("metrics_sent"), stats.Counter("metrics_dropped"), stats.Counter("metrics_dropped_buffer_full")
	buffered, connErrs := stats.Gauge("metrics_buffered"), stats.Counter("connection_errors")
	// produced = sent + Σ metrics_dropped_<reason> + buffered, and the
	// reasons add up to metrics_dropped.
	balanced := func(produced int) {
		t.Helper()
		var byReason float64
		for _, v := range stats.Values() {
			if strings.HasPrefix(v.Name, "metrics_dropped_") {
				byReason += v.Value
			}
		}
		s, d, b := sent.Load(), dropped.Load(), buffered.Load()
		if float64(d) != byReason || s+d+uint64(b) != uint64(produced) {
			t.Fatalf("sent %d + dropped %d (by reason %v) + buffered %d != produced %d", s, d, byReason, b, produced)
		}
	}
	// One path, one point per metric, each at its own second of the last
	// hour (the 1 s archive): the whisper file counts what carbon stored.
	t0 := time.Now().Add(-20 * time.Minute).Truncate(time.Second)
	batch := func(first, n int) *engine.Batch {
		b := &engine.Batch{}
		for i := first; i < first+n; i++ {
			b.Metrics = append(b.Metrics, engine.Metric{Bucket: "bucky_restart", Fields: []engine.Field{num("v", float64(i))}, Timestamp: t0.Add(time.Duration(i) * time.Second).UnixMilli()})
		}
		return b
	}
	stored := func(want int) []backendtest.Point {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			p := srv.Fetch(t, "bucky_restart.v", t0.Add(-time.Second), t0.Add(10*time.Minute))
			if len(p) == want {
				return p
			}
			if len(p) > want || time.Now().After(deadline) {
				t.Fatalf("carbon stored %d points, want %d", len(p), want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	in <- batch(0, 30)
	waitUntil(t, "an empty queue", func() bool { return sent.Load() == 30 && buffered.Load() == 0 })
	// Carbon loses the points it has not yet written when stopped (see
	// backendtest.Carbon.Stop): wait for them to be on disk.
	stored(30)
	balanced(30)

	srv.Stop(t)
	for i := range 16 {
		in <- batch(30+10*i, 10)
	}
	waitUntil(t, "failed pushes", func() bool { return connErrs.Load() >= 3 })
	waitUntil(t, "all batches queued", func() bool { return stats.Counter("metrics_received").Load() == 190 })
	// 160 metrics into a buffer of 100: trimmed once to the newest 50 at
	// 110, then 50 more.
	if got := full.Load(); got != 60 {
		t.Fatalf("metrics_dropped_buffer_full = %d, want 60", got)
	}
	if got := buffered.Load(); got != 100 {
		t.Fatalf("metrics_buffered = %d while carbon is stopped, want 100", got)
	}
	balanced(190)
	stored(30) // nothing reached carbon meanwhile

	srv.Start(t)
	waitUntil(t, "the backlog", func() bool { return buffered.Load() == 0 })
	in <- batch(190, 5)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	balanced(195)
	if sent.Load() != 135 || dropped.Load() != 60 || full.Load() != 60 {
		t.Fatalf("sent %d dropped %d (buffer_full %d), want 135 and 60 (60)", sent.Load(), dropped.Load(), full.Load())
	}
	// 0..29 before, the newest 100 of 30..189 kept through the trim, 190..194.
	points := stored(135)
	for _, p := range points {
		i := int(p.Time.Sub(t0) / time.Second)
		if float64(i) != p.Value || i >= 30 && i < 90 {
			t.Fatalf("carbon holds %v at %v: not a metric counted as sent", p.Value, p.Time)
		}
	}
}
