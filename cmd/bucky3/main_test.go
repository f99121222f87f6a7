package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/internal/backendtest"
)

// binary is the agent built once for the tests that run it as a process,
// the way operators and systemd do.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "bucky3-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "bucky3")
	// The Makefile's build tags: the tested binary is the shipped one, with
	// the systemd_journal reader (cgo, libsystemd-dev).
	if out, err := exec.Command("go", "build", "-tags", "sdjournal", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building bucky3: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// process is a running agent whose stderr is captured.
type process struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	stderr bytes.Buffer
	done   chan struct{}
	err    error
}

func (p *process) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.Write(b)
}

func (p *process) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

func start(t *testing.T, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(binary, args...), done: make(chan struct{})}
	p.cmd.Stderr = p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill() // fails when the agent already exited
		<-p.done
		if t.Failed() {
			t.Logf("agent stderr:\n%s", p.logs())
		}
	})
	return p
}

func (p *process) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%v: %v", sig, err)
	}
}

// wait returns the exit code, failing the test after timeout.
func (p *process) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("agent still running after %v", timeout)
	}
	var exit *exec.ExitError
	if errors.As(p.err, &exit) {
		return exit.ExitCode()
	}
	if p.err != nil {
		t.Fatal(p.err)
	}
	return 0
}

func writeConfig(t *testing.T, doc string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bucky3.toml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// freeAddr returns a 127.0.0.1 address free for TCP and UDP and reserved
// for the test, for the agent to bind (see backendtest.FreePort).
func freeAddr(t *testing.T) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(backendtest.FreePort(t)))
}

func TestBadConfigurationExits2(t *testing.T) {
	f := func(doc string, want ...string) {
		t.Helper()
		p := start(t, writeConfig(t, doc))
		if code := p.wait(t, 10*time.Second); code != 2 {
			t.Fatalf("exit code %d, want 2 for %q", code, doc)
		}
		out := strings.TrimSpace(p.logs())
		if strings.Count(out, "\n") != 0 {
			t.Fatalf("want one line, got:\n%s", out)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Fatalf("%q does not mention %q", out, w)
			}
		}
	}
	f("[host]\nmodule_type = \"linux_stats\"\nflush_intervall = 1\n", `"host"`, `"flush_intervall"`)
	f("[prom]\nmodule_type = \"prometheus_exporter\"\nhttp_path = 3\n", `"prom"`, "http_path")
	f("[x]\nmodule_type = \"statsd_serverr\"\n", `"x"`, `"statsd_serverr"`)
	f("flush_interval = \"${BUCKY3_TEST_UNSET}\"\n", "BUCKY3_TEST_UNSET")
	f("[host\n", "config")

	p := start(t, filepath.Join(t.TempDir(), "missing.toml"))
	if code := p.wait(t, 10*time.Second); code != 2 {
		t.Fatalf("missing file: exit code %d, want 2", code)
	}
	p = start(t, "a.toml", "b.toml")
	if code := p.wait(t, 10*time.Second); code != 2 {
		t.Fatalf("two arguments: exit code %d, want 2", code)
	}
}

// SIGTERM: sources flush once more, destinations push it, exit 0. SIGHUP
// changes nothing. The counters arrive under load and the flush interval is
// an hour, so the final flush is the only one and must hold every count.
func TestSIGTERMRunsFinalFlushAndExitsZero(t *testing.T) {
	statsdAddr := freeAddr(t)
	sink := startGraphiteSink(t)
	p := start(t, writeConfig(t, fmt.Sprintf(`
[statsd]
module_type = "statsd_server"
local_host = %q
flush_interval = 3600
randomize_startup = false
self_report = true
self_report_interval = 0.2
[graphite]
module_type = "carbon_client"
remote_hosts = [%q]
name_mapping = ["bucket", "name", "value"]
flush_interval = 0.2
`, statsdAddr, sink.addr)))
	waitForLog(t, p, "listening")
	conn, err := net.Dial("udp", statsdAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Each datagram holds the increments 1…10, one line each.
	const datagrams, perDatagram = 2000, 10
	var datagram strings.Builder
	for v := 1; v <= perDatagram; v++ {
		fmt.Fprintf(&datagram, "final_count:%d|c\n", v)
	}
	for i := range datagrams {
		if _, err := conn.Write([]byte(datagram.String())); err != nil {
			t.Fatal(err)
		}
		if i%50 == 49 {
			time.Sleep(5 * time.Millisecond) // stay under the socket buffer
		}
	}
	const lines, want = datagrams * perDatagram, datagrams * perDatagram * (perDatagram + 1) / 2
	// The self report says when every line is in.
	for deadline := time.Now().Add(20 * time.Second); sink.last(t, "bucky3.statsd.lines_received.") != lines; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("lines_received = %v, want %d", sink.last(t, "bucky3.statsd.lines_received."), lines)
		}
	}
	p.signal(t, syscall.SIGHUP)
	time.Sleep(100 * time.Millisecond)
	if n := sink.count("stats_counters.final_count."); n != 0 {
		t.Fatalf("%d final_count lines before the interval or on SIGHUP", n)
	}
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	if !strings.Contains(p.logs(), "shutting down") {
		t.Fatalf("no shutdown logged:\n%s", p.logs())
	}
	// The agent pushed before exiting, but the sink's reader may not have
	// read the last lines yet.
	for deadline := time.Now().Add(5 * time.Second); sink.count("stats_counters.final_count.count.") == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no final flush of the counter on SIGTERM")
		}
	}
	if n, got := sink.count("stats_counters.final_count.count."), sink.sum(t, "stats_counters.final_count.count."); n != 1 || got != want {
		t.Fatalf("final flush: %d count lines summing to %v, want 1 line of %d", n, got, want)
	}
}

func waitForLog(t *testing.T, p *process, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(p.logs(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("%q never logged", want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// scrape fetches url and returns the body, or "" while nothing listens.
func scrape(url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// The README's quick start: no argument, system_cpu on :9103 right away,
// a gauge sent to :8125 served after the flush. The agent runs the
// built-in configuration with only its two addresses moved to reserved
// ports, so the test never binds ports other programs may hold.
func TestDefaultConfiguration(t *testing.T) {
	// What the agent runs without an argument: these modules, on the
	// documented ports.
	cfg, err := loadConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	var modules []string
	for _, m := range cfg.Modules {
		modules = append(modules, m.Name+":"+m.Type.Name)
	}
	if got := strings.Join(modules, " "); got != "statsd_server:statsd_server linux_stats:linux_stats prometheus_exporter:prometheus_exporter" {
		t.Fatalf("default modules: %s", got)
	}
	doc := defaultConfig
	statsdAddr, promAddr := freeAddr(t), freeAddr(t)
	for from, to := range map[string]string{`"127.0.0.1:8125"`: strconv.Quote(statsdAddr), `"0.0.0.0:9103"`: strconv.Quote(promAddr)} {
		if n := strings.Count(doc, "local_host = "+from); n != 1 {
			t.Fatalf("default configuration has %d local_host = %s, want 1", n, from)
		}
		doc = strings.Replace(doc, from, to, 1)
	}

	started := time.Now()
	p := start(t, writeConfig(t, doc))
	url := "http://" + promAddr + "/metrics"
	var page string
	for !strings.Contains(page, "system_cpu{") {
		if time.Since(started) > 5*time.Second {
			t.Fatalf("no system_cpu after %v; page:\n%s", time.Since(started), page)
		}
		time.Sleep(20 * time.Millisecond)
		page = scrape(url)
	}
	t.Logf("system_cpu served %v after start", time.Since(started).Round(time.Millisecond))
	if !strings.Contains(page, `env="default-config"`) {
		t.Fatal("default metadata env=default-config missing")
	}
	// The second half of the quick start: a gauge shows up after the 10 s
	// flush.
	conn, err := net.Dial("udp", statsdAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	want := `stats_gauges{env="default-config",name="foobar",value="value"} 123`
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(page, want); page = scrape(url) {
		if time.Now().After(deadline) {
			t.Fatalf("gauge foobar never served; page:\n%s", page)
		}
		_, _ = conn.Write([]byte("foobar:123|g\n")) // resent every round until served
		time.Sleep(200 * time.Millisecond)
	}
	p.signal(t, syscall.SIGINT)
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGINT", code)
	}
}

// A real Prometheus server scrapes the agent and answers for system_cpu.
func TestPrometheusScrapesAgent(t *testing.T) {
	addr := freeAddr(t)
	start(t, writeConfig(t, fmt.Sprintf(`
metadata = {env = "e2e"}
[host]
module_type = "linux_stats"
randomize_startup = false
flush_interval = 2
[prom]
module_type = "prometheus_exporter"
local_host = %q
flush_interval = 1
values_timeout = 30
`, addr)))
	prom := backendtest.StartPrometheus(t, addr)
	samples := prom.WaitFor(t, `system_cpu{name="cpu0",value="user",env="e2e"}`, 45*time.Second)
	if len(samples) != 1 || samples[0].Value <= 0 {
		t.Fatalf("cpu0 user time through Prometheus: %+v", samples)
	}
}

// StatsD datagrams over real UDP come out of both a Prometheus endpoint and
// a Graphite destination with exact values, and the self report accounts
// for every line. Counters and timer counts are summed over the Graphite
// lines, which stay exact however the datagrams fall across flushes.
func TestStatsDEndToEnd(t *testing.T) {
	promAddr := freeAddr(t)
	statsdAddr := freeAddr(t)
	sink := startGraphiteSink(t)
	start(t, writeConfig(t, fmt.Sprintf(`
flush_interval = 1
randomize_startup = false
[statsd]
module_type = "statsd_server"
local_host = %q
name_rule = "bucky3"         # bad-name:1|c must be invalid
percentile_thresholds = [100]
self_report = true
self_report_interval = 1
[prom]
module_type = "prometheus_exporter"
local_host = %q
add_timestamps = false
[graphite]
module_type = "carbon_client"
remote_hosts = [%q]
name_mapping = ["bucket", "name", "value"]
`, statsdAddr, promAddr, sink.addr)))
	url := "http://" + promAddr + "/metrics"
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("exporter never answered")
		}
	}
	conn, err := net.Dial("udp", statsdAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const datagrams = 200
	for i := range datagrams {
		lines := []string{
			"hits:1|c|#route=/a",
			"hits:2|c|@0.5|#route=/a",
			fmt.Sprintf("latency:%d|ms", i%10),
			fmt.Sprintf("level:%d|g", i),
			"bad-name:1|c",
			"worse:1|zz",
		}
		if _, err := conn.Write([]byte(strings.Join(lines, "\n"))); err != nil {
			t.Fatal(err)
		}
		if i%50 == 49 {
			time.Sleep(5 * time.Millisecond) // stay under the socket buffer
		}
	}
	const sent = datagrams * 6
	var page string
	deadline := time.Now().Add(20 * time.Second)
	for {
		page = scrape(url)
		if strings.Contains(page, fmt.Sprintf(`bucky3{name="statsd",value="lines_received"} %d`, sent)) &&
			sink.sum(t, "stats_counters.hits.count.") == 1000 && sink.sum(t, "stats_timers.latency.count.") == datagrams {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("counts never settled: hits %v, latency %v; page:\n%s", sink.sum(t, "stats_counters.hits.count."), sink.sum(t, "stats_timers.latency.count."), page)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, want := range []string{
		`stats_gauges{name="level",value="value"} 199`,
		`bucky3{name="statsd",value="lines_invalid"} 400`,
		`bucky3{name="statsd",value="lines_invalid_bad_name"} 200`,
		`bucky3{name="statsd",value="lines_invalid_bad_type"} 200`,
		`bucky3{name="statsd",value="packets_received"} 200`,
		`bucky3{name="statsd",value="packets_dropped_kernel"} 0`,
		`bucky3{name="statsd",value="metrics_dropped"} 0`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
}

// graphiteSink is a Graphite plaintext receiver that keeps every line.
type graphiteSink struct {
	addr  string
	mu    sync.Mutex
	lines []string
}

func startGraphiteSink(t *testing.T) *graphiteSink {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	s := &graphiteSink{addr: l.Addr().String()}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					s.mu.Lock()
					s.lines = append(s.lines, sc.Text())
					s.mu.Unlock()
				}
			}()
		}
	}()
	return s
}

// values returns the values of the lines whose path, followed by a dot,
// starts with prefix, in arrival order. A line that is not "path value
// timestamp" fails the test.
func (s *graphiteSink) values(t *testing.T, prefix string) []float64 {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []float64
	for _, line := range s.lines {
		f := strings.Fields(line)
		if len(f) != 3 {
			t.Fatalf("graphite line %q: want path value timestamp", line)
		}
		if !strings.HasPrefix(f[0]+".", prefix) {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			t.Fatalf("graphite line %q: %v", line, err)
		}
		if _, err := strconv.ParseInt(f[2], 10, 64); err != nil {
			t.Fatalf("graphite line %q: timestamp: %v", line, err)
		}
		out = append(out, v)
	}
	return out
}

// sum adds up the values of the lines under prefix (see values).
func (s *graphiteSink) sum(t *testing.T, prefix string) float64 {
	t.Helper()
	var total float64
	for _, v := range s.values(t, prefix) {
		total += v
	}
	return total
}

// last returns the value of the newest line under prefix, -1 if none.
func (s *graphiteSink) last(t *testing.T, prefix string) float64 {
	t.Helper()
	vs := s.values(t, prefix)
	if len(vs) == 0 {
		return -1
	}
	return vs[len(vs)-1]
}

// count returns the number of lines whose path, followed by a dot, starts
// with prefix.
func (s *graphiteSink) count(prefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, line := range s.lines {
		if path, _, _ := strings.Cut(line, " "); strings.HasPrefix(path+".", prefix) {
			n++
		}
	}
	return n
}

func TestSystemdUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze not installed: run scripts/backends.sh install")
	}
	unit, err := os.ReadFile("../../dist/systemd/bucky3.service")
	if err != nil {
		t.Fatal(err)
	}
	// verify insists that ExecStart exists: point it at the binary under test.
	var patched strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(unit))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "ExecStart=") {
			line = "ExecStart=" + binary + " /etc/bucky3/bucky3.toml"
		}
		patched.WriteString(line + "\n")
	}
	path := filepath.Join(t.TempDir(), "bucky3.service")
	if err := os.WriteFile(path, []byte(patched.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, analyze, "verify", path).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// The shipped example configuration documents every option: it must stay
// valid as options change.
func TestExampleConfiguration(t *testing.T) {
	cfg, err := engine.LoadFile("../../dist/bucky3.toml", moduleTypes, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	var active []string
	for _, m := range cfg.Modules {
		active = append(active, m.Name)
	}
	if got := strings.Join(active, ","); got != "statsd,jsond,host,prometheus" {
		t.Fatalf("active modules: %s", got)
	}
}
