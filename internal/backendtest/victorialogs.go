package backendtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// VictoriaLogs is a running VictoriaLogs, used as the Elasticsearch _bulk
// receiver. It needs Content-Type application/x-ndjson and the time field
// named by the _time_field query argument or the VL-Time-Field header; it
// drops _index and _id and never reports per-item errors.
type VictoriaLogs struct {
	BulkBase string // http://127.0.0.1:PORT/insert/elasticsearch; POST BulkBase+"/_bulk"
	URL      string // base URL, http://127.0.0.1:PORT
}

// StartVictoriaLogs starts VictoriaLogs.
func StartVictoriaLogs(t testing.TB) *VictoriaLogs {
	t.Helper()
	bin := findBinary(t, "victoria-logs")
	dir := t.TempDir()
	port := FreePort(t)
	v := &VictoriaLogs{URL: "http://" + hostPort(port)}
	v.BulkBase = v.URL + "/insert/elasticsearch"
	proc := startProcess(t, "victoria-logs", bin, nil,
		"-storageDataPath="+dir,
		"-httpListenAddr="+hostPort(port),
		"-loggerLevel=WARN",
	)
	proc.waitReady(t, httpReady(v.URL+"/health", 200))
	return v
}

// Query flushes ingested logs to searchable storage and runs the LogsQL
// query, returning one map per matching entry (VictoriaLogs renders every
// field as a string; _time is RFC 3339). Example:
// `* | fields _time, bucket, value`.
func (v *VictoriaLogs) Query(t testing.TB, logsql string) []map[string]string {
	t.Helper()
	get(t, v.URL+"/internal/force_flush")
	req, err := http.NewRequest(http.MethodPost, v.URL+"/select/logsql/query",
		strings.NewReader(url.Values{"query": {logsql}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	body := do(t, req)
	var entries []map[string]string
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, len(body)+1)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var e map[string]string
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("logsql %q: %v: %s", logsql, err, sc.Bytes())
		}
		entries = append(entries, e)
	}
	return entries
}

// WaitFor repeats Query until it returns at least one entry, failing the test
// after timeout.
func (v *VictoriaLogs) WaitFor(t testing.TB, logsql string, timeout time.Duration) []map[string]string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if e := v.Query(t, logsql); len(e) > 0 {
			return e
		}
		if time.Now().After(deadline) {
			t.Fatalf("logsql %q: no entries after %v", logsql, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
