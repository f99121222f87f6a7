package statsd_test

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bucky3/bucky3/collectors/internal/udpsource"
	"github.com/bucky3/bucky3/collectors/statsd"
	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/engine/enginetest"
)

// running is a statsd server on a loopback port, fed by a UDP client.
type running struct {
	srv    *statsd.Server
	stats  *engine.Stats
	rec    *enginetest.Recorder
	addrs  udpsource.Addrs
	conn   net.Conn // to addrs.UDP; nil without UDP
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, configure func(*statsd.Options)) *running {
	t.Helper()
	o := statsd.DefaultOptions()
	o.LocalHost = "127.0.0.1:0"
	o.Readers = 2
	o.FlushInterval = 3600 // tests flush by stopping the server
	o.RandomizeStartup = false
	if configure != nil {
		configure(&o)
	}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	stats := engine.NewStats()
	srv, err := statsd.New(engine.Module{Name: "statsd", Log: slog.New(slog.DiscardHandler), Stats: stats}, o)
	if err != nil {
		t.Fatal(err)
	}
	r := &running{srv: srv, stats: stats, rec: &enginetest.Recorder{}, done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- srv.Run(ctx, r.rec) }()
	addrCtx, cancelAddr := context.WithTimeout(ctx, 10*time.Second)
	defer cancelAddr()
	r.addrs, err = srv.Addrs(addrCtx)
	if err != nil {
		t.Fatal(err)
	}
	if r.addrs.UDP != "" {
		if r.conn, err = net.Dial("udp", r.addrs.UDP); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		cancel()
		if r.conn != nil {
			r.conn.Close()
		}
	})
	return r
}

func (r *running) send(t *testing.T, datagrams ...string) {
	t.Helper()
	for _, d := range datagrams {
		if _, err := r.conn.Write([]byte(d)); err != nil {
			t.Fatal(err)
		}
	}
}

// waitLines waits until the server has read n lines, so a stop flushes
// everything that was sent.
func (r *running) waitLines(t *testing.T, n uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for r.stats.Counter("lines_received").Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("server read %d lines, want %d", r.stats.Counter("lines_received").Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// stop cancels the server and returns what its final flush emitted.
func (r *running) stop(t *testing.T) []engine.Metric {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("Run returned %v after cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	return r.rec.Metrics()
}

func find(t *testing.T, ms []engine.Metric, bucket string, tags ...string) engine.Metric {
	t.Helper()
	for _, m := range ms {
		if m.Bucket != bucket {
			continue
		}
		ok := true
		for i := 0; i < len(tags); i += 2 {
			if v, _ := m.Tag(tags[i]); v != tags[i+1] {
				ok = false
			}
		}
		if ok {
			return m
		}
	}
	t.Fatalf("no %s metric with tags %v in %+v", bucket, tags, ms)
	return engine.Metric{}
}

func field(t *testing.T, m engine.Metric, name string) float64 {
	t.Helper()
	v, ok := m.Field(name)
	if !ok {
		t.Fatalf("%s has no field %s: %+v", m.Bucket, name, m.Fields)
	}
	return v.Num
}

func TestServer_ReferenceCounters(t *testing.T) {
	// rate is count over the interval, from the table's start in Run to
	// the flush after the cancel. The test cannot read that interval, but
	// it can bound it: it began between before and started and ended
	// between stopping and stopped. Letting it last 200 ms, and at least
	// four times the setup, makes the bounds closer than a factor of 1.5
	// apart, so a rate off by 2×, per millisecond or per interval fails,
	// and every series must show the same interval.
	before := time.Now()
	r := start(t, nil)
	started := time.Now()
	r.send(t, "gorm:1.5|c\ngorm:3|c", "gorm:0.5|c", "gurm:1|c|@0.1\nform:10|c|@0.2")
	r.waitLines(t, 5)
	time.Sleep(time.Until(started.Add(max(200*time.Millisecond, 4*started.Sub(before)))))
	stopping := time.Now()
	ms := r.stop(t)
	stopped := time.Now()
	longest, shortest := stopped.Sub(before).Seconds(), stopping.Sub(started).Seconds()
	if longest > 1.5*shortest {
		t.Fatalf("setup and shutdown took %v of %v: the interval is too uncertain to check rates", stopped.Sub(before)-stopping.Sub(started), stopped.Sub(before))
	}
	interval := 0.0
	for name, want := range map[string]float64{"gorm": 5, "gurm": 10, "form": 50} {
		m := find(t, ms, "stats_counters", "name", name)
		if got := field(t, m, "count"); got != want {
			t.Errorf("%s count = %v, want %v", name, got, want)
		}
		got := want / field(t, m, "rate")
		if interval == 0 {
			interval = got
		}
		// The relative 1e-9 only absorbs float rounding.
		if got < shortest*(1-1e-9) || got > longest*(1+1e-9) || math.Abs(got-interval) > 1e-9*interval {
			t.Errorf("%s: count/rate = %v s, want one interval in [%v, %v] for all series (first: %v)", name, got, shortest, longest, interval)
		}
	}
}

// TestServer_AllTypesAndTags runs with one reader, whose table has a
// single stripe, and with two.
func TestServer_AllTypesAndTags(t *testing.T) {
	for _, readers := range []int{1, 2} {
		t.Run(fmt.Sprintf("readers=%d", readers), func(t *testing.T) { allTypesAndTags(t, readers) })
	}
}

func allTypesAndTags(t *testing.T, readers int) {
	r := start(t, func(o *statsd.Options) {
		o.Readers = readers
		o.PercentileThresholds = []float64{50, 100}
	})
	r.send(t,
		"temp:20|g|#room=kitchen\ntemp:+2|g|#room:kitchen",
		"lat:10|ms|#env=prod,host=a\nlat:20|ms|#host=a,env=prod\nlat:30:40|ms|#env=prod,host=a",
		"users:alice|s\nusers:bob|s\nusers:alice|s",
		"req:1|c|#bucket=http_stats|c:0123456789ab",
	)
	r.waitLines(t, 9)
	ms := r.stop(t)
	if got := field(t, find(t, ms, "stats_gauges", "name", "temp", "room", "kitchen"), "value"); got != 22 {
		t.Errorf("gauge with delta = %v, want 22", got)
	}
	p100 := find(t, ms, "stats_timers", "name", "lat", "percentile", "100.0", "env", "prod", "host", "a")
	if field(t, p100, "count") != 4 || field(t, p100, "upper") != 40 || field(t, p100, "mean") != 25 {
		t.Errorf("timer p100: %+v", p100.Fields)
	}
	p50 := find(t, ms, "stats_timers", "name", "lat", "percentile", "50.0")
	if field(t, p50, "count") != 2 || field(t, p50, "upper") != 20 {
		t.Errorf("timer p50: %+v", p50.Fields)
	}
	if got := field(t, find(t, ms, "stats_sets", "name", "users"), "count"); got != 2 {
		t.Errorf("set count = %v, want 2", got)
	}
	req := find(t, ms, "http_stats", "name", "req")
	if id, _ := req.Tag("container_id"); id != "0123456789ab" {
		t.Errorf("|c: field becomes container_id: %+v", req.Tags)
	}
}

// Under the default name rule, classic StatsD names and DogStatsD tag keys
// pass unchanged; whitespace, '|' and control characters still reject.
func TestServer_StatsDNames(t *testing.T) {
	r := start(t, nil)
	r.send(t, "api.requests:1|c|#k.x-y:v\nhttp-5xx/ratio:2|g\nwörld:3|c\nbad name:1|c\nbad|name:1|c\nbad\x01name:1|c")
	r.waitLines(t, 6)
	ms := r.stop(t)
	if got := field(t, find(t, ms, "stats_counters", "name", "api.requests", "k.x-y", "v"), "count"); got != 1 {
		t.Errorf("api.requests count = %v, want 1", got)
	}
	if got := field(t, find(t, ms, "stats_gauges", "name", "http-5xx/ratio"), "value"); got != 2 {
		t.Errorf("http-5xx/ratio = %v, want 2", got)
	}
	if got := field(t, find(t, ms, "stats_counters", "name", "wörld"), "count"); got != 3 {
		t.Errorf("wörld count = %v, want 3", got)
	}
	if n := r.stats.Counter("lines_invalid_bad_name").Load(); n != 3 {
		t.Errorf("lines_invalid_bad_name = %d, want 3", n)
	}
}

// Over real UDP with mapping_config and the typed layout: mapped names and
// labels, typed values, drops counted.
func TestServer_MappingTyped(t *testing.T) {
	r := start(t, func(o *statsd.Options) { o.Layout, o.MappingConfig = "typed", "testdata/mapping.yml" })
	r.send(t, "api.users.requests:1|c|#env:prod\napi.users.requests:2|c|#env:prod", "api.users.latency:12|ms\ndebug.x:1|c\nplain.t:200|ms")
	r.waitLines(t, 5)
	ms := r.stop(t)
	v := func(m engine.Metric) engine.Value {
		t.Helper()
		if len(m.Fields) != 1 || m.Fields[0].Name != "value" {
			t.Fatalf("%s: fields %+v, want one named value", m.Bucket, m.Fields)
		}
		return m.Fields[0].Value
	}
	if got := v(find(t, ms, "api_requests_total", "route", "users", "env", "mapped")); got.Kind != engine.KindCounter || got.Num != 3 {
		t.Errorf("api_requests_total = %+v, want counter 3", got)
	}
	if got := v(find(t, ms, "api_latency_seconds", "route", "users")); got.Kind != engine.KindSummary || got.Dist.Count != 1 || got.Dist.Sum != 0.012 {
		t.Errorf("api_latency_seconds = %+v, want a summary of 0.012", got)
	}
	if got := v(find(t, ms, "plain.t")); got.Kind != engine.KindHistogram || got.Dist.Sum != 0.2 || !slices.Equal(got.Dist.Counts, []uint64{0, 0, 1, 0}) {
		t.Errorf("plain.t = %+v, want a histogram of 0.2 in (0.1, 1]", got)
	}
	if len(ms) != 3 {
		t.Errorf("%d metrics, want 3: %+v", len(ms), ms)
	}
	if n := r.stats.Counter("lines_filtered_mapping").Load(); n != 1 {
		t.Errorf("lines_filtered_mapping = %d, want 1", n)
	}
}

// Every line sent is accounted for: accepted, invalid by reason, or
// skipped.
func TestServer_Accounting(t *testing.T) {
	r := start(t, func(o *statsd.Options) { o.PercentileThresholds, o.NameRule = []float64{100}, "bucky3" })
	lines := map[string]string{
		"ok_a:1|c":                               "",
		"ok_b:2|g|#a=1":                          "",
		"ok_c:3|ms":                              "",
		"bad.name:1|c":                           "bad_name",
		"x:abc|c":                                "bad_value",
		"x:1|q":                                  "bad_type",
		"x:1|c|@2":                               "bad_rate",
		"x:1|c|#a=1,,b=2":                        "bad_tag",
		"x:1|c|#timestamp=12345":                 "timestamp_out_of_window",
		"x:NaN|g":                                "bad_value",
		"_sc|check|0":                            "skipped",
		strings.Repeat("n", 257) + ":1|c":        "name_too_long",
		"x:1|c|#k=" + strings.Repeat("v", 1024):  "tag_too_long",
		"x:1" + strings.Repeat(":1", 64) + "|ms": "too_many_values",
		"_e{1,1}:a|b":                            "skipped",
	}
	var sent, accepted int
	byReason := map[string]int{}
	var batch []string
	for i := range 50 {
		for line, reason := range lines {
			batch = append(batch, line)
			sent++
			switch reason {
			case "":
				accepted++
			default:
				byReason[reason]++
			}
		}
		if i%5 == 4 {
			r.send(t, strings.Join(batch, "\n"))
			batch = batch[:0]
		}
	}
	r.waitLines(t, uint64(sent))
	ms := r.stop(t)
	if len(ms) != 3 {
		t.Fatalf("want the 3 valid series, got %d metrics", len(ms))
	}
	if got := field(t, find(t, ms, "stats_counters", "name", "ok_a"), "count"); got != 50 {
		t.Fatalf("ok_a count = %v, want 50", got)
	}
	var invalid uint64
	for reason, n := range byReason {
		name := "lines_invalid_" + reason
		if reason == "skipped" {
			name = "lines_skipped"
		} else {
			invalid += uint64(n)
		}
		if got := r.stats.Counter(name).Load(); got != uint64(n) {
			t.Errorf("%s = %d, want %d", name, got, n)
		}
	}
	if got := r.stats.Counter("lines_invalid").Load(); got != invalid {
		t.Errorf("lines_invalid = %d, want %d", got, invalid)
	}
	received := r.stats.Counter("lines_received").Load()
	skipped := r.stats.Counter("lines_skipped").Load()
	if received != uint64(sent) || uint64(accepted)+invalid+skipped != received {
		t.Errorf("received %d = accepted %d + invalid %d + skipped %d, sent %d", received, accepted, invalid, skipped, sent)
	}
	if got := r.stats.Counter("packets_received").Load(); got != 10 {
		t.Errorf("packets_received = %d, want 10", got)
	}
}

func compress(t *testing.T, kind string, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w interface {
		Write([]byte) (int, error)
		Close() error
	}
	if kind == "gzip" {
		w = gzip.NewWriter(&buf)
	} else {
		w = zlib.NewWriter(&buf)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestServer_Decompression(t *testing.T) {
	r := start(t, func(o *statsd.Options) { o.TryDecompress = true })
	bomb := compress(t, "zlib", make([]byte, 64<<20))
	if len(bomb) > 65507 {
		t.Fatalf("bomb does not fit a datagram: %d bytes", len(bomb))
	}
	r.send(t,
		string(compress(t, "gzip", []byte("zipped:1|c\nzipped:2|c"))),
		string(compress(t, "zlib", []byte("zipped:4|c"))),
		string(bomb),
		"plain:1|c",
	)
	r.waitLines(t, 4)
	deadline := time.Now().Add(10 * time.Second)
	for r.stats.Counter("packets_dropped_too_large").Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	ms := r.stop(t)
	if got := field(t, find(t, ms, "stats_counters", "name", "zipped"), "count"); got != 7 {
		t.Errorf("zipped count = %v, want 7", got)
	}
	find(t, ms, "stats_counters", "name", "plain")
	if got := r.stats.Counter("packets_dropped_too_large").Load(); got != 1 {
		t.Errorf("zlib bomb: packets_dropped_too_large = %d, want 1", got)
	}
}

func TestServer_MaxSeries(t *testing.T) {
	r := start(t, func(o *statsd.Options) { o.MaxSeries = 100 })
	var lines []string
	for i := range 1000 {
		lines = append(lines, fmt.Sprintf("s%d:1|c", i))
		if len(lines) == 50 {
			r.send(t, strings.Join(lines, "\n"))
			lines = lines[:0]
		}
	}
	r.waitLines(t, 1000)
	// The series gauge follows the table within a second.
	for deadline := time.Now().Add(10 * time.Second); r.stats.Gauge("series").Load() != 100; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("series gauge = %d, want 100", r.stats.Gauge("series").Load())
		}
	}
	ms := r.stop(t)
	if len(ms) != 100 {
		t.Fatalf("want 100 series, got %d", len(ms))
	}
	if got := r.stats.Counter("metrics_dropped_max_series").Load(); got != 900 {
		t.Fatalf("metrics_dropped_max_series = %d, want 900", got)
	}
}

// A line over a limit is dropped alone: the good lines of its datagram
// are aggregated, and the count is exact.
func TestServer_LineLimits(t *testing.T) {
	r := start(t, func(o *statsd.Options) {
		o.Readers = 1
		o.MaxNameLength, o.MaxTagLength, o.MaxValuesPerLine = 8, 8, 2
	})
	long := "toolong_n:1|c" // a name of 9 bytes
	for range 10 {
		r.send(t, strings.Join([]string{"good:1|c", long, "good:2|c|#k=123456", "good:3|c|#k=12345678", "t:1:2|ms", "t:1:2:3|ms", "good:4|c"}, "\n"))
	}
	r.waitLines(t, 70)
	ms := r.stop(t)
	if got := field(t, find(t, ms, "stats_counters", "name", "good", "k", ""), "count"); got != 50 {
		t.Errorf("good count = %v, want 50", got)
	}
	if got := field(t, find(t, ms, "stats_counters", "name", "good", "k", "123456"), "count"); got != 20 {
		t.Errorf("good{k=123456} count = %v, want 20", got)
	}
	for name, want := range map[string]uint64{
		"lines_invalid_name_too_long": 10, "lines_invalid_tag_too_long": 10, "lines_invalid_too_many_values": 10,
		"lines_invalid": 30, "lines_received": 70,
	} {
		if got := r.stats.Counter(name).Load(); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
}

func TestServer_IPv6(t *testing.T) {
	if l, err := net.ListenPacket("udp6", "[::1]:0"); err != nil {
		t.Fatalf("::1 unavailable: %v", err)
	} else {
		l.Close()
	}
	r := start(t, func(o *statsd.Options) { o.LocalHost = "[::1]:0" })
	r.send(t, "v6:3|c")
	r.waitLines(t, 1)
	if got := field(t, find(t, r.stop(t), "stats_counters", "name", "v6"), "count"); got != 3 {
		t.Fatalf("count = %v", got)
	}
}

func TestOptions_Validate(t *testing.T) {
	f := func(configure func(*statsd.Options), want string) {
		t.Helper()
		o := statsd.DefaultOptions()
		configure(&o)
		err := o.Validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("got %v, want an error mentioning %q", err, want)
		}
	}
	f(func(o *statsd.Options) { o.BatchSize = 0 }, "batch_size")
	f(func(o *statsd.Options) { o.MaxPacketSize = 70000 }, "max_packet_size")
	f(func(o *statsd.Options) { o.TimestampWindow = 0 }, "timestamp_window")
	f(func(o *statsd.Options) { o.TimestampWindow = 0.0005 }, "timestamp_window: must be at least 0.001 s, got 0.0005")
	f(func(o *statsd.Options) { o.TimestampWindow = math.NaN() }, "timestamp_window")
	f(func(o *statsd.Options) { o.BatchWait = 0.0001 }, "batch_wait: must be at least 0.001 s")
	f(func(o *statsd.Options) { o.BatchWait = 0.6 }, "batch_wait")
	f(func(o *statsd.Options) { o.MaxNameLength = 0 }, "max_name_length: must be in [1, 65535], got 0")
	f(func(o *statsd.Options) { o.MaxTagLength = 65536 }, "max_tag_length: must be in [1, 65535], got 65536")
	f(func(o *statsd.Options) { o.MaxValuesPerLine = -1 }, "max_values_per_line: must be in [1, 65535], got -1")
	f(func(o *statsd.Options) { o.MaxTags = 0 }, "max_tags")
	ok := statsd.DefaultOptions()
	ok.TimestampWindow, ok.BatchWait = 0.5, 0
	if err := ok.Validate(); err != nil {
		t.Fatalf("timestamp_window 0.5, batch_wait 0: %v", err)
	}
	f(func(o *statsd.Options) { o.PercentileThresholds = []float64{101} }, "percentile_thresholds")
	f(func(o *statsd.Options) { o.LocalHost = "" }, "local_host")
	f(func(o *statsd.Options) { o.OriginDetection = true }, "origin_detection: needs local_socket")
	f(func(o *statsd.Options) { o.SocketMode = "0999" }, "socket_mode")
	f(func(o *statsd.Options) { o.LocalTCP, o.MaxConnections = "127.0.0.1:8125", 0 }, "max_connections: must be in [1, 65536], got 0")
	f(func(o *statsd.Options) { o.IdleTimeout = 0 }, "idle_timeout")
}
