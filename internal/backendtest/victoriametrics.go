package backendtest

import (
	"testing"
	"time"
)

// VictoriaMetrics is a running single-node VictoriaMetrics that ingests the
// Influx line protocol and Graphite plaintext. Influx `m,host=a value=1`
// becomes the series m_value{host="a"}.
type VictoriaMetrics struct {
	InfluxAddr   string // 127.0.0.1:PORT, Influx line protocol over UDP and TCP
	GraphiteAddr string // 127.0.0.1:PORT, Graphite plaintext over TCP (and UDP)
	URL          string // base URL, http://127.0.0.1:PORT
}

// StartVictoriaMetrics starts VictoriaMetrics with a retention that accepts
// any past timestamp and no query latency offset, so that Query sees a
// sample as soon as it is flushed.
func StartVictoriaMetrics(t testing.TB) *VictoriaMetrics {
	t.Helper()
	bin := findBinary(t, "victoria-metrics")
	dir := t.TempDir()
	httpPort, influxPort, graphitePort := FreePort(t), FreePort(t), FreePort(t)
	v := &VictoriaMetrics{
		InfluxAddr:   hostPort(influxPort),
		GraphiteAddr: hostPort(graphitePort),
		URL:          "http://" + hostPort(httpPort),
	}
	proc := startProcess(t, "victoria-metrics", bin, nil,
		"-storageDataPath="+dir,
		"-httpListenAddr="+hostPort(httpPort),
		"-influxListenAddr="+v.InfluxAddr,
		"-graphiteListenAddr="+v.GraphiteAddr,
		"-search.latencyOffset=0s",
		"-retentionPeriod=100y",
		"-loggerLevel=WARN",
	)
	proc.waitReady(t, httpReady(v.URL+"/health", 200))
	return v
}

// Query flushes ingested data to searchable storage (without it a sample
// becomes visible only after 10–12 s) and runs an instant query at the
// current time. Samples written with old timestamps need a range function
// such as last_over_time(m[1h]).
func (v *VictoriaMetrics) Query(t testing.TB, expr string) []Sample {
	t.Helper()
	get(t, v.URL+"/internal/force_flush")
	return promQuery(t, v.URL, expr)
}

// WaitFor repeats Query until it returns at least one sample, failing the
// test after timeout. UDP and TCP ingestion is asynchronous: a sample sent
// just before Query may not have been parsed yet.
func (v *VictoriaMetrics) WaitFor(t testing.TB, expr string, timeout time.Duration) []Sample {
	t.Helper()
	return waitForSamples(t, expr, timeout, func() []Sample { return v.Query(t, expr) })
}
