package backendtest

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Receiver is a running server that metrics are pushed to — Prometheus
// remote write, or OTLP/HTTP — and that a test can kill and start again on
// the same port and data directory, to follow a client across an outage.
// Query reads back through the server's Prometheus query API.
type Receiver struct {
	Name     string
	URL      string // base URL, http://127.0.0.1:PORT
	WriteURL string // Prometheus remote write endpoint
	OTLPURL  string // OTLP/HTTP metrics endpoint; "" when the server has none

	bin   string
	args  []string
	ready string // path answering 200 once the server is ready
	flush bool   // VictoriaMetrics: force_flush before each query
	proc  *process
}

// VMOTLPDir is where scripts/backends.sh installs the pinned
// VictoriaMetrics release that ingests OTLP, relative to the repository
// root. The Debian package (StartVictoriaMetrics) predates OTLP ingestion.
const VMOTLPDir = ".cache/backends/otlp/bin"

// StartPrometheusReceiver starts Prometheus with its remote write receiver
// enabled (--web.enable-remote-write-receiver) and nothing to scrape.
// Prometheus keeps what it accepted in its WAL, so Kill loses nothing it
// answered 2xx for. It rejects (400) a sample older than the newest of its
// series, and samples more than about an hour old.
func StartPrometheusReceiver(t testing.TB) *Receiver {
	t.Helper()
	dir := t.TempDir()
	port := FreePort(t)
	config := filepath.Join(dir, "prometheus.yml")
	writeFile(t, config, "global:\n  evaluation_interval: 1m\n")
	r := &Receiver{
		Name: "prometheus",
		URL:  "http://" + hostPort(port),
		bin:  findBinary(t, "prometheus"),
		args: []string{
			"--config.file=" + config,
			"--storage.tsdb.path=" + filepath.Join(dir, "data"),
			"--web.listen-address=" + hostPort(port),
			"--web.enable-remote-write-receiver",
			"--log.level=warn",
		},
		ready: "/-/ready",
	}
	r.WriteURL = r.URL + "/api/v1/write"
	r.Start(t)
	return r
}

// StartVictoriaMetricsReceiver starts the VictoriaMetrics of the Debian
// package (the one StartVictoriaMetrics runs) for remote write. A new
// series becomes searchable about a second after it was ingested, and
// Kill loses what it took in the last seconds.
func StartVictoriaMetricsReceiver(t testing.TB) *Receiver {
	t.Helper()
	return startVM(t, "victoria-metrics", findBinary(t, "victoria-metrics"))
}

// StartVictoriaMetricsOTLP starts the pinned VictoriaMetrics release that
// scripts/backends.sh installs under VMOTLPDir. It ingests OTLP/HTTP
// metrics (OTLPURL, protobuf, optionally gzip) and remote write, keeps
// metric names and attribute keys as sent, and adds the labels scope.name
// and scope.version. Like the Debian one, it may lose what it took in the
// last seconds to Kill.
func StartVictoriaMetricsOTLP(t testing.TB) *Receiver {
	t.Helper()
	bin := filepath.Join(repoRoot(), VMOTLPDir, "victoria-metrics")
	if fi, err := os.Stat(bin); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf(installHint, bin)
	}
	r := startVM(t, "victoria-metrics-otlp", bin)
	r.OTLPURL = r.URL + "/opentelemetry/v1/metrics"
	return r
}

func startVM(t testing.TB, name, bin string) *Receiver {
	t.Helper()
	port := FreePort(t)
	r := &Receiver{
		Name: name,
		URL:  "http://" + hostPort(port),
		bin:  bin,
		args: []string{
			"-storageDataPath=" + t.TempDir(),
			"-httpListenAddr=" + hostPort(port),
			"-search.latencyOffset=0s",
			"-retentionPeriod=100y",
			"-loggerLevel=WARN",
		},
		ready: "/health",
		flush: true,
	}
	r.WriteURL = r.URL + "/api/v1/write"
	r.Start(t)
	return r
}

// Start starts the server again after Kill, on the same port and data
// directory, and waits until it is ready. The Start functions call it.
func (r *Receiver) Start(t testing.TB) {
	t.Helper()
	if r.proc != nil {
		select {
		case <-r.proc.done:
		default:
			t.Fatalf("%s: Start while it runs", r.Name)
		}
	}
	r.proc = startProcess(t, r.Name, r.bin, nil, r.args...)
	r.proc.waitReady(t, httpReady(r.URL+r.ready, 200))
}

// Kill kills the server with SIGKILL and waits until it is gone: a client
// then sees refused connections, or a reset mid-request.
func (r *Receiver) Kill(t testing.TB) {
	t.Helper()
	_ = syscall.Kill(-r.proc.cmd.Process.Pid, syscall.SIGKILL) // ESRCH: already gone
	select {
	case <-r.proc.done:
	case <-time.After(readyTimeout):
		t.Fatalf("%s did not exit after SIGKILL", r.Name)
	}
}

// Query runs an instant query at the current time. Samples written with
// old timestamps need a range function such as last_over_time(m[1h]).
func (r *Receiver) Query(t testing.TB, expr string) []Sample {
	t.Helper()
	if r.flush {
		get(t, r.URL+"/internal/force_flush")
	}
	return promQuery(t, r.URL, expr)
}

// WaitFor repeats Query until it returns at least one sample, failing the
// test after timeout.
func (r *Receiver) WaitFor(t testing.TB, expr string, timeout time.Duration) []Sample {
	t.Helper()
	return waitForSamples(t, expr, timeout, func() []Sample { return r.Query(t, expr) })
}

// String names the receiver in test output.
func (r *Receiver) String() string { return fmt.Sprintf("%s at %s", r.Name, r.URL) }
