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
	if status != 200 {
		http.Error(w, "unavailable", status)
		return
	}
	var items []string
	errors := false
	for _, d := range rec.docs {
		if r.reject != nil && r.reject(d) {
			errors = true
			items = append(items, `{"index":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"bad value"}}}`)
		} else {
			items = append(items, `{"index":{"status":201,"result":"created"}}`)
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
