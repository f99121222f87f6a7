package influxdb

import (
	"fmt"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/engine/enginetest"
	"github.com/bucky3/bucky3/internal/backendtest"
)

// run starts a client for o and returns its inbox, its counters and a
// function that closes the inbox and waits for Run to return.
func run(t *testing.T, o Options) (chan<- *engine.Batch, *engine.Stats, func() error) {
	t.Helper()
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	stats := engine.NewStats()
	c, err := New(engine.Module{Name: "influx", Stats: stats}, o)
	if err != nil {
		t.Fatal(err)
	}
	in, stop := enginetest.RunDestination(t, c, 10*time.Second)
	return in, stats, stop
}

func listenUDP(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readDatagrams reads until nothing arrives for a moment; the client has
// already returned, so everything sent is in the socket buffer.
func readDatagrams(t *testing.T, c *net.UDPConn) []string {
	t.Helper()
	var out []string
	buf := make([]byte, 65536)
	for {
		if err := c.SetReadDeadline(time.Now().Add(200 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		n, err := c.Read(buf)
		if err != nil {
			return out
		}
		out = append(out, string(buf[:n]))
	}
}

func TestClient_Datagrams(t *testing.T) {
	a, b := listenUDP(t), listenUDP(t)
	o := DefaultOptions()
	o.RemoteHosts = []string{a.LocalAddr().String(), b.LocalAddr().String()}
	o.ChunkSize = 10
	o.MaxDatagramSize = 200
	in, stats, stop := run(t, o)

	var ms []engine.Metric
	for i := range 40 {
		m := engine.Metric{Bucket: "m", Tags: []engine.Tag{tag("i", fmt.Sprint(i))}, Fields: []engine.Field{num("v", float64(i))}}
		if i%7 == 3 {
			m.Fields = []engine.Field{num("v", math.NaN())} // nothing to write
		}
		if i == 20 {
			m.Fields = append(m.Fields, engine.Field{Name: "long", Value: engine.String(strings.Repeat("x", 300))})
		}
		ms = append(ms, m)
	}
	in <- &engine.Batch{Metrics: ms}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, conn := range []*net.UDPConn{a, b} {
		lines := 0
		for _, d := range readDatagrams(t, conn) {
			n := strings.Count(d, "\n")
			if n > 10 || len(d) > 200 {
				t.Errorf("datagram of %d bytes with %d lines (chunk_size 10, max 200 bytes)", len(d), n)
			}
			lines += n
		}
		if lines != 33 {
			t.Errorf("%d lines received, want 33", lines)
		}
	}
	f := func(name string, want uint64) {
		t.Helper()
		if got := stats.Counter(name).Load(); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
	f("metrics_received", 40)
	f("metrics_sent", 33)
	f("metrics_dropped", 7)
	f("metrics_dropped_no_fields", 6)
	f("metrics_dropped_too_large", 1) // the 300-byte line: never sent, never retried
}

func TestClient_UnresolvableHost(t *testing.T) {
	o := DefaultOptions()
	o.RemoteHosts = []string{"nonexistent.invalid"}
	o.FlushInterval = 0.02
	o.MaxFlushInterval = 0.05
	in, stats, stop := run(t, o)
	in <- &engine.Batch{Metrics: []engine.Metric{{Bucket: "m", Fields: []engine.Field{num("v", 1)}}}}
	deadline := time.Now().Add(10 * time.Second)
	for stats.Counter("connection_errors").Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatal("no connection errors counted for an unresolvable host")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := stats.Gauge("metrics_buffered").Load(); got != 1 {
		t.Fatalf("metrics_buffered = %d while the host does not resolve, want 1", got)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := stats.Counter("metrics_dropped_shutdown").Load(); got != 1 {
		t.Fatalf("metrics_dropped_shutdown = %d, want 1", got)
	}
}

// testMetrics exercise escaping, types and timestamps against real servers.
func testMetrics(ts int64) []engine.Metric {
	return []engine.Metric{
		{Bucket: "bucky_test", Tags: []engine.Tag{tag("host", "web 1,a=b"), tag("zone", "eu")},
			Fields: []engine.Field{num("value", 42.5), num("other", -1e-3)}, Timestamp: ts},
		{Bucket: "bucky_test", Tags: []engine.Tag{tag("host", "plain"), tag("skip", "")},
			Fields: []engine.Field{num("value", 7), num("nan", math.NaN())}, Timestamp: ts + 1},
		{Bucket: "bucky test,2", Fields: []engine.Field{{Name: "msg", Value: engine.String(`say "hi" \o/`)}, {Name: "ok", Value: engine.Bool(true)}}, Timestamp: ts},
	}
}

func TestClient_InfluxDB(t *testing.T) {
	db := backendtest.StartInfluxDB(t)
	o := DefaultOptions()
	o.RemoteHosts = []string{db.UDPAddr}
	in, stats, stop := run(t, o)
	ts := time.Now().Add(-time.Minute).UnixMilli()
	in <- &engine.Batch{Metrics: testMetrics(ts)}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := stats.Counter("metrics_sent").Load(); got != 3 {
		t.Fatalf("metrics_sent = %d, want 3", got)
	}
	rows := db.WaitFor(t, `SELECT "value", "other" FROM "bucky_test" GROUP BY "host", "zone"`, 10*time.Second)
	got := map[string]string{}
	for _, r := range rows {
		got[r.Tags["host"]+"|"+r.Tags["zone"]] = fmt.Sprint(r.Values)
	}
	want := map[string]string{
		"web 1,a=b|eu": fmt.Sprint([][]any{{ts * 1e6, 42.5, -1e-3}}),
		"plain|":       fmt.Sprint([][]any{{(ts + 1) * 1e6, 7.0, nil}}),
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("bucky_test read back as\n%v\nwant\n%v", got, want)
	}
	rows = db.WaitFor(t, `SELECT "msg", "ok" FROM "bucky test,2"`, 10*time.Second)
	if v := fmt.Sprint(rows[0].Values); v != fmt.Sprint([][]any{{ts * 1e6, `say "hi" \o/`, true}}) {
		t.Fatalf(`"bucky test,2" read back as %v`, v)
	}
}

func TestClient_VictoriaMetrics(t *testing.T) {
	vm := backendtest.StartVictoriaMetrics(t)
	o := DefaultOptions()
	o.RemoteHosts = []string{vm.InfluxAddr}
	in, _, stop := run(t, o)
	ts := time.Now().Add(-time.Minute).UnixMilli()
	in <- &engine.Batch{Metrics: testMetrics(ts)}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	samples := vm.WaitFor(t, `last_over_time(bucky_test_value[1h])`, 10*time.Second)
	got := map[string]float64{}
	for _, s := range samples {
		got[s.Labels["host"]] = s.Value
	}
	if len(got) != 2 || got["web 1,a=b"] != 42.5 || got["plain"] != 7 {
		t.Fatalf("bucky_test_value read back as %v", samples)
	}
}

// poisoned returns n good metrics (bucket "good", field v = i, each its own
// timestamp) with poison put at index at.
func poisoned(n, at int, poison engine.Metric, ts int64) []engine.Metric {
	var ms []engine.Metric
	for i := range n {
		if i == at {
			ms = append(ms, poison)
		}
		ms = append(ms, engine.Metric{Bucket: "good", Tags: []engine.Tag{tag("i", fmt.Sprint(i))}, Fields: []engine.Field{num("v", float64(i))}, Timestamp: ts + int64(i)})
	}
	return ms
}

// waitForGood polls InfluxDB until it holds want points of "good" and
// checks that each one is there, with its value.
func waitForGood(t *testing.T, db *backendtest.InfluxDB, want int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		rows := db.Query(t, `SELECT "v" FROM "good" GROUP BY "i"`)
		if len(rows) == want {
			for _, r := range rows {
				if v := r.Column("v"); len(v) != 1 || fmt.Sprint(v[0]) != r.Tags["i"] {
					t.Fatalf("good,i=%s read back as %v", r.Tags["i"], v)
				}
			}
			return
		}
		if len(rows) > want || time.Now().After(deadline) {
			t.Fatalf("InfluxDB holds %d good series, want %d", len(rows), want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The reproduction: a tag of 65000 spaces doubles when escaped. The
// line is longer than max_datagram_size: dropped and counted, and every
// good line around it reaches InfluxDB in the same push.
func TestClient_InfluxDBPoisonTooLarge(t *testing.T) {
	db := backendtest.StartInfluxDB(t)
	o := DefaultOptions()
	o.RemoteHosts = []string{db.UDPAddr}
	o.ChunkSize = 20
	in, stats, stop := run(t, o)
	ts := time.Now().Add(-time.Minute).UnixMilli()
	poison := engine.Metric{Bucket: "poison", Tags: []engine.Tag{tag("a", strings.Repeat(" ", 65000)+"x")}, Fields: []engine.Field{num("value", 1)}}
	in <- &engine.Batch{Metrics: poisoned(100, 37, poison, ts)}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	waitForGood(t, db, 100)
	want := map[string]uint64{"metrics_received": 101, "metrics_sent": 100, "metrics_dropped": 1, "metrics_dropped_too_large": 1, "connection_errors": 0}
	for name, n := range want {
		if got := stats.Counter(name).Load(); got != n {
			t.Errorf("%s = %d, want %d", name, got, n)
		}
	}
	if rows := db.Query(t, `SELECT * FROM "poison"`); len(rows) != 0 {
		t.Fatalf("the poison line reached InfluxDB: %v", rows)
	}
}

// A datagram the kernel refuses (EMSGSIZE: above 65507 bytes, possible
// only with max_datagram_size set past the UDP limit, or over a path that
// refuses fragments) is a permanent failure: push.Run bisects the chunk,
// drops the line that fails alone and delivers the others.
func TestClient_InfluxDBPoisonUnsendable(t *testing.T) {
	db := backendtest.StartInfluxDB(t)
	o := DefaultOptions()
	o.RemoteHosts = []string{db.UDPAddr}
	o.ChunkSize = 7
	o.FlushInterval = 0.05
	stats := engine.NewStats()
	o.MaxDatagramSize = 70000 // past Validate's bound, so that the kernel decides
	c, err := New(engine.Module{Name: "influx", Stats: stats}, o)
	if err != nil {
		t.Fatal(err)
	}
	in, stop := enginetest.RunDestination(t, c, 10*time.Second)
	ts := time.Now().Add(-time.Minute).UnixMilli()
	poison := engine.Metric{Bucket: "poison", Fields: []engine.Field{{Name: "s", Value: engine.String(strings.Repeat("y", 66000))}}}
	in <- &engine.Batch{Metrics: poisoned(50, 22, poison, ts)}
	waitForGood(t, db, 50)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{"metrics_received": 51, "metrics_sent": 50, "metrics_dropped": 1, "metrics_dropped_unsendable": 1, "connection_errors": 0, "metrics_dropped_shutdown": 0}
	for name, n := range want {
		if got := stats.Counter(name).Load(); got != n {
			t.Errorf("%s = %d, want %d", name, got, n)
		}
	}
}
