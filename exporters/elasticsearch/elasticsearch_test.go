package elasticsearch

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
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
	c, err := New(engine.Module{Name: "es", Stats: stats}, o)
	if err != nil {
		t.Fatal(err)
	}
	in, stop := enginetest.RunDestination(t, c, 20*time.Second)
	return in, stats, stop
}

// recorder is an Elasticsearch stand-in for what the real stand-in
// (VictoriaLogs) cannot do: keep _index and _id, reject single documents,
// fail with 5xx, answer slowly.
type recorder struct {
	mu      sync.Mutex
	reqs    []request
	status  []int                                    // status per request, 200 past the end
	reject  func(doc map[string]any) bool            // per-item rejection
	handler func(http.ResponseWriter, *http.Request) // replaces the whole behaviour
	// itemStatus, when set, gives each item's status (201 accepted); n
	// numbers the request from 0.
	itemStatus func(n int, doc map[string]any) int
	// reqStatus, when set, answers a whole request with a status (0: go on).
	reqStatus func(docs []map[string]any) int
}

type request struct {
	path, query, contentType, encoding string
	actions                            []map[string]map[string]string
	docs                               []map[string]any
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if r.handler != nil {
		r.handler(w, req)
		return
	}
	var body io.Reader = req.Body
	switch req.Header.Get("Content-Encoding") {
	case "gzip":
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		body = zr
	case "deflate":
		zr, err := zlib.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		body = zr
	}
	rec := request{path: req.URL.Path, query: req.URL.RawQuery, contentType: req.Header.Get("Content-Type"), encoding: req.Header.Get("Content-Encoding")}
	sc := bufio.NewScanner(body)
	for i := 0; sc.Scan(); i++ {
		if i%2 == 0 {
			var a map[string]map[string]string
			if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			rec.actions = append(rec.actions, a)
		} else {
			var d map[string]any
			if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			rec.docs = append(rec.docs, d)
		}
	}
	r.mu.Lock()
	n := len(r.reqs)
	r.reqs = append(r.reqs, rec)
	status := 200
	if n < len(r.status) {
		status = r.status[n]
	}
	r.mu.Unlock()
	if status == 200 && r.reqStatus != nil {
		if s := r.reqStatus(rec.docs); s != 0 {
			status = s
		}
	}
	if status != 200 {
		http.Error(w, "unavailable", status)
		return
	}
	var items []string
	errors := false
	for _, d := range rec.docs {
		s := 201
		switch {
		case r.itemStatus != nil:
			s = r.itemStatus(n, d)
		case r.reject != nil && r.reject(d):
			s = 400
		}
		if s < 300 {
			items = append(items, `{"index":{"status":201,"result":"created"}}`)
		} else {
			errors = true
			items = append(items, fmt.Sprintf(`{"index":{"status":%d,"error":{"type":"some_exception","reason":"bad value"}}}`, s))
		}
	}
	fmt.Fprintf(w, `{"took":1,"errors":%v,"items":[%s]}`, errors, strings.Join(items, ","))
}

func (r *recorder) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.reqs...)
}

func metrics(first, n int, ts int64) []engine.Metric {
	var ms []engine.Metric
	for i := first; i < first+n; i++ {
		ms = append(ms, engine.Metric{Bucket: "cpu", Tags: []engine.Tag{tag("host", "h")}, Fields: []engine.Field{num("v", float64(i))}, Timestamp: ts})
	}
	return ms
}

func counter(s *engine.Stats, name string) uint64 { return s.Counter(name).Load() }

func TestClient_BulkRequests(t *testing.T) {
	for _, compression := range []string{"", "gzip", "deflate"} {
		t.Run("compression="+compression, func(t *testing.T) {
			rec := &recorder{}
			srv := httptest.NewServer(rec)
			defer srv.Close()
			o := DefaultOptions()
			o.RemoteHosts = []string{srv.URL + "/prefix/?x=1"}
			o.IndexName = "metrics-%Y.%m.%d"
			o.Compression = compression
			o.ChunkSize = 4
			in, stats, stop := run(t, o)
			in <- &engine.Batch{Metrics: metrics(0, 10, 1700000000000)}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			reqs := rec.requests()
			if len(reqs) != 3 || len(reqs[0].docs) != 4 || len(reqs[2].docs) != 2 {
				t.Fatalf("%d requests, want 3 of 4, 4 and 2 documents", len(reqs))
			}
			r := reqs[0]
			if r.path != "/prefix/_bulk" || r.query != "x=1" || r.contentType != "application/x-ndjson" || r.encoding != compression {
				t.Fatalf("request %s?%s, Content-Type %q, Content-Encoding %q", r.path, r.query, r.contentType, r.encoding)
			}
			a, d := r.actions[1]["index"], r.docs[1]
			if a["_index"] != "metrics-2023.11.14" || d["v"] != 1.0 || d["host"] != "h" || d["bucket"] != "cpu" || d["timestamp"] != 1700000000000.0 {
				t.Fatalf("action %v document %v", a, d)
			}
			doc, _ := json.Marshal(d) // encoding/json sorts keys: the canonical form
			if want := NewEncoder("", "timestamp", "bucket").AppendAction(nil, &engine.Metric{Bucket: "cpu", Tags: []engine.Tag{tag("host", "h")}, Fields: []engine.Field{num("v", 1)}, Timestamp: 1700000000000}, now); !bytes.Contains(want, []byte(a["_id"])) || !bytes.Contains(want, doc) {
				t.Fatalf("_id %s of %s does not match the encoder's %s", a["_id"], doc, want)
			}
			if counter(stats, "metrics_sent") != 10 {
				t.Fatalf("metrics_sent = %d, want 10", counter(stats, "metrics_sent"))
			}
		})
	}
}

func TestClient_RejectedItemsAreNotResent(t *testing.T) {
	rec := &recorder{status: []int{503}, reject: func(d map[string]any) bool { return int(d["v"].(float64))%3 == 0 }}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	o := DefaultOptions()
	o.RemoteHosts = []string{strings.TrimPrefix(srv.URL, "http://")}
	o.FlushInterval = 0.02
	o.MaxFlushInterval = 0.05
	in, stats, stop := run(t, o)
	in <- &engine.Batch{Metrics: metrics(0, 10, 0)}
	deadline := time.Now().Add(10 * time.Second)
	for counter(stats, "metrics_sent")+counter(stats, "metrics_dropped") < 10 {
		if time.Now().After(deadline) {
			t.Fatal("the batch was never pushed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	in <- &engine.Batch{Metrics: metrics(10, 2, 0)}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	reqs := rec.requests()
	// 503 first: the whole batch again; then 4 of its 10 rejected (0, 3,
	// 6, 9), which the last request (10, 11) must not carry again.
	if len(reqs) != 3 || len(reqs[0].docs) != 10 || len(reqs[1].docs) != 10 || len(reqs[2].docs) != 2 {
		t.Fatalf("requests carried %v documents, want 10, 10, 2", docCounts(reqs))
	}
	want := map[string]uint64{"metrics_sent": 8, "metrics_dropped": 4, "docs_rejected": 4, "metrics_dropped_rejected": 4, "connection_errors": 1, "flush_errors": 1}
	for name, n := range want {
		if got := counter(stats, name); got != n {
			t.Errorf("%s = %d, want %d", name, got, n)
		}
	}
}

func docCounts(reqs []request) []int {
	var n []int
	for _, r := range reqs {
		n = append(n, len(r.docs))
	}
	return n
}

func TestClient_SlowServerTimesOut(t *testing.T) {
	release := make(chan struct{})
	rec := &recorder{}
	rec.handler = func(w http.ResponseWriter, r *http.Request) {
		select { // accept, never answer
		case <-release:
		case <-r.Context().Done():
		}
	}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	defer close(release)
	o := DefaultOptions()
	o.RemoteHosts = []string{srv.URL}
	o.SocketTimeout = 0.1
	o.FlushInterval = 0.02
	o.MaxFlushInterval = 0.05
	in, stats, stop := run(t, o)
	in <- &engine.Batch{Metrics: metrics(0, 3, 0)}
	deadline := time.Now().Add(10 * time.Second)
	for counter(stats, "connection_errors") < 2 {
		if time.Now().After(deadline) {
			t.Fatal("socket_timeout never fired")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := stats.Gauge("metrics_buffered").Load(); got != 3 {
		t.Fatalf("metrics_buffered = %d, want 3", got)
	}
	if err := stop(); err != nil { // the final push times out too
		t.Fatal(err)
	}
	if counter(stats, "metrics_dropped_shutdown") != 3 {
		t.Fatalf("metrics_dropped_shutdown = %d, want 3", counter(stats, "metrics_dropped_shutdown"))
	}
}

func TestClient_UnresolvableHost(t *testing.T) {
	o := DefaultOptions()
	o.RemoteHosts = []string{"https://nonexistent.invalid/es"}
	o.FlushInterval = 0.02
	o.MaxFlushInterval = 0.05
	in, stats, stop := run(t, o)
	in <- &engine.Batch{Metrics: metrics(0, 1, 0)}
	deadline := time.Now().Add(10 * time.Second)
	for counter(stats, "connection_errors") < 3 {
		if time.Now().After(deadline) {
			t.Fatal("no connection errors counted for an unresolvable host")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestOptions_Validate(t *testing.T) {
	f := func(hosts []string, compression, wantErr string) {
		t.Helper()
		o := DefaultOptions()
		o.RemoteHosts, o.Compression = hosts, compression
		err := o.Validate()
		if (err == nil) != (wantErr == "") || err != nil && !strings.HasPrefix(err.Error(), wantErr) {
			t.Fatalf("Validate(%q, %q) = %v, want %q", hosts, compression, err, wantErr)
		}
	}
	f([]string{"es1", "es2:9201", "[::1]", "http://es/prefix", "https://es:9243"}, "gzip", "")
	f([]string{"ftp://es"}, "", "remote_hosts")
	f([]string{"es:x"}, "", "remote_hosts")
	f(nil, "", "remote_hosts")
	f([]string{"es"}, "br", "compression")
	targets, _ := parseTargets([]string{"es1", "[::1]:9201", "https://es/p/?a=b", "http://es"})
	var got []string
	for _, t := range targets {
		got = append(got, t.bulk+" "+t.hostPort)
	}
	want := "[http://es1:9200/_bulk es1:9200 http://[::1]:9201/_bulk [::1]:9201 https://es/p/_bulk?a=b es:443 http://es/_bulk es:80]"
	if fmt.Sprint(got) != want {
		t.Fatalf("targets %v\nwant %v", got, want)
	}
}

func TestClient_VictoriaLogs(t *testing.T) {
	vl := backendtest.StartVictoriaLogs(t)
	o := DefaultOptions()
	o.RemoteHosts = []string{vl.BulkBase + "?_time_field=timestamp&_msg_field=bucket"}
	o.Compression = "gzip"
	in, stats, stop := run(t, o)
	ts := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	in <- &engine.Batch{Metrics: []engine.Metric{
		{Bucket: "bucky_es", Tags: []engine.Tag{tag("host", "web 1"), tag("v", "collides")}, Fields: []engine.Field{num("v", 42.5), {Name: "msg", Value: engine.String(`say "hi"`)}}, Timestamp: ts.UnixMilli()},
	}}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if counter(stats, "metrics_sent") != 1 {
		t.Fatalf("metrics_sent = %d, want 1", counter(stats, "metrics_sent"))
	}
	e := vl.WaitFor(t, `* | fields _time, _msg, host, v, msg`, 10*time.Second)
	want := map[string]string{"_time": ts.UTC().Format(time.RFC3339Nano), "_msg": "bucky_es", "host": "web 1", "v": "42.5", "msg": `say "hi"`}
	if len(e) != 1 || fmt.Sprint(e[0]) != fmt.Sprint(want) {
		t.Fatalf("read back %v, want %v", e, want)
	}
}

// values returns the "v" of each document of reqs, request by request.
func values(reqs []request) [][]int {
	var out [][]int
	for _, r := range reqs {
		var vs []int
		for _, d := range r.docs {
			vs = append(vs, int(d["v"].(float64)))
		}
		out = append(out, vs)
	}
	return out
}

// checkCounters compares the named counters of stats with want.
func checkCounters(t *testing.T, stats *engine.Stats, want map[string]uint64) {
	t.Helper()
	for name, n := range want {
		if got := counter(stats, name); got != n {
			t.Errorf("%s = %d, want %d", name, got, n)
		}
	}
}

// Per-item 429 and 5xx are retried, and only those items: accepted and
// rejected items of the same request are not sent again.
func TestClient_ItemsFailingForNowAreRetriedAlone(t *testing.T) {
	rec := &recorder{itemStatus: func(n int, d map[string]any) int {
		v := int(d["v"].(float64))
		switch {
		case n == 0 && v%4 == 1:
			return 429
		case n == 0 && v == 6:
			return 503
		case v == 2:
			return 400
		}
		return 201
	}}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	o := DefaultOptions()
	o.RemoteHosts = []string{srv.URL}
	o.FlushInterval = 0.02
	o.MaxFlushInterval = 0.05
	in, stats, stop := run(t, o)
	in <- &engine.Batch{Metrics: metrics(0, 10, 0)}
	deadline := time.Now().Add(10 * time.Second)
	for counter(stats, "metrics_sent")+counter(stats, "metrics_dropped") < 10 {
		if time.Now().After(deadline) {
			t.Fatal("the batch was never delivered")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(values(rec.requests())); got != "[[0 1 2 3 4 5 6 7 8 9] [1 5 6 9]]" {
		t.Fatalf("documents per request %s, want the 429/503 ones retried alone", got)
	}
	checkCounters(t, stats, map[string]uint64{"metrics_sent": 9, "metrics_dropped": 1, "metrics_dropped_rejected": 1,
		"docs_rejected": 1, "connection_errors": 1})
	if got := stats.Gauge("metrics_buffered").Load(); got != 0 {
		t.Fatalf("metrics_buffered = %d, want 0", got)
	}
}

// A 400 or 413 for a whole request is the content's fault: the chunk is
// bisected until the document that fails is alone, which is dropped; the
// others are delivered in the same flush, without a backoff.
func TestClient_RequestRejectedWholeIsBisected(t *testing.T) {
	for _, status := range []int{400, 413} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			rec := &recorder{reqStatus: func(docs []map[string]any) int {
				for _, d := range docs {
					if d["v"].(float64) == 5 {
						return status
					}
				}
				return 0
			}}
			srv := httptest.NewServer(rec)
			defer srv.Close()
			o := DefaultOptions()
			o.RemoteHosts = []string{srv.URL}
			o.ChunkSize = 8
			in, stats, stop := run(t, o)
			in <- &engine.Batch{Metrics: metrics(0, 12, 0)}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			var delivered []int
			for _, r := range rec.requests() {
				if len(r.docs) > 0 && rec.reqStatus(r.docs) == 0 {
					delivered = append(delivered, values([]request{r})[0]...)
				}
			}
			if got := fmt.Sprint(delivered); got != "[0 1 2 3 4 6 7 8 9 10 11]" {
				t.Fatalf("delivered %s", got)
			}
			// 0..7 fails, 0..3 goes, 4..7 fails, 4..5 fails, 4 goes, 5 is
			// dropped, 6..7 goes; then 8..11.
			if n := len(rec.requests()); n != 8 {
				t.Errorf("%d requests, want 8", n)
			}
			checkCounters(t, stats, map[string]uint64{"metrics_sent": 11, "metrics_dropped": 1, "metrics_dropped_rejected": 1,
				"connection_errors": 0, "flush_errors": 0})
		})
	}
}

// Past max_indices distinct names in a request, metrics of new names go to
// fallback_index, counted, not lost.
func TestClient_MaxIndices(t *testing.T) {
	rec := &recorder{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	o := DefaultOptions()
	o.RemoteHosts = []string{srv.URL}
	o.MaxIndices = 3
	o.ChunkSize = 8
	in, stats, stop := run(t, o)
	var ms []engine.Metric
	for i := range 12 {
		ms = append(ms, engine.Metric{Bucket: fmt.Sprint("b", i%5), Fields: []engine.Field{num("v", float64(i))}})
	}
	in <- &engine.Batch{Metrics: ms}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	var got [][]string
	for _, r := range rec.requests() {
		var names []string
		for _, a := range r.actions {
			names = append(names, a["index"]["_index"])
		}
		got = append(got, names)
	}
	// Each request counts its own names: b0 b1 b2 in the first, then b3
	// b4 b0 in the second.
	want := "[[b0 b1 b2 bucky3-overflow bucky3-overflow b0 b1 b2] [b3 b4 b0 bucky3-overflow]]"
	if fmt.Sprint(got) != want {
		t.Fatalf("indices %v\nwant %s", got, want)
	}
	checkCounters(t, stats, map[string]uint64{"metrics_sent": 12, "metrics_dropped": 0, "metrics_rerouted_fallback_index": 3})
}

func TestOptions_ValidateLimits(t *testing.T) {
	f := func(edit func(*Options), wantErr string) {
		t.Helper()
		o := DefaultOptions()
		edit(&o)
		err := o.Validate()
		if (err == nil) != (wantErr == "") || err != nil && !strings.HasPrefix(err.Error(), wantErr) {
			t.Fatalf("Validate = %v, want %q", err, wantErr)
		}
	}
	f(func(o *Options) {}, "")
	f(func(o *Options) { o.MaxRequestBytes = 1023 }, "max_request_bytes")
	f(func(o *Options) { o.MaxIndices = 0 }, "max_indices")
	f(func(o *Options) { o.FallbackIndex = "" }, "fallback_index")
	f(func(o *Options) { o.FallbackIndex = "Overflow" }, "fallback_index")
	f(func(o *Options) { o.FallbackIndex = "_x" }, "fallback_index")
	f(func(o *Options) { o.FallbackIndex = "a,b" }, "fallback_index")
	f(func(o *Options) { o.FallbackIndex = "metrics.overflow-1" }, "")
}

// bodyRecorder is a reverse proxy in front of a real server that records
// the size of each request body it forwards.
type bodyRecorder struct {
	mu    sync.Mutex
	sizes []int
	proxy *httputil.ReverseProxy
}

func (b *bodyRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	b.mu.Lock()
	b.sizes = append(b.sizes, len(body))
	b.mu.Unlock()
	r.Body = io.NopCloser(bytes.NewReader(body))
	b.proxy.ServeHTTP(w, r)
}

// Against VictoriaLogs: no _bulk body is above max_request_bytes, a metric
// larger than that alone is dropped and counted, every other one is stored.
func TestClient_VictoriaLogsMaxRequestBytes(t *testing.T) {
	vl := backendtest.StartVictoriaLogs(t)
	target, err := url.Parse(vl.URL)
	if err != nil {
		t.Fatal(err)
	}
	rec := &bodyRecorder{proxy: httputil.NewSingleHostReverseProxy(target)}
	proxy := httptest.NewServer(rec)
	defer proxy.Close()
	o := DefaultOptions()
	o.RemoteHosts = []string{proxy.URL + "/insert/elasticsearch?_time_field=timestamp&_msg_field=bucket"}
	o.MaxRequestBytes = 4096
	in, stats, stop := run(t, o)
	ts := time.Now().Add(-time.Minute).UnixMilli()
	ms := metrics(0, 200, ts)
	for i := range ms {
		ms[i].Bucket = "bucky_es_budget"
		ms[i].Timestamp = ts + int64(i)
	}
	huge := engine.Metric{Bucket: "bucky_es_budget", Fields: []engine.Field{{Name: "msg", Value: engine.String(strings.Repeat("z", 5000))}}, Timestamp: ts}
	ms = append(ms[:77], append([]engine.Metric{huge}, ms[77:]...)...)
	in <- &engine.Batch{Metrics: ms}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	checkCounters(t, stats, map[string]uint64{"metrics_received": 201, "metrics_sent": 200, "metrics_dropped": 1, "metrics_dropped_too_large": 1})
	rec.mu.Lock()
	sizes := append([]int(nil), rec.sizes...)
	rec.mu.Unlock()
	if len(sizes) < 2 {
		t.Fatalf("%d requests for 200 metrics in 4096 bytes each", len(sizes))
	}
	for _, n := range sizes {
		if n > 4096 || n == 0 {
			t.Fatalf("request bodies of %v bytes, want 1…4096", sizes)
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		e := vl.Query(t, `bucky_es_budget | stats count() as n, count_uniq(v) as u`)
		if len(e) == 1 && e[0]["n"] == "200" && e[0]["u"] == "200" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("VictoriaLogs holds %v, want 200 distinct documents", e)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
