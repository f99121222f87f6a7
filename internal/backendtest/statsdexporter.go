package backendtest

import (
	"testing"
)

// StatsdExporter is a running prometheus/statsd_exporter, the exporter
// bucky3's typed layout is compared with.
type StatsdExporter struct {
	UDP     string // host:port its StatsD UDP listener reads
	Metrics string // http://127.0.0.1:PORT/metrics
}

// StartStatsdExporter starts statsd_exporter with the mapping file at
// mapping ("" for none), listening on UDP only.
func StartStatsdExporter(t testing.TB, mapping string) *StatsdExporter {
	t.Helper()
	bin := findBinary(t, "statsd_exporter")
	web, udp := FreePort(t), FreePort(t)
	s := &StatsdExporter{UDP: hostPort(udp), Metrics: "http://" + hostPort(web) + "/metrics"}
	args := []string{
		"--web.listen-address=" + hostPort(web),
		"--statsd.listen-udp=" + s.UDP,
		"--statsd.listen-tcp=",
		"--log.level=warn",
	}
	if mapping != "" {
		args = append(args, "--statsd.mapping-config="+mapping)
	}
	proc := startProcess(t, "statsd_exporter", bin, nil, args...)
	proc.waitReady(t, httpReady(s.Metrics, 200))
	return s
}
