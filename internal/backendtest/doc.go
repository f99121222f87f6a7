// Package backendtest starts the real servers that bucky3's destinations and
// sources talk to — Prometheus (also as a remote-write receiver), InfluxDB 1.x,
// VictoriaMetrics (also as a remote-write and OTLP receiver), Graphite carbon,
// VictoriaLogs (the Elasticsearch _bulk stand-in) and systemd-journal-remote —
// for one test at a time, and reads back what they stored.
//
// Each Start function runs its server on 127.0.0.1 with ports no other
// backendtest user holds and a data directory from t.TempDir, waits up to 30 s
// for it to become ready, and registers a t.Cleanup that kills the server's
// process group and waits for it. The server's stdout and stderr are kept in
// memory and written to the test log when the test fails.
//
// Binaries come from .cache/backends under the repository root (see
// scripts/backends.sh), then from PATH. A missing binary fails the test
// instead of skipping it: the servers are part of the test environment, and a
// skipped backend test would pass without proving anything.
//
// The package is for tests only and assumes Linux.
package backendtest
