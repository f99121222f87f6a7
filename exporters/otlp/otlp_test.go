package otlp

import (
	"compress/gzip"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/engine/enginetest"
	"github.com/bucky3/bucky3/internal/backendtest"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/protobuf/encoding/protowire"
)

// run starts a client for o and returns its inbox, its counters and a
// function that closes the inbox and waits for Run to return.
func run(t *testing.T, o Options) (chan<- *engine.Batch, *engine.Stats, func() error) {
	t.Helper()
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	stats := engine.NewStats()
	c, err := New(engine.Module{Name: "otlp", Stats: stats}, o)
	if err != nil {
		t.Fatal(err)
	}
	in, stop := enginetest.RunDestination(t, c, 30*time.Second)
	return in, stats, stop
}

// fastOptions pushes every 50 ms and retries within 400 ms.
func fastOptions(url string) Options {
	o := DefaultOptions()
	o.URL = url
	o.FlushInterval = 0.05
	o.MaxFlushInterval = 0.4
	o.ResourceAttributes = []string{"host"}
	return o
}

// wantValue repeats the query expr until it gives one sample of value
// want, failing the test after 10 s.
func wantValue(t *testing.T, r *backendtest.Receiver, expr string, want float64) backendtest.Sample {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := r.Query(t, expr)
		if len(got) == 1 && got[0].Value == want {
			return got[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: query %q: got %+v, want one sample of value %v", r.Name, expr, got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// statsd returns n counters and n timers of host h as statsd_server
// flushes them, at ts.
func statsd(h string, n int, ts int64) []engine.Metric {
	var ms []engine.Metric
	for i := range n {
		tags := []engine.Tag{tag("host", h), tag("name", fmt.Sprint("m", i))}
		ms = append(ms,
			engine.Metric{Bucket: "stats_counters", Tags: tags, Timestamp: ts, Fields: []engine.Field{num("count", float64(i)), num("rate", float64(i)/10)}},
			engine.Metric{Bucket: "stats_timers", Tags: tags, Timestamp: ts, Fields: []engine.Field{num("count", 2), num("mean", float64(i)+0.5)}})
	}
	return ms
}

func TestClient_VictoriaMetrics(t *testing.T) {
	r := backendtest.StartVictoriaMetricsOTLP(t)
	for _, compression := range []string{"gzip", ""} {
		t.Run("compression="+compression, func(t *testing.T) {
			host := "h-" + compression
			o := fastOptions(r.OTLPURL)
			o.Compression = compression
			o.ChunkSize = 7
			in, stats, stop := run(t, o)
			ms := statsd(host, 10, time.Now().UnixMilli())
			ms = append(ms, engine.Metric{Bucket: "logs", Tags: []engine.Tag{tag("host", host)}, Fields: []engine.Field{{Name: "message", Value: engine.String("x")}}})
			in <- &engine.Batch{Metrics: ms}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			enginetest.CheckDelivery(t, stats, map[string]uint64{"metrics_received": 21, "metrics_sent": 20, "metrics_dropped": 1,
				"metrics_dropped_no_fields": 1, "metrics_dropped_rejected": 0, "fields_skipped": 1, "connection_errors": 0})
			sel := fmt.Sprintf(`{host=%q}`, host)
			wantValue(t, r, "count(stats_counters_count"+sel+")", 10)
			wantValue(t, r, "sum(stats_counters_count"+sel+")", 45)
			wantValue(t, r, "sum(stats_timers_mean"+sel+")", 50)
			s := wantValue(t, r, `stats_counters_rate{name="m7",host="`+host+`"}`, 0.7)
			if s.Labels["scope.name"] != ScopeName {
				t.Errorf("labels %v: want scope.name %q", s.Labels, ScopeName)
			}
		})
	}
}

// TestClient_ReceiverRestart kills the receiver between two batches: the
// second waits in the queue, is retried with back-off, and arrives once
// the receiver is back. Nothing is lost or counted twice.
func TestClient_ReceiverRestart(t *testing.T) {
	r := backendtest.StartVictoriaMetricsOTLP(t)
	in, stats, stop := run(t, fastOptions(r.OTLPURL))
	in <- &engine.Batch{Metrics: statsd("a", 5, time.Now().UnixMilli())}
	enginetest.WaitCounter(t, stats, "metrics_sent", 10)
	wantValue(t, r, `count(stats_timers_mean{host="a"})`, 5)

	r.Kill(t)
	in <- &engine.Batch{Metrics: statsd("b", 5, time.Now().UnixMilli())}
	enginetest.WaitCounter(t, stats, "connection_errors", 2)
	enginetest.CheckDelivery(t, stats, map[string]uint64{"metrics_received": 20, "metrics_sent": 10, "metrics_dropped": 0})
	if got := stats.Gauge("metrics_buffered").Load(); got != 10 {
		t.Fatalf("metrics_buffered = %d while the receiver is down, want 10", got)
	}

	r.Start(t)
	enginetest.WaitCounter(t, stats, "metrics_sent", 20)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	enginetest.CheckDelivery(t, stats, map[string]uint64{"metrics_received": 20, "metrics_sent": 20, "metrics_dropped": 0})
	// VictoriaMetrics may lose what it took in its last seconds to SIGKILL:
	// only the batch sent across the outage is checked.
	for _, host := range []string{"b"} {
		wantValue(t, r, `count(stats_timers_mean{host="`+host+`"})`, 5)
		wantValue(t, r, `sum(stats_counters_count{host="`+host+`"})`, 10)
	}
}

// standIn is an OTLP endpoint for what a real receiver does not do on
// demand: answer a scripted status or partial success per request, and
// show the headers.
type standIn struct {
	mu      sync.Mutex
	answers []func(http.ResponseWriter) // per request; 200 past the end
	reqs    []*http.Request
	bodies  [][]byte // uncompressed
	failure string
}

func (s *standIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			s.fail(w, err)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	if err != nil {
		s.fail(w, err)
		return
	}
	s.mu.Lock()
	n := len(s.reqs)
	s.reqs = append(s.reqs, r)
	s.bodies = append(s.bodies, b)
	var answer func(http.ResponseWriter)
	if n < len(s.answers) {
		answer = s.answers[n]
	}
	s.mu.Unlock()
	if answer == nil {
		w.Header().Set("Content-Type", "application/x-protobuf")
		return
	}
	answer(w)
}

func (s *standIn) fail(w http.ResponseWriter, err error) {
	s.mu.Lock()
	s.failure = err.Error()
	s.mu.Unlock()
	http.Error(w, err.Error(), 400)
}

func (s *standIn) requests(t *testing.T) ([]*http.Request, []*metricspb.MetricsData) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failure != "" {
		t.Fatalf("stand-in: %s", s.failure)
	}
	var mds []*metricspb.MetricsData
	for _, b := range s.bodies {
		mds = append(mds, decode(t, b))
	}
	return append([]*http.Request(nil), s.reqs...), mds
}

func status(code int) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) { http.Error(w, "scripted", code) }
}

func partial(n int64, msg string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		var ps []byte
		ps = protowire.AppendTag(ps, 1, protowire.VarintType)
		ps = protowire.AppendVarint(ps, uint64(n))
		ps = protowire.AppendTag(ps, 2, protowire.BytesType)
		ps = protowire.AppendString(ps, msg)
		b := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), ps)
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(b)
	}
}

func TestClient_Statuses(t *testing.T) {
	s := &standIn{answers: []func(http.ResponseWriter){status(503), status(429), nil, status(400), partial(2, "bad point")}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	o := fastOptions(srv.URL + "/v1/metrics")
	o.ChunkSize = 2
	o.Headers = map[string]string{"X-Tenant": "t1"}
	o.BasicAuthUsername, o.BasicAuthPassword = "u", "p"
	in, stats, stop := run(t, o)
	// Three chunks of two metrics: the first retried twice (503, 429)
	// then accepted, the second rejected (400), the third a partial
	// success.
	in <- &engine.Batch{Metrics: statsd("h", 3, 0)}
	enginetest.WaitCounter(t, stats, "metrics_sent", 4)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	enginetest.CheckDelivery(t, stats, map[string]uint64{"metrics_received": 6, "metrics_sent": 4, "metrics_dropped": 2,
		"metrics_dropped_rejected": 2, "data_points_rejected": 2, "connection_errors": 2})
	reqs, mds := s.requests(t)
	if len(reqs) != 5 {
		t.Fatalf("%d requests, want 5", len(reqs))
	}
	for i, md := range mds { // two metrics of two fields each
		if got := strings.Count(render(t, md), "\n") + 1; got != 4 {
			t.Errorf("request %d: %d data points, want 4", i, got)
		}
	}
	r := reqs[0]
	for k, v := range map[string]string{"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip", "User-Agent": "bucky3", "X-Tenant": "t1"} {
		if got := r.Header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	if u, p, ok := r.BasicAuth(); !ok || u != "u" || p != "p" {
		t.Errorf("basic auth %q %q %v", u, p, ok)
	}
	if r.URL.Path != "/v1/metrics" || r.Method != http.MethodPost {
		t.Errorf("request %s %s", r.Method, r.URL)
	}
}

func TestOptions_Failure(t *testing.T) {
	f := func(configure func(*Options), want string) {
		t.Helper()
		o := DefaultOptions()
		o.URL = "http://127.0.0.1:4318/v1/metrics"
		configure(&o)
		err := o.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Fatalf("Validate() = %v, want an error starting with %q", err, want)
		}
	}
	f(func(o *Options) { o.URL = "" }, "url: required")
	f(func(o *Options) { o.RemoteHosts = []string{"h"} }, "remote_hosts: ")
	f(func(o *Options) { o.Compression = "snappy" }, "compression: ")
	f(func(o *Options) { o.ResourceAttributes = []string{""} }, "resource_attributes: ")
	f(func(o *Options) { o.Layout = "typed2" }, "layout: ")
	f(func(o *Options) { o.Timeout = -1 }, "timeout: ")
	f(func(o *Options) { o.MaxFlushInterval = math.Inf(1) }, "max_flush_interval: ")
	f(func(o *Options) { o.BearerToken, o.BasicAuthUsername = "t", "u" }, "bearer_token: ")
}

// TestConfig loads the options the way the agent does: from TOML, through
// the registry's checks.
func TestConfig(t *testing.T) {
	types := []engine.Type{engine.DestinationType("otlp_client", DefaultOptions, New)}
	f := func(body, wantErr string) {
		t.Helper()
		_, err := engine.Parse([]byte("[o]\nmodule_type = \"otlp_client\"\n"+body), types, func(string) (string, bool) { return "", false })
		switch {
		case wantErr == "" && err != nil:
			t.Fatalf("%s: %v", body, err)
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
			t.Fatalf("%s: error %v, want one containing %q", body, err, wantErr)
		}
	}
	f(`url = "http://collector:4318/v1/metrics"
compression = ""
resource_attributes = ["host", "env"]
counter_buckets = ["counters"]
headers = { "api-key" = "k" }
timeout = 3
`, "")
	f(`url = "http://collector:4318/v1/metrics"
compression = "zstd"`, "compression")
	f(`url = "http://collector:4318/v1/metrics"
resource_attributes = "host"`, "resource_attributes")
	f(`compression = "gzip"`, "url")
}
