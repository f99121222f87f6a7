package main

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The hostile suite: the real binary, one bad sender at a time on
// loopback. Each scenario checks that the agent's memory stays within
// memory_limit + 64 MiB and that every line sent is accounted for in the
// agent's own /metrics: received lines + kernel drops = sent, and the
// lines dropped for the scenario's reason are exactly the bad ones.
// `make test` runs each scenario at a size that takes a few seconds;
// `make hostile` (HOSTILE=full) runs them at the sizes.

const hostileMemoryLimit = 256 << 20

// hostileScale multiplies the floods' sizes.
func hostileScale() int {
	if os.Getenv("HOSTILE") == "full" {
		return 10
	}
	return 1
}

// hostileWait bounds the wait for the agent to account for a flood.
func hostileWait() time.Duration {
	return 15 * time.Second * time.Duration(hostileScale())
}

// hostileAgent is a running agent: statsd_server and jsond_server on UDP,
// prometheus_exporter serving the agent's own metrics.
type hostileAgent struct {
	p       *process
	statsd  string
	jsond   string
	metrics string

	mu      sync.Mutex
	peakRSS uint64
	stop    chan struct{}
	stopped chan struct{}
}

// startHostile starts the agent with extra options for statsd_server,
// jsond_server and prometheus_exporter.
func startHostile(t *testing.T, statsdOpts, jsondOpts, promOpts string) *hostileAgent {
	t.Helper()
	h := &hostileAgent{statsd: freeAddr(t), jsond: freeAddr(t), stop: make(chan struct{}), stopped: make(chan struct{})}
	flushEverySecond := func(opts string) string {
		if strings.Contains(opts, "flush_interval") {
			return opts
		}
		return "flush_interval = 1\n" + opts
	}
	prom := freeAddr(t)
	h.metrics = "http://" + prom + "/metrics"
	h.p = start(t, writeConfig(t, fmt.Sprintf(`
memory_limit = %d
shutdown_timeout = 5
[statsd]
module_type = "statsd_server"
local_host = %q
randomize_startup = false
readers = 1
receive_buffer = 16777216
%s
[jsond]
module_type = "jsond_server"
local_host = %q
randomize_startup = false
receive_buffer = 16777216
%s
[prom]
module_type = "prometheus_exporter"
local_host = %q
%s
`, hostileMemoryLimit, h.statsd, flushEverySecond(statsdOpts), h.jsond, flushEverySecond(jsondOpts), prom, promOpts)))
	for deadline := time.Now().Add(20 * time.Second); scrape(h.metrics) == ""; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the agent never served %s", h.metrics)
		}
	}
	go h.sampleRSS()
	t.Cleanup(func() {
		h.stopSampling()
		t.Logf("peak RSS %.1f MiB", float64(h.peak())/(1<<20))
	})
	return h
}

// sampleRSS keeps the agent's peak resident set size, read from /proc
// every 10 ms (VmHWM would include the time before the flood).
func (h *hostileAgent) sampleRSS() {
	defer close(h.stopped)
	path := fmt.Sprintf("/proc/%d/status", h.p.cmd.Process.Pid)
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return
		}
		for line := range strings.SplitSeq(string(data), "\n") {
			if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				h.mu.Lock()
				h.peakRSS = max(h.peakRSS, kb<<10)
				h.mu.Unlock()
			}
		}
	}
}

func (h *hostileAgent) stopSampling() {
	select {
	case <-h.stop:
	default:
		close(h.stop)
	}
	<-h.stopped
}

func (h *hostileAgent) peak() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.peakRSS
}

// checkMemory fails t when the agent's peak RSS passed the budget.
func (h *hostileAgent) checkMemory(t *testing.T) {
	t.Helper()
	if peak := h.peak(); peak > hostileMemoryLimit+64<<20 {
		t.Errorf("peak RSS %d MiB, above memory_limit (%d MiB) + 64 MiB", peak>>20, hostileMemoryLimit>>20)
	}
}

// send writes the datagrams made by next(i), i = 0…n−1, to addr, pausing
// now and then so that the socket's buffer mostly keeps up; the kernel
// drops what it does not, and those are counted too.
func send(t *testing.T, addr string, n int, next func(i int) []byte) {
	t.Helper()
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := range n {
		if _, err := conn.Write(next(i)); err != nil && !isRefused(err) {
			t.Fatal(err)
		}
		if i%64 == 63 {
			time.Sleep(time.Millisecond)
		}
	}
}

func isRefused(err error) bool { return strings.Contains(err.Error(), "connection refused") }

// selfMetrics is one scrape of the agent's own metrics.
type selfMetrics map[string]*dto.MetricFamily

func (h *hostileAgent) scrape(t *testing.T) selfMetrics {
	t.Helper()
	resp, err := http.Get(h.metrics)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("the page does not parse: %v", err)
	}
	return families
}

// get returns the sum of family's samples whose labels include labels
// ("k=v" pairs).
func (s selfMetrics) get(family string, labels ...string) float64 {
	f := s[family]
	if f == nil {
		return 0
	}
	var sum float64
	for _, m := range f.GetMetric() {
		if !hasLabels(m, labels) {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Untyped != nil:
			sum += m.Untyped.GetValue()
		}
	}
	return sum
}

func hasLabels(m *dto.Metric, labels []string) bool {
	for _, kv := range labels {
		k, v, _ := strings.Cut(kv, "=")
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == k && l.GetValue() == v {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// accounted waits until module's received lines plus its kernel drops
// (packets × linesPerPacket) reach sent, and returns the last scrape. It
// fails t if they never do, or pass it.
func (h *hostileAgent) accounted(t *testing.T, module string, sent, linesPerPacket int) selfMetrics {
	t.Helper()
	var s selfMetrics
	var got float64
	for deadline := time.Now().Add(hostileWait()); ; time.Sleep(50 * time.Millisecond) {
		s = h.scrape(t)
		got = s.get("bucky3_lines_received_total", "module="+module) +
			s.get("bucky3_packets_dropped_kernel_total", "module="+module)*float64(linesPerPacket)
		if got >= float64(sent) || time.Now().After(deadline) {
			break
		}
	}
	if got != float64(sent) {
		t.Fatalf("%s: received + kernel drops = %v lines, sent %d", module, got, sent)
	}
	t.Logf("%s: %v lines received, %v packets dropped by the kernel", module,
		s.get("bucky3_lines_received_total", "module="+module), s.get("bucky3_packets_dropped_kernel_total", "module="+module))
	return s
}

// waitFor scrapes until cond holds or hostileWait passes, and returns the last
// scrape.
func (h *hostileAgent) waitFor(t *testing.T, cond func(selfMetrics) bool) selfMetrics {
	t.Helper()
	for deadline := time.Now().Add(hostileWait()); ; time.Sleep(50 * time.Millisecond) {
		s := h.scrape(t)
		if cond(s) || time.Now().After(deadline) {
			return s
		}
	}
}

// dropped returns module's lines dropped for reason.
func (s selfMetrics) dropped(module, reason string) float64 {
	return s.get("bucky3_lines_dropped_total", "module="+module, "reason="+reason)
}

func TestHostile_PackedTimerValues(t *testing.T) {
	h := startHostile(t, "", "", "")
	n := 2000 * hostileScale()
	// 10k values in one line: over max_values_per_line (64).
	tooMany := []byte("packed:" + strings.Repeat("1:", 9999) + "1|ms")
	send(t, h.statsd, n, func(int) []byte { return tooMany })
	s := h.accounted(t, "statsd", n, 1)
	if got, received := s.dropped("statsd", "invalid_too_many_values"), s.get("bucky3_lines_received_total", "module=statsd"); got != received {
		t.Fatalf("%v of %v lines with 10k values dropped as too_many_values", got, received)
	}
	// At the cap, one series gets far more samples than max_timer_samples
	// in one interval: kept to the reservoir.
	atCap := []byte("packed_ok:" + strings.Repeat("2:", 63) + "2|ms")
	m := 20000 * hostileScale()
	send(t, h.statsd, m, func(int) []byte { return atCap })
	s = h.accounted(t, "statsd", n+m, 1)
	if got := s.dropped("statsd", "invalid_too_many_values"); got > float64(n) {
		t.Fatalf("lines at the cap dropped: %v", got-float64(n))
	}
	// 1.28M samples in one series and interval: kept to a reservoir.
	s = h.waitFor(t, func(s selfMetrics) bool { return s.get("bucky3_timer_samples_sampled_total", "module=statsd") > 0 })
	if s.get("bucky3_timer_samples_sampled_total", "module=statsd") == 0 {
		t.Fatal("the timer series past max_timer_samples is not counted as sampled")
	}
	h.checkMemory(t)
}

func TestHostile_UniqueSetMembers(t *testing.T) {
	h := startHostile(t, "", "", "")
	const perPacket = 40
	n := 10000 * hostileScale() // 400k members in one series (4M full)
	var b bytes.Buffer
	send(t, h.statsd, n, func(i int) []byte {
		b.Reset()
		for j := range perPacket {
			fmt.Fprintf(&b, "members:%d|s\n", i*perPacket+j)
		}
		return b.Bytes()
	})
	s := h.accounted(t, "statsd", n*perPacket, perPacket)
	if d := s.get("bucky3_lines_dropped_total", "module=statsd"); d != 0 {
		t.Fatalf("set members dropped: %v", d)
	}
	// Past max_set_size (100000) the count is an estimate.
	s = h.waitFor(t, func(s selfMetrics) bool { return s.get("bucky3_set_members_estimated_total", "module=statsd") > 0 })
	if s.get("bucky3_set_members_estimated_total", "module=statsd") == 0 {
		t.Fatal("the set series past max_set_size is not counted as estimated")
	}
	h.checkMemory(t)
}

func TestHostile_LongNames(t *testing.T) {
	h := startHostile(t, "", "", "")
	n := 10000 * hostileScale() // 100k in full
	name := strings.Repeat("n", 60000)
	send(t, h.statsd, n, func(i int) []byte { return fmt.Appendf(nil, "%s%d:1|c", name, i) })
	s := h.accounted(t, "statsd", n, 1)
	if got, received := s.dropped("statsd", "invalid_name_too_long"), s.get("bucky3_lines_received_total", "module=statsd"); got != received || got == 0 {
		t.Fatalf("%v of %v lines with 60 KB names dropped as name_too_long", got, received)
	}
	h.checkMemory(t)
}

func TestHostile_LongTags(t *testing.T) {
	h := startHostile(t, "", "", "")
	n := 10000 * hostileScale()
	value := strings.Repeat("v", 30000)
	send(t, h.statsd, n, func(i int) []byte { return fmt.Appendf(nil, "long_tag:1|c|#k%d:%s", i, value) })
	s := h.accounted(t, "statsd", n, 1)
	if got, received := s.dropped("statsd", "invalid_tag_too_long"), s.get("bucky3_lines_received_total", "module=statsd"); got != received || got == 0 {
		t.Fatalf("%v of %v lines with 30 KB tags dropped as tag_too_long", got, received)
	}
	h.checkMemory(t)
}

func TestHostile_SeriesPastMaxSeries(t *testing.T) {
	maxSeries := 10000
	if hostileScale() > 1 {
		maxSeries = 1000000
	}
	// One interval holds the whole flood: max_series counts per interval.
	h := startHostile(t, fmt.Sprintf("max_series = %d\nflush_interval = 3600", maxSeries), "", "")
	const perPacket = 20
	n := 2 * maxSeries / perPacket
	var b bytes.Buffer
	send(t, h.statsd, n, func(i int) []byte {
		b.Reset()
		for j := range perPacket {
			fmt.Fprintf(&b, "series_%d:1|c\n", i*perPacket+j)
		}
		return b.Bytes()
	})
	s := h.accounted(t, "statsd", n*perPacket, perPacket)
	received := s.get("bucky3_lines_received_total", "module=statsd")
	// Series drops are published at the flush.
	s = h.waitFor(t, func(s selfMetrics) bool {
		return s.dropped("statsd", "max_series")+s.dropped("statsd", "memory_limit") >= received-float64(maxSeries)
	})
	over, memory := s.dropped("statsd", "max_series"), s.dropped("statsd", "memory_limit")
	// Each line is a new series: all but max_series of them are refused,
	// by max_series or, if memory ran short first, by memory_limit.
	if received-over-memory != float64(maxSeries) && memory == 0 {
		t.Fatalf("%v lines received, %v dropped at max_series: want exactly %d kept", received, over, maxSeries)
	}
	if received-over-memory > float64(maxSeries) {
		t.Fatalf("%v lines received, %v dropped at max_series and %v at memory_limit: more than %d kept", received, over, memory, maxSeries)
	}
	if over == 0 {
		t.Fatal("nothing dropped past max_series")
	}
	h.checkMemory(t)
}

// zlibOf compresses data as a zlib stream.
func zlibOf(t *testing.T, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := zlib.NewWriterLevel(&b, zlib.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// Compressed datagrams that inflate far past max_decompressed_bytes are
// dropped whole; those that inflate to just under it fill the buffer,
// which holds at most buffer_bytes between flushes.
func TestHostile_JSONBombs(t *testing.T) {
	h := startHostile(t, "", "buffer_limit = 100000000", "")
	bomb := zlibOf(t, bytes.Repeat([]byte(`{"v":1}`+"\n"), 10<<20/8)) // 10 MiB
	n := 200 * hostileScale()
	send(t, h.jsond, n, func(int) []byte { return bomb })
	s := h.waitFor(t, func(s selfMetrics) bool {
		return s.get("bucky3_packets_dropped_total", "module=jsond", "reason=too_large")+s.get("bucky3_packets_dropped_kernel_total", "module=jsond") == float64(n)
	})
	if tooLarge, kernel := s.get("bucky3_packets_dropped_total", "module=jsond", "reason=too_large"), s.get("bucky3_packets_dropped_kernel_total", "module=jsond"); tooLarge+kernel != float64(n) || tooLarge == 0 {
		t.Fatalf("%d bombs sent: %v dropped as too large, %v by the kernel", n, tooLarge, kernel)
	}
	if got := s.get("bucky3_lines_received_total", "module=jsond"); got != 0 {
		t.Fatalf("%v lines read out of bombs", got)
	}

	// Just under 1 MiB inflated: 127k objects a datagram, 64 MiB of
	// buffer_bytes reached within a few datagrams.
	const perPacket = (1<<20 - 1024) / 8
	full := zlibOf(t, bytes.Repeat([]byte(`{"v":1}`+"\n"), perPacket))
	m := 100 * (1 + 2*(hostileScale()-1)/9) // 100, or 300 in full
	send(t, h.jsond, m, func(int) []byte { return full })
	h.accounted(t, "jsond", m*perPacket, perPacket)
	// The buffer is bounded by buffer_bytes, or by memory_limit when the
	// rest of the agent (the exporter's batches) holds memory too.
	bounded := func(s selfMetrics) float64 {
		return s.dropped("jsond", "buffer_bytes") + s.dropped("jsond", "memory_limit")
	}
	s = h.waitFor(t, func(s selfMetrics) bool { return bounded(s) > 0 })
	if bounded(s) == 0 {
		t.Fatalf("neither buffer_bytes nor memory_limit held back %d objects", m*perPacket)
	}
	t.Logf("jsond: %v objects dropped at buffer_bytes, %v at memory_limit", s.dropped("jsond", "buffer_bytes"), s.dropped("jsond", "memory_limit"))
	h.checkMemory(t)
}

// Objects of 10k fields, compressed to fit a datagram, are refused whole.
func TestHostile_JSONWideObjects(t *testing.T) {
	h := startHostile(t, "", "", "")
	var obj bytes.Buffer
	obj.WriteString("{")
	for i := range 10000 {
		if i > 0 {
			obj.WriteString(",")
		}
		fmt.Fprintf(&obj, `"f%d":%d`, i, i)
	}
	obj.WriteString("}\n")
	wide := zlibOf(t, obj.Bytes())
	n := 1000 * hostileScale()
	send(t, h.jsond, n, func(int) []byte { return wide })
	s := h.accounted(t, "jsond", n, 1)
	if got, received := s.dropped("jsond", "invalid_too_many_fields"), s.get("bucky3_lines_received_total", "module=jsond"); got != received || got == 0 {
		t.Fatalf("%v of %v 10k-field objects dropped as too_many_fields", got, received)
	}
	h.checkMemory(t)
}

func TestHostile_Overflow(t *testing.T) {
	h := startHostile(t, "", "", "")
	lines := []string{"inf_count:1e300|c|@1e-10", "inf_timer:-1.7e308:1.7e308|ms"}
	send(t, h.statsd, len(lines), func(i int) []byte { return []byte(lines[i]) })
	h.accounted(t, "statsd", len(lines), 1)
	s := h.waitFor(t, func(s selfMetrics) bool {
		return s.get("bucky3_metrics_dropped_total", "module=statsd", "reason=not_finite") > 0
	})
	if s.get("bucky3_metrics_dropped_total", "module=statsd", "reason=not_finite") == 0 {
		t.Fatal("no non-finite value counted")
	}
	page := scrape(h.metrics)
	for _, bad := range []string{"+Inf", "-Inf", "NaN"} {
		for line := range strings.SplitSeq(page, "\n") {
			if strings.Contains(line, "inf_") && strings.HasSuffix(line, bad) {
				t.Fatalf("a non-finite value was served: %s", line)
			}
		}
	}
}

// Idle keep-alive connections beyond max_connections cost the agent no
// more descriptors than the limit, and it still answers.
func TestHostile_IdleConnections(t *testing.T) {
	h := startHostile(t, "", "", "max_connections = 16")
	addr := strings.TrimSuffix(strings.TrimPrefix(h.metrics, "http://"), "/metrics")
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 200 * hostileScale() {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			continue // refused or timed out: the limit at work
		}
		conns = append(conns, c)
	}
	time.Sleep(200 * time.Millisecond)
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", h.p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if len(fds) > 16+64 {
		t.Fatalf("%d descriptors open with %d idle connections and max_connections = 16", len(fds), len(conns))
	}
	// The refused ones are counted, and a scrape still gets through once
	// the idle ones are gone.
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	s := h.waitFor(t, func(s selfMetrics) bool { return s.get("bucky3_connections_refused_total", "module=prom") > 0 })
	if s.get("bucky3_connections_refused_total", "module=prom") == 0 {
		t.Fatal("connections past max_connections not counted")
	}
	h.checkMemory(t)
}

// A client that never reads a large page does not hold up the shutdown.
func TestHostile_StuckScraperAtShutdown(t *testing.T) {
	h := startHostile(t, "max_series = 2000000", "", "")
	const perPacket = 40
	n := 2500 * hostileScale() // 100k series (1M full)
	var b bytes.Buffer
	send(t, h.statsd, n, func(i int) []byte {
		b.Reset()
		for j := range perPacket {
			fmt.Fprintf(&b, "page_%d:%d|g\n", i*perPacket+j, j)
		}
		return b.Bytes()
	})
	// Two flushes later the exporter holds them; a client stalls on the
	// page.
	time.Sleep(2500 * time.Millisecond)
	addr := strings.TrimSuffix(strings.TrimPrefix(h.metrics, "http://"), "/metrics")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if tcp, ok := c.(*net.TCPConn); ok {
		_ = tcp.SetReadBuffer(4096)
	}
	if _, err := fmt.Fprintf(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	h.p.signal(t, syscall.SIGTERM)
	if code := h.p.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("exit code %d with a stuck scraper, want 0", code)
	}
	if took := time.Since(start); took > 5*time.Second+2*time.Second {
		t.Fatalf("shutdown took %v with shutdown_timeout = 5", took)
	}
}
