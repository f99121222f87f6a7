package remotewrite

import (
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/engine/enginetest"
	"github.com/bucky3/bucky3/internal/backendtest"
	"github.com/golang/snappy"
)

// run starts a client for o and returns its inbox, its counters and a
// function that closes the inbox and waits for Run to return.
func run(t *testing.T, o Options) (chan<- *engine.Batch, *engine.Stats, func() error) {
	t.Helper()
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	stats := engine.NewStats()
	c, err := New(engine.Module{Name: "rw", Stats: stats}, o)
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
	return o
}

func counter(s *engine.Stats, name string) uint64 { return s.Counter(name).Load() }

// series returns n metrics of bucket with one tag i=<first+k>, fields v
// (first+k) and w (2·(first+k)) and a string field, at ts.
func seriesMetrics(bucket string, first, n int, ts int64) []engine.Metric {
	var ms []engine.Metric
	for k := first; k < first+n; k++ {
		ms = append(ms, engine.Metric{Bucket: bucket, Timestamp: ts,
			Tags:   []engine.Tag{tag("a.b", "x"), tag("host", "h"), tag("i", fmt.Sprint(k))},
			Fields: []engine.Field{num("v", float64(k)), {Name: "s", Value: engine.String("text")}, num("w", 2*float64(k))}})
	}
	return ms
}

var remoteWriteReceivers = []struct {
	name  string
	start func(testing.TB) *backendtest.Receiver
	// durable: what the receiver acknowledged survives SIGKILL.
	// Prometheus writes its WAL before answering; the Debian
	// VictoriaMetrics loses the last seconds it took.
	durable bool
}{
	{"prometheus", backendtest.StartPrometheusReceiver, true},
	{"victoriametrics", backendtest.StartVictoriaMetricsReceiver, false},
}

// wantValue repeats the query expr until it gives one sample of value
// want, failing the test after 10 s: VictoriaMetrics makes a new series
// searchable about a second after it took it.
func wantValue(t *testing.T, r *backendtest.Receiver, expr string, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := r.Query(t, expr)
		if len(got) == 1 && got[0].Value == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: query %q: got %+v, want one sample of value %v", r.Name, expr, got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestClient_Receivers(t *testing.T) {
	for _, rc := range remoteWriteReceivers {
		t.Run(rc.name, func(t *testing.T) {
			t.Parallel()
			r := rc.start(t)
			o := fastOptions(r.WriteURL)
			o.ChunkSize = 7
			o.MaxSamplesPerSend = 5 // metrics split over requests
			in, stats, stop := run(t, o)
			now := time.Now().UnixMilli()
			ms := seriesMetrics("rw_test", 0, 20, now)
			ms = append(ms, engine.Metric{Bucket: "rw_test", Fields: []engine.Field{{Name: "s", Value: engine.String("only text")}}},
				engine.Metric{Bucket: "rw_test_now", Tags: []engine.Tag{tag("host", "h")}, Fields: []engine.Field{num("v", 7)}})
			in <- &engine.Batch{Metrics: ms}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			enginetest.CheckDelivery(t, stats, map[string]uint64{"metrics_received": 22, "metrics_sent": 21, "metrics_dropped": 1,
				"metrics_dropped_no_fields": 1, "metrics_dropped_rejected": 0, "fields_skipped": 21, "connection_errors": 0})
			wantValue(t, r, `count(rw_test_v{host="h",a_b="x"})`, 20)
			wantValue(t, r, `sum(rw_test_w)`, 380)
			wantValue(t, r, `rw_test_v{i="13"}`, 13)
			// A metric without a timestamp gets the push time.
			if got := r.WaitFor(t, "timestamp(rw_test_now_v) - "+fmt.Sprint(now/1000), 10*time.Second); got[0].Value < -1 || got[0].Value > 30 {
				t.Errorf("rw_test_now_v stamped %v s after the batch was made", got[0].Value)
			}
		})
	}
}

// TestClient_ReceiverRestart kills the receiver between two batches: the
// second waits in the queue, is retried with back-off, and arrives once
// the receiver is back. Nothing is lost or counted twice.
func TestClient_ReceiverRestart(t *testing.T) {
	for _, rc := range remoteWriteReceivers {
		t.Run(rc.name, func(t *testing.T) {
			t.Parallel()
			r := rc.start(t)
			in, stats, stop := run(t, fastOptions(r.WriteURL))
			in <- &engine.Batch{Metrics: seriesMetrics("rs_a", 0, 10, time.Now().UnixMilli())}
			enginetest.WaitCounter(t, stats, "metrics_sent", 10)
			wantValue(t, r, "count(rs_a_v)", 10)

			r.Kill(t)
			in <- &engine.Batch{Metrics: seriesMetrics("rs_b", 0, 10, time.Now().UnixMilli())}
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
			buckets := []string{"rs_b"}
			if rc.durable {
				buckets = append(buckets, "rs_a")
			}
			for _, bucket := range buckets {
				wantValue(t, r, "count("+bucket+"_v)", 10)
				wantValue(t, r, "sum("+bucket+"_w)", 90)
			}
		})
	}
}

// TestClient_PrometheusRejects sends, between two accepted requests, one
// of samples three hours old, which Prometheus refuses with 400: that
// request's metrics are dropped for good, the others sent.
func TestClient_PrometheusRejects(t *testing.T) {
	t.Parallel()
	r := backendtest.StartPrometheusReceiver(t)
	o := fastOptions(r.WriteURL)
	o.MaxSamplesPerSend = 3
	in, stats, stop := run(t, o)
	now := time.Now().UnixMilli()
	one := func(bucket string, i int, ts int64) engine.Metric {
		return engine.Metric{Bucket: bucket, Timestamp: ts, Tags: []engine.Tag{tag("i", fmt.Sprint(i))}, Fields: []engine.Field{num("v", float64(i))}}
	}
	var ms []engine.Metric
	for i := range 3 {
		ms = append(ms, one("rj_ok", i, now))
	}
	for i := range 3 {
		ms = append(ms, one("rj_old", i, now-3*3600*1000))
	}
	for i := 3; i < 6; i++ {
		ms = append(ms, one("rj_ok", i, now))
	}
	in <- &engine.Batch{Metrics: ms}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	enginetest.CheckDelivery(t, stats, map[string]uint64{"metrics_received": 9, "metrics_sent": 6, "metrics_dropped": 3,
		"metrics_dropped_rejected": 3, "connection_errors": 0})
	wantValue(t, r, "count(rj_ok_v)", 6)
	if got := r.Query(t, "last_over_time(rj_old_v[4h])"); len(got) != 0 {
		t.Errorf("rejected samples stored: %+v", got)
	}
}

// standIn is a remote write endpoint for what a real receiver does not do
// on demand: answer a scripted status per request, and show the headers.
type standIn struct {
	mu      sync.Mutex
	status  []int // per request; 204 past the end
	reqs    []*http.Request
	series  [][]series
	failure string // a protocol error seen by the handler
}

func (s *standIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	var raw []byte
	if err == nil {
		raw, err = snappy.Decode(nil, body)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.failure = err.Error()
		http.Error(w, err.Error(), 400)
		return
	}
	n := len(s.reqs)
	s.reqs = append(s.reqs, r)
	s.series = append(s.series, decodeRequest(&failRecorder{s: s}, raw))
	status := 204
	if n < len(s.status) {
		status = s.status[n]
	}
	w.WriteHeader(status)
	fmt.Fprintf(w, "status %d", status)
}

// failRecorder lets decodeRequest run in a handler: a failure is recorded
// for the test to report, not raised on the handler's goroutine.
type failRecorder struct {
	testing.TB
	s *standIn
}

func (f *failRecorder) Helper() {}
func (f *failRecorder) Fatalf(format string, args ...any) {
	f.s.failure = fmt.Sprintf(format, args...)
	panic(http.ErrAbortHandler)
}

func (s *standIn) requests(t *testing.T) ([]*http.Request, [][]series) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failure != "" {
		t.Fatalf("stand-in: %s", s.failure)
	}
	return append([]*http.Request(nil), s.reqs...), append([][]series(nil), s.series...)
}

func TestClient_Statuses(t *testing.T) {
	s := &standIn{status: []int{503, 429, 401, 500, 204, 400, 204}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	o := fastOptions(srv.URL + "/api/v1/write?tenant=1")
	o.MaxSamplesPerSend = 2
	o.BearerToken = "secret"
	o.Headers = map[string]string{"X-Scope-OrgID": "team-a"}
	in, stats, stop := run(t, o)
	// One metric of five fields: three requests, the first retried four
	// times (503, 429, 401, 500), then accepted; the second rejected
	// (400), which drops the metric once its last request is answered; the
	// third, which also holds the next metric, accepted.
	m := engine.Metric{Bucket: "split", Fields: []engine.Field{num("a", 1), num("b", 2), num("c", 3), num("d", 4), num("e", 5)}}
	in <- &engine.Batch{Metrics: []engine.Metric{m, {Bucket: "after", Fields: []engine.Field{num("v", 1)}}}}
	enginetest.WaitCounter(t, stats, "metrics_dropped", 1)
	enginetest.WaitCounter(t, stats, "metrics_sent", 1)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	enginetest.CheckDelivery(t, stats, map[string]uint64{"metrics_received": 2, "metrics_sent": 1, "metrics_dropped": 1,
		"metrics_dropped_rejected": 1, "connection_errors": 4, "flush_errors": 4})
	reqs, ss := s.requests(t)
	var got []string
	for i := range reqs {
		var names []string
		for _, s := range ss[i] {
			names = append(names, s.labels[0][1])
		}
		got = append(got, strings.Join(names, ","))
	}
	want := strings.Repeat("split_a,split_b ", 5) + "split_c,split_d split_e,after_v"
	if strings.Join(got, " ") != want {
		t.Errorf("requests:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	r := reqs[0]
	for k, v := range map[string]string{"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
		"X-Prometheus-Remote-Write-Version": "0.1.0", "User-Agent": "bucky3", "Authorization": "Bearer secret", "X-Scope-OrgID": "team-a"} {
		if got := r.Header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	if r.URL.Path != "/api/v1/write" || r.URL.RawQuery != "tenant=1" || r.Method != http.MethodPost {
		t.Errorf("request %s %s", r.Method, r.URL)
	}
}

func TestClient_BasicAuthTLS(t *testing.T) {
	s := &standIn{}
	srv := httptest.NewUnstartedServer(s)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake the test makes fail
	srv.StartTLS()
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	f := func(configure func(*Options), wantSent uint64) {
		t.Helper()
		o := fastOptions(srv.URL)
		configure(&o)
		in, stats, stop := run(t, o)
		in <- &engine.Batch{Metrics: seriesMetrics("tls", 0, 3, 0)}
		if wantSent == 0 {
			enginetest.WaitCounter(t, stats, "connection_errors", 1)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if got := counter(stats, "metrics_sent"); got != wantSent {
			t.Fatalf("metrics_sent = %d, want %d", got, wantSent)
		}
	}
	f(func(o *Options) { o.TLSCAFile = ca; o.BasicAuthUsername, o.BasicAuthPassword = "u", "p:w" }, 3)
	f(func(o *Options) { o.TLSInsecureSkipVerify = true }, 3)
	f(func(*Options) {}, 0) // an unknown CA: a connection error, retried
	reqs, _ := s.requests(t)
	if len(reqs) != 2 {
		t.Fatalf("%d requests reached the server, want 2", len(reqs))
	}
	if u, p, ok := reqs[0].BasicAuth(); !ok || u != "u" || p != "p:w" {
		t.Errorf("basic auth %q %q %v", u, p, ok)
	}
	if reqs[1].Header.Get("Authorization") != "" {
		t.Errorf("Authorization sent without credentials")
	}
}

func TestOptions_Failure(t *testing.T) {
	f := func(configure func(*Options), want string) {
		t.Helper()
		o := DefaultOptions()
		o.URL = "http://127.0.0.1:8428/api/v1/write"
		configure(&o)
		err := o.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Fatalf("Validate() = %v, want an error starting with %q", err, want)
		}
	}
	f(func(o *Options) { o.URL = "" }, "url: required")
	f(func(o *Options) { o.URL = "ftp://h/x" }, "url: ")
	f(func(o *Options) { o.URL = "http:///x" }, "url: ")
	f(func(o *Options) { o.URL = "http://u:p@h/x" }, "url: ")
	f(func(o *Options) { o.URL = "http://h:99999/x" }, "url: ")
	f(func(o *Options) { o.RemoteHosts = []string{"h"} }, "remote_hosts: ")
	f(func(o *Options) { o.MaxSamplesPerSend = 0 }, "max_samples_per_send: ")
	f(func(o *Options) { o.Layout = "prometheus" }, "layout: ")
	f(func(o *Options) { o.Timeout = 0 }, "timeout: ")
	f(func(o *Options) { o.SocketTimeout = 0.0001 }, "socket_timeout: ")
	f(func(o *Options) { o.ChunkSize = 0 }, "chunk_size: ")
	f(func(o *Options) { o.BufferLimit = 10 }, "buffer_limit: ")
	f(func(o *Options) { o.Headers = map[string]string{"Content-Encoding": "gzip"} }, "headers: ")
	f(func(o *Options) { o.Headers = map[string]string{"Bad Name": "x"} }, "headers: ")
	f(func(o *Options) { o.Headers = map[string]string{"X": "a\nb"} }, "headers: ")
	f(func(o *Options) { o.Headers = map[string]string{"authorization": "x"}; o.BearerToken = "t" }, "headers: ")
	f(func(o *Options) { o.BasicAuthPassword = "p" }, "basic_auth_username: ")
	f(func(o *Options) { o.BasicAuthUsername, o.BearerToken = "u", "t" }, "bearer_token: ")
	f(func(o *Options) { o.TLSCertFile = "c.pem" }, "tls_cert_file: ")
}

func TestNew_TLSFiles(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := func(configure func(*Options), want string) {
		t.Helper()
		o := DefaultOptions()
		o.URL = "https://127.0.0.1/api/v1/write"
		configure(&o)
		if err := o.Validate(); err != nil {
			t.Fatal(err)
		}
		_, err := New(engine.Module{Stats: engine.NewStats()}, o)
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Fatalf("New() = %v, want an error starting with %q", err, want)
		}
	}
	f(func(o *Options) { o.TLSCAFile = filepath.Join(dir, "missing.pem") }, "tls_ca_file: ")
	f(func(o *Options) { o.TLSCAFile = bad }, "tls_ca_file: ")
	f(func(o *Options) { o.TLSCertFile, o.TLSKeyFile = bad, bad }, "tls_cert_file: ")
}
