package backendtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Every server test writes one datapoint through a plain socket, the way a
// bucky3 destination would, and reads it back through the helper. They run in
// parallel: most of the time is spent waiting for servers.

func TestPrometheus(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, "# TYPE backendtest_up untyped\nbackendtest_up{value=\"count\"} 42.5\n")
	})}
	go func() { _ = srv.Serve(ln) }() // returns ErrServerClosed at cleanup
	t.Cleanup(func() { srv.Close() })

	p := StartPrometheus(t, ln.Addr().String())
	got := p.WaitFor(t, "backendtest_up", 20*time.Second)
	if len(got) != 1 || got[0].Value != 42.5 || got[0].Labels["value"] != "count" ||
		got[0].Labels["job"] != "target" || got[0].Labels["__name__"] != "backendtest_up" {
		t.Fatalf("got %+v, want one backendtest_up{job=target,value=count} 42.5", got)
	}
	if got := p.Query(t, "scalar(backendtest_up) * 2"); len(got) != 1 || got[0].Value != 85 {
		t.Fatalf("scalar query: got %+v, want 85", got)
	}
	if got := p.Query(t, "absent_metric_name"); len(got) != 0 {
		t.Fatalf("absent metric: got %+v", got)
	}
}

func TestPromtool(t *testing.T) {
	t.Parallel()
	f := func(exposition string, wantCode int) {
		t.Helper()
		cmd := exec.Command(Promtool(t), "check", "metrics")
		cmd.Stdin = strings.NewReader(exposition)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != wantCode {
			t.Fatalf("promtool check metrics %q: exit %d, want %d: %s", exposition, code, wantCode, out)
		}
	}
	f("# HELP a_total A.\n# TYPE a_total counter\na_total 1\n", 0)
	f("# TYPE a counter\na 1\n", 3) // lint only: no HELP, no _total
	f("a{b=\"c\" 1\n", 1)           // parse error
}

func TestInfluxDB(t *testing.T) {
	t.Parallel()
	i := StartInfluxDB(t)
	if rows := i.Query(t, "SELECT * FROM cpu"); len(rows) != 0 {
		t.Fatalf("fresh database: got %+v", rows)
	}
	ts := time.Now().UnixNano()
	send(t, "udp", i.UDPAddr, fmt.Sprintf("cpu,host=a value=1.5,n=2i,s=\"x y\" %d\n", ts))

	rows := i.WaitFor(t, "SELECT * FROM cpu", 10*time.Second)
	if len(rows) != 1 || rows[0].Measurement != "cpu" || len(rows[0].Values) != 1 {
		t.Fatalf("got %+v, want one cpu series with one point", rows)
	}
	r := rows[0]
	want := map[string]any{"time": ts, "host": "a", "value": 1.5, "n": 2.0, "s": "x y"}
	for col, w := range want {
		if got := r.Column(col); len(got) != 1 || got[0] != w {
			t.Errorf("column %s: got %#v, want %#v", col, got, w)
		}
	}
	grouped := i.Query(t, "SELECT last(value) FROM cpu GROUP BY host")
	if len(grouped) != 1 || grouped[0].Tags["host"] != "a" {
		t.Fatalf("GROUP BY host: got %+v", grouped)
	}
}

func TestVictoriaMetrics(t *testing.T) {
	t.Parallel()
	v := StartVictoriaMetrics(t)
	now := time.Now()
	send(t, "udp", v.InfluxAddr, fmt.Sprintf("m,host=a value=1 %d\n", now.UnixNano()))
	send(t, "tcp", v.InfluxAddr, fmt.Sprintf("m,host=b value=2 %d\n", now.UnixNano()))
	send(t, "tcp", v.GraphiteAddr, fmt.Sprintf("a.b.c 3 %d\n", now.Unix()))

	f := func(expr string, want float64, labels ...string) {
		t.Helper()
		got := v.WaitFor(t, expr, 10*time.Second)
		if len(got) != 1 || got[0].Value != want {
			t.Fatalf("%s: got %+v, want one sample %v", expr, got, want)
		}
		for i := 0; i < len(labels); i += 2 {
			if got[0].Labels[labels[i]] != labels[i+1] {
				t.Fatalf("%s: got labels %v, want %s=%q", expr, got[0].Labels, labels[i], labels[i+1])
			}
		}
	}
	f(`m_value{host="a"}`, 1, "__name__", "m_value")
	f(`m_value{host="b"}`, 2)
	f(`{__name__="a.b.c"}`, 3)
}

func TestCarbon(t *testing.T) {
	t.Parallel()
	c := StartCarbon(t)
	if got := c.Fetch(t, "bucky.test.value", time.Now().Add(-time.Minute), time.Now()); got != nil {
		t.Fatalf("before any write: got %+v", got)
	}
	ts := time.Now().Add(-2 * time.Second).Truncate(time.Second)
	send(t, "tcp", c.Addr, fmt.Sprintf("bucky.test.value 3.5 %d\n", ts.Unix()))

	got := c.WaitFor(t, "bucky.test.value", 15*time.Second)
	if len(got) != 1 || got[0].Value != 3.5 || !got[0].Time.Equal(ts) {
		t.Fatalf("got %+v, want one point 3.5 at %v (1 s resolution)", got, ts)
	}
	// The 10 s archive answers a range older than the 1 h one covers.
	if got := c.Fetch(t, "bucky.test.value", ts.Add(-2*time.Hour), ts.Add(time.Minute)); len(got) != 1 || got[0].Value != 3.5 {
		t.Fatalf("10 s archive: got %+v", got)
	}
}

func TestVictoriaLogs(t *testing.T) {
	t.Parallel()
	v := StartVictoriaLogs(t)
	ts := time.Now().Add(-time.Minute).UnixMilli()
	body := fmt.Sprintf("{\"index\":{\"_index\":\"x\"}}\n{\"timestamp\":%d,\"bucket\":\"cpu\",\"value\":1.5,\"message\":\"a\\nb\"}\n", ts)
	req, err := http.NewRequest(http.MethodPost, v.BulkBase+"/_bulk?_time_field=timestamp", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	do(t, req)

	got := v.WaitFor(t, "bucket:cpu | fields _time, bucket, value, message", 10*time.Second)
	if len(got) != 1 {
		t.Fatalf("got %+v, want one entry", got)
	}
	e := got[0]
	wantTime := time.UnixMilli(ts).UTC().Format(time.RFC3339Nano)
	if e["bucket"] != "cpu" || e["value"] != "1.5" || e["message"] != "a\nb" || e["_time"] != wantTime {
		t.Fatalf("got %v, want bucket=cpu value=1.5 message=a\\nb _time=%s", e, wantTime)
	}
	if got := v.Query(t, "bucket:nosuch"); len(got) != 0 {
		t.Fatalf("no match: got %+v", got)
	}
}

func TestJournal(t *testing.T) {
	t.Parallel()
	journalctl := findBinary(t, "journalctl")
	file := filepath.Join(t.TempDir(), "test.journal")
	const boot = "0123456789abcdef0123456789abcdef"
	WriteJournal(t, file, []map[string]string{
		{"__REALTIME_TIMESTAMP": "1700000000000001", "_BOOT_ID": boot, "MESSAGE": "first", "_PID": "42", "PRIORITY": "6"},
		{"__REALTIME_TIMESTAMP": "1700000000000002", "_BOOT_ID": boot, "MESSAGE": "Traceback:\n  line 1\n", "_SYSTEMD_UNIT": "x.service"},
	})
	// A second write appends: a reader following the file sees it grow.
	WriteJournal(t, file, []map[string]string{{"_BOOT_ID": boot, "MESSAGE": "third"}})

	out, err := exec.Command(journalctl, "--file="+file, "-o", "json", "--no-pager").Output()
	if err != nil {
		t.Fatalf("journalctl: %v", err)
	}
	var got []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var e map[string]any
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("journalctl output %q: %v", sc.Bytes(), err)
		}
		got = append(got, e)
	}
	if len(got) != 3 {
		t.Fatalf("got %d entries, want 3: %s", len(got), out)
	}
	f := func(i int, key, want string) {
		t.Helper()
		if got[i][key] != want {
			t.Errorf("entry %d %s: got %#v, want %q", i, key, got[i][key], want)
		}
	}
	f(0, "MESSAGE", "first")
	f(0, "_PID", "42")
	f(0, "__REALTIME_TIMESTAMP", "1700000000000001")
	f(0, "_BOOT_ID", boot)
	f(1, "MESSAGE", "Traceback:\n  line 1\n")
	f(1, "_SYSTEMD_UNIT", "x.service")
	f(2, "MESSAGE", "third")
	if ts, _ := strconv.ParseInt(fmt.Sprint(got[2]["__REALTIME_TIMESTAMP"]), 10, 64); time.Since(time.UnixMicro(ts)) > time.Hour {
		t.Errorf("entry without a timestamp: got %v, want about now", got[2]["__REALTIME_TIMESTAMP"])
	}
}

// TestFreePort: distinct ports below the ephemeral range, each reserved
// against every other backendtest user until the test ends. Whether the
// port is still free afterwards is not asserted: any process on the
// machine may take it in between, which is why servers get theirs last.
func TestFreePort(t *testing.T) {
	t.Parallel()
	seen := map[int]bool{}
	for range 20 {
		p := FreePort(t)
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
		if p >= ephemeralLow() {
			t.Fatalf("port %d is in the ephemeral range", p)
		}
		lock, err := os.Open(filepath.Join(os.TempDir(), "backendtest-ports", strconv.Itoa(p)))
		if err != nil {
			t.Fatal(err)
		}
		if syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			t.Errorf("port %d is not reserved", p)
		}
		lock.Close()
	}
}

// TestPortFree: a port bound for TCP or for UDP is not free.
func TestPortFree(t *testing.T) {
	t.Parallel()
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	ul, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	for _, port := range []int{tl.Addr().(*net.TCPAddr).Port, ul.LocalAddr().(*net.UDPAddr).Port} {
		if portFree(port) {
			t.Errorf("port %d is in use but portFree says free", port)
		}
	}
}

func TestMissingBinary(t *testing.T) {
	t.Parallel()
	r := &fatalRecorder{TB: t}
	var wg sync.WaitGroup
	wg.Go(func() { findBinary(r, "backendtest-no-such-server") })
	wg.Wait()
	if want := "backendtest-no-such-server not installed: run scripts/backends.sh install"; r.msg != want {
		t.Fatalf("got %q, want %q", r.msg, want)
	}
}

// fatalRecorder stands in for a test whose failure is the expected outcome.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// send writes payload to addr over network with a plain socket.
func send(t *testing.T, network, addr, payload string) {
	t.Helper()
	c, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(payload)); err != nil {
		t.Fatal(err)
	}
}
