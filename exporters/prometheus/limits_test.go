package prometheus

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bucky3/bucky3/engine"
)

// budget is a memory budget the test sets.
type budget struct{ tight bool }

func (b *budget) Tight() bool { return b.tight }

func seriesBatch(from, to int) *engine.Batch {
	b := &engine.Batch{}
	for i := from; i < to; i++ {
		b.Metrics = append(b.Metrics, metric("m", 0, []engine.Tag{{Key: "i", Value: strconv.Itoa(i)}}, num("v", float64(i))))
	}
	return b
}

func counters(stats *engine.Stats, names ...string) map[string]float64 {
	out := map[string]float64{}
	for _, v := range stats.Values() {
		for _, n := range names {
			if v.Name == n {
				out[n] = v.Value
			}
		}
	}
	return out
}

func TestStoreMaxSeries(t *testing.T) {
	stats := engine.NewStats()
	s := newStore(stats, storeLimits{maxSeries: 3})
	s.ingest(seriesBatch(0, 5), 1, true)
	// Known series still refresh at the cap.
	s.ingest(seriesBatch(0, 1), 2, true)
	want := "# HELP m bucky3 bucket m\n# TYPE m untyped\n" +
		"m{i=\"0\",value=\"v\"} 0\nm{i=\"1\",value=\"v\"} 1\nm{i=\"2\",value=\"v\"} 2\n"
	if got := storePage(s); got != want {
		t.Errorf("page =\n%s\nwant\n%s", got, want)
	}
	got := counters(stats, "metrics_dropped", "metrics_dropped_max_series", "series")
	if got["metrics_dropped"] != 2 || got["metrics_dropped_max_series"] != 2 || got["series"] != 3 {
		t.Errorf("counters %v, want 2 dropped for max_series, 3 series", got)
	}
	// Eviction makes room again.
	s.evict(2)
	s.ingest(seriesBatch(10, 12), 3, true)
	if got := counters(stats, "series", "metrics_dropped_max_series"); got["series"] != 3 || got["metrics_dropped_max_series"] != 2 {
		t.Errorf("after evicting two and adding two: %v, want 3 series and still 2 dropped", got)
	}
}

func TestStoreRefusesNewSeriesWhileMemoryIsTight(t *testing.T) {
	stats := engine.NewStats()
	mem := &budget{}
	s := newStore(stats, storeLimits{maxSeries: 100, memory: mem})
	s.ingest(seriesBatch(0, 2), 1, true)
	mem.tight = true
	s.ingest(seriesBatch(0, 5), 2, true)
	if got := counters(stats, "metrics_dropped", "metrics_dropped_memory_limit", "series"); got["metrics_dropped"] != 3 || got["metrics_dropped_memory_limit"] != 3 || got["series"] != 2 {
		t.Errorf("counters %v, want 3 dropped for memory_limit, 2 series", got)
	}
	mem.tight = false
	s.ingest(seriesBatch(0, 5), 3, true)
	if got := counters(stats, "series"); got["series"] != 5 {
		t.Errorf("series %v once memory is no longer tight, want 5", got)
	}
}

// metricsVersionUnchanged checks that a batch that stores nothing does not
// make scrapes render again.
func TestStoreVersion(t *testing.T) {
	s := newStore(engine.NewStats(), storeLimits{})
	v0 := s.version.Load()
	s.ingest(&engine.Batch{}, 1, true)
	s.evict(0)
	if v := s.version.Load(); v != v0 {
		t.Errorf("version moved from %d to %d without a change", v0, v)
	}
	s.ingest(seriesBatch(0, 1), 1, true)
	s.evict(2)
	if v := s.version.Load(); v != v0+2 {
		t.Errorf("version %d after an ingest and an eviction, want %d", v, v0+2)
	}
}

// waitGauge polls the gauge name of h until it reads want.
func waitGauge(t *testing.T, h *harness, name string, want int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for h.stats.Gauge(name).Load() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s = %d after 10 s, want %d", name, h.stats.Gauge(name).Load(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

// expectClosed reads from c until the server ends the connection, failing
// after limit.
func expectClosed(t *testing.T, c net.Conn, limit time.Duration) {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(limit)); err != nil {
		t.Fatal(err)
	}
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v", limit)
	}
}

func TestExporterConnectionLimit(t *testing.T) {
	h := start(t, func(o *Options) { o.MaxConnections = 2 })
	h.send(metric("m", 0, nil, num("v", 1)))
	addr := h.e.Addr().String()
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	waitGauge(t, h, "connections", 2)

	extra, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	expectClosed(t, extra, 5*time.Second)
	if n := h.stats.Counter("connections_refused").Load(); n != 1 {
		t.Errorf("connections_refused = %d, want 1", n)
	}

	// A freed slot serves again.
	held[0].Close()
	waitGauge(t, h, "connections", 1)
	if page := h.scrape(t); page == "" {
		t.Error("empty page")
	}
	if n := h.stats.Counter("connections_refused").Load(); n != 1 {
		t.Errorf("connections_refused = %d after a scrape in a free slot, want 1", n)
	}
}

func TestExporterReadTimeout(t *testing.T) {
	h := start(t, func(o *Options) { o.ReadTimeout = 0.2 })
	c, err := net.Dial("tcp", h.e.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A header that never ends.
	if _, err := io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	expectClosed(t, c, 5*time.Second)
	if d := time.Since(began); d < 150*time.Millisecond {
		t.Errorf("closed after %v, before the 0.2 s read_timeout", d)
	}
	waitGauge(t, h, "connections", 0)
}

// bigPage fills h with n series, a page of about 30 bytes each, and
// returns once they are stored.
func bigPage(h *harness, n int) {
	h.in <- seriesBatch(0, n)
	h.in <- &engine.Batch{}
}

// stuckScrape sends a GET over a connection with a tiny receive buffer
// and never reads the answer, so the server's write blocks once the
// socket buffers are full.
func stuckScrape(t *testing.T, h *harness) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return errors.Join(err, serr)
	}}
	c, err := d.Dial("tcp", h.e.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// The server is writing once it has read the request.
	deadline := time.Now().Add(10 * time.Second)
	for h.stats.Counter("http_requests").Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("request not received in 10 s")
		}
		time.Sleep(time.Millisecond)
	}
	return c
}

// A page larger than loopback's socket buffers (several MiB).
const stuckSeries = 300_000

func TestExporterWriteTimeout(t *testing.T) {
	h := start(t, func(o *Options) { o.WriteTimeout = 0.3 })
	bigPage(h, stuckSeries)
	stuckScrape(t, h)
	began := time.Now()
	waitGauge(t, h, "connections", 0)
	t.Logf("closed %v after the request", time.Since(began))
	if d := time.Since(began); d > 5*time.Second {
		t.Errorf("stuck scrape closed after %v with write_timeout 0.3 s", d)
	}
}

// TestExporterDrainClosesStuckScrape closes the inbox (the agent's
// shutdown) while a client sits on a large page without reading it: Run
// must return after drain_timeout, not when the client gives up.
func TestExporterDrainClosesStuckScrape(t *testing.T) {
	o := DefaultOptions()
	o.LocalHost = "127.0.0.1:0"
	o.DrainTimeout = 0.3
	stats := engine.NewStats()
	e, err := New(module(stats), o)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{e: e, stats: stats, in: make(chan *engine.Batch)}
	done := make(chan error, 1)
	go func() { done <- e.Run(context.Background(), h.in) }()
	<-e.Ready()
	bigPage(h, stuckSeries)
	stuckScrape(t, h)

	began := time.Now()
	close(h.in)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run still waiting for a stuck scrape 10 s after its inbox closed (drain_timeout 0.3 s)")
	}
	t.Logf("Run returned %v after the inbox closed", time.Since(began))
	if d := time.Since(began); d < 250*time.Millisecond {
		t.Errorf("Run returned after %v: the scrape in flight got less than drain_timeout", d)
	}
	waitGauge(t, h, "connections", 0)
}

// TestExporterRendersOncePerChange has 8 clients scrape, half of them with
// gzip, an unchanged store: one render and one compression serve them all.
func TestExporterRendersOncePerChange(t *testing.T) {
	const scrapers, scrapes = 8, 25
	h := start(t, func(o *Options) { o.Compression = "gzip" })
	h.send(sampleMetrics()...)
	var wg sync.WaitGroup
	for c := range scrapers {
		wg.Go(func() {
			for range scrapes {
				if _, err := scrapeBody(h, c%2 == 0); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got := counters(h.stats, "pages_rendered", "pages_compressed"); got["pages_rendered"] != 1 || got["pages_compressed"] != 1 {
		t.Errorf("%d scrapes of one store: %v, want 1 render and 1 compression", scrapers*scrapes, got)
	}
	h.send(metric("m", 0, nil, num("v", 1)))
	for _, gz := range []bool{false, true, false, true} {
		if _, err := scrapeBody(h, gz); err != nil {
			t.Fatal(err)
		}
	}
	if got := counters(h.stats, "pages_rendered", "pages_compressed"); got["pages_rendered"] != 2 || got["pages_compressed"] != 2 {
		t.Errorf("after one change: %v, want 2 renders and 2 compressions", got)
	}
}

// scrapeBody GETs the page, with gzip or not, and returns it uncompressed.
func scrapeBody(h *harness, gz bool) (string, error) {
	req, err := http.NewRequest(http.MethodGet, h.url+"/metrics", nil)
	if err != nil {
		return "", err
	}
	if gz {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	// The default transport gunzips and checks the trailer.
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var r io.Reader = bufio.NewReader(resp.Body)
	if gz {
		if resp.Header.Get("Content-Encoding") != "gzip" {
			return "", errors.New("no gzip")
		}
		zr, err := gzip.NewReader(r)
		if err != nil {
			return "", err
		}
		r = zr
	}
	body, err := io.ReadAll(r)
	return string(body), err
}
