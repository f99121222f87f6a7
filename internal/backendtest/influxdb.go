package backendtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// InfluxDatabase is the database the UDP listener writes to.
const InfluxDatabase = "agent"

// InfluxDB is a running InfluxDB 1.x server with a UDP listener.
type InfluxDB struct {
	UDPAddr string // 127.0.0.1:PORT; line protocol, nanosecond timestamps, into InfluxDatabase
	HTTPURL string // base URL, http://127.0.0.1:PORT
}

// Row is one series of a query result.
type Row struct {
	Measurement string            `json:"name"`
	Tags        map[string]string `json:"tags"`    // the GROUP BY tags; nil without GROUP BY
	Columns     []string          `json:"columns"` // SELECT puts "time" first
	// Values holds one slice per point, in Columns order. The "time" column
	// is an int64 of nanoseconds (a float64 would round it); other numbers
	// are float64, strings string, booleans bool, missing values nil.
	Values [][]any `json:"values"`
}

// Column returns the values of column name across the series' points, or nil
// when the series has no such column.
func (r Row) Column(name string) []any {
	for i, c := range r.Columns {
		if c != name {
			continue
		}
		col := make([]any, len(r.Values))
		for j, v := range r.Values {
			if i < len(v) {
				col[j] = v[i]
			}
		}
		return col
	}
	return nil
}

// StartInfluxDB starts InfluxDB with its HTTP API and a UDP listener sharing
// one port, and creates InfluxDatabase. UDP writes are batched for at most
// 10 ms before they become visible; a datagram with one bad line is dropped
// whole.
func StartInfluxDB(t testing.TB) *InfluxDB {
	t.Helper()
	bin := findBinary(t, "influxd")
	dir := t.TempDir()
	port, rpcPort := FreePort(t), FreePort(t)
	config := filepath.Join(dir, "influxdb.conf")
	writeFile(t, config, fmt.Sprintf(`reporting-disabled = true
bind-address = %[1]q

[meta]
  dir = %[2]q

[data]
  dir = %[3]q
  wal-dir = %[4]q
  query-log-enabled = false

[monitor]
  store-enabled = false

[http]
  bind-address = %[5]q
  log-enabled = false

[[udp]]
  enabled = true
  bind-address = %[5]q
  database = %[6]q
  batch-timeout = "10ms"
`, hostPort(rpcPort), filepath.Join(dir, "meta"), filepath.Join(dir, "data"),
		filepath.Join(dir, "wal"), hostPort(port), InfluxDatabase))
	i := &InfluxDB{UDPAddr: hostPort(port), HTTPURL: "http://" + hostPort(port)}
	proc := startProcess(t, "influxd", bin, nil, "-config", config)
	proc.waitReady(t, httpReady(i.HTTPURL+"/ping", http.StatusNoContent))
	// The UDP listener only creates its database on its first write; create
	// it now so that queries before any write succeed.
	i.Query(t, "CREATE DATABASE "+InfluxDatabase)
	return i
}

// Query runs q against InfluxDatabase with nanosecond epochs and returns
// every series of every statement, failing the test on a statement error.
func (i *InfluxDB) Query(t testing.TB, q string) []Row {
	t.Helper()
	form := url.Values{"db": {InfluxDatabase}, "q": {q}, "epoch": {"ns"}}
	req, err := http.NewRequest(http.MethodPost, i.HTTPURL+"/query", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	body := do(t, req)
	var resp struct {
		Results []struct {
			Error  string `json:"error"`
			Series []Row  `json:"series"`
		} `json:"results"`
		Error string `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&resp); err != nil {
		t.Fatalf("influx query %q: %v: %s", q, err, body)
	}
	if resp.Error != "" {
		t.Fatalf("influx query %q: %s", q, resp.Error)
	}
	var rows []Row
	for _, res := range resp.Results {
		if res.Error != "" {
			t.Fatalf("influx query %q: %s", q, res.Error)
		}
		for _, r := range res.Series {
			for _, v := range r.Values {
				for k, x := range v {
					n, ok := x.(json.Number)
					if !ok {
						continue
					}
					if k < len(r.Columns) && r.Columns[k] == "time" {
						v[k], err = n.Int64()
					} else {
						v[k], err = n.Float64()
					}
					if err != nil {
						t.Fatalf("influx query %q: value %s: %v", q, n, err)
					}
				}
			}
			rows = append(rows, r)
		}
	}
	return rows
}

// WaitFor repeats Query until it returns at least one series, failing the
// test after timeout. UDP writes are asynchronous: a datagram sent just
// before Query may not have been written yet.
func (i *InfluxDB) WaitFor(t testing.TB, q string, timeout time.Duration) []Row {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if rows := i.Query(t, q); len(rows) > 0 {
			return rows
		}
		if time.Now().After(deadline) {
			t.Fatalf("influx query %q: no series after %v", q, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
