package prometheus

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bucky3/bucky3/engine"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// harness runs an exporter on 127.0.0.1:0 for one test.
type harness struct {
	e     *Exporter
	stats *engine.Stats
	in    chan *engine.Batch
	url   string
	// client does not ask for gzip on its own, so tests see the wire.
	client *http.Client
}

// module is what the supervisor hands New: a logger and stats are always set.
func module(stats *engine.Stats) engine.Module {
	return engine.Module{Name: "prom", Type: "prometheus_exporter", Log: slog.New(slog.DiscardHandler), Stats: stats}
}

func start(t *testing.T, edit func(*Options)) *harness {
	t.Helper()
	o := DefaultOptions()
	o.LocalHost = "127.0.0.1:0"
	// Pages hold the data alone unless a test asks for the own metrics.
	o.SelfMetrics = false
	if edit != nil {
		edit(&o)
	}
	stats := engine.NewStats()
	e, err := New(module(stats), o)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{
		e:      e,
		stats:  stats,
		in:     make(chan *engine.Batch),
		client: &http.Client{Transport: &http.Transport{DisableCompression: true}},
	}
	done := make(chan error, 1)
	go func() { done <- e.Run(context.Background(), h.in) }()
	select {
	case <-e.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	h.url = "http://" + e.Addr().String()
	t.Cleanup(func() {
		close(h.in)
		if err := <-done; err != nil {
			t.Errorf("Run returned %v after its inbox closed, want nil", err)
		}
	})
	return h
}

// send hands b to the exporter and returns once it is ingested: the inbox
// is unbuffered, so the exporter has finished with b when it takes the
// next batch.
func (h *harness) send(metrics ...engine.Metric) {
	h.in <- &engine.Batch{Source: "test", Metrics: metrics}
	h.in <- &engine.Batch{Source: "test"}
}

func (h *harness) get(t *testing.T, method, path string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, h.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// scrape GETs /metrics, checks the response and the page's shape, and
// returns the page.
func (h *harness) scrape(t *testing.T) string {
	t.Helper()
	resp, body := h.get(t, http.MethodGet, "/metrics", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != contentType {
		t.Errorf("Content-Type %q, want %q", ct, contentType)
	}
	checkPage(t, string(body))
	return string(body)
}

// checkPage asserts that page parses and has none of pageProblems.
func checkPage(t *testing.T, page string) {
	t.Helper()
	parsePage(t, page)
	for _, p := range pageProblems(page) {
		t.Error(p)
	}
}

// pageProblems finds what expfmt and promtool do not check: each family
// must be one contiguous group under its own TYPE line, and no series may
// repeat.
func pageProblems(page string) []string {
	var problems []string
	typed := map[string]bool{}
	series := map[string]bool{}
	current, currentType := "", ""
	for line := range strings.Lines(page) {
		line = strings.TrimSuffix(line, "\n")
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			current, currentType, _ = strings.Cut(rest, " ")
			if typed[current] {
				problems = append(problems, "family "+current+" appears twice")
			}
			typed[current] = true
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		name := line[:strings.IndexAny(line, "{ ")]
		fam := name
		// Summaries and histograms spread over suffixed names.
		if currentType == "summary" || currentType == "histogram" {
			for _, suffix := range []string{"_sum", "_count", "_bucket"} {
				if name == current+suffix {
					fam = current
				}
			}
		}
		if fam != current {
			problems = append(problems, "sample of "+name+" inside family "+current)
		}
		// Values and timestamps hold no '}', and a label set ends with one.
		key := name
		if i := strings.LastIndexByte(line, '}'); i >= 0 {
			key = line[:i+1]
		}
		if series[key] {
			problems = append(problems, "duplicate series "+key)
		}
		series[key] = true
	}
	return problems
}

func TestPageProblems(t *testing.T) {
	f := func(page string, want ...string) {
		t.Helper()
		if got := pageProblems(page); !slices.Equal(got, want) {
			t.Errorf("pageProblems(%q) = %q, want %q", page, got, want)
		}
	}
	f("# TYPE a untyped\na{x=\"1\"} 1\n# TYPE b untyped\nb 2\n")
	f("# TYPE a untyped\na{x=\"1\"} 1\na{x=\"1\"} 2 5\n", `duplicate series a{x="1"}`)
	f("# TYPE a untyped\na 1\n# TYPE b untyped\na 2\n", "sample of a inside family b", "duplicate series a")
	f("# TYPE a untyped\na 1\n# TYPE a untyped\n", "family a appears twice")
	f("# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 2\ns_count 3\n")
	f("# TYPE s untyped\ns_sum 2\n", "sample of s_sum inside family s")
}

var tagsHostCPU = []engine.Tag{{Key: "cpu", Value: "cpu0"}, {Key: "host", Value: "web1"}}

func sampleMetrics() []engine.Metric {
	return []engine.Metric{
		metric("system_cpu", 1700000000123, tagsHostCPU, num("idle", 97.5), num("user", 1.25)),
		metric("stats_counters", 0, []engine.Tag{{Key: "name", Value: "requests"}}, num("count", 12), num("rate", 1.2)),
		metric("system_cpu", 1700000000123, []engine.Tag{{Key: "cpu", Value: "cpu1"}, {Key: "host", Value: "web1"}}, num("idle", 50)),
		metric("docker.container-mem", 0, []engine.Tag{
			{Key: "__name__", Value: "x"},
			{Key: "com.docker.compose", Value: "svc \"a\"\\b\nc"},
			{Key: "value", Value: "tag"},
		}, num("rss", 1e9)),
		metric("logs", 0, nil,
			engine.Field{Name: "message", Value: engine.String("not a sample")},
			engine.Field{Name: "ok", Value: engine.Bool(true)},
			num("bad", math.NaN())),
		metric("9lives", 0, []engine.Tag{{Key: "bad", Value: "\xff\xfe"}}, num("n", -3)),
	}
}

func TestExporterPage(t *testing.T) {
	h := start(t, nil)
	h.send(sampleMetrics()...)
	page := h.scrape(t)

	fams := parsePage(t, page)
	type sample struct {
		labels string
		value  float64
		ts     int64
	}
	got := map[string][]sample{}
	for name, fam := range fams {
		if fam.GetType().String() != "UNTYPED" {
			t.Errorf("%s has type %s", name, fam.GetType())
		}
		for _, m := range fam.Metric {
			var labels []string
			for _, l := range m.Label {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			got[name] = append(got[name], sample{strings.Join(labels, ","), m.GetUntyped().GetValue(), m.GetTimestampMs()})
		}
	}
	want := map[string][]sample{
		"system_cpu": {
			{"cpu=cpu0,host=web1,value=idle", 97.5, 1700000000123},
			{"cpu=cpu0,host=web1,value=user", 1.25, 1700000000123},
			{"cpu=cpu1,host=web1,value=idle", 50, 1700000000123},
		},
		"stats_counters": {
			{"name=requests,value=count", 12, 0},
			{"name=requests,value=rate", 1.2, 0},
		},
		"docker_container_mem": {
			{"com_docker_compose=svc \"a\"\\b\nc,tag___name__=x,tag_value=tag,value=rss", 1e9, 0},
		},
		"logs":    {{"value=ok", 1, 0}},
		"_9lives": {{"bad=\uFFFD\uFFFD,value=n", -3, 0}},
	}
	if len(got) != len(want) {
		t.Errorf("families %v, want %v", got, want)
	}
	for name, w := range want {
		g := got[name]
		if len(g) != len(w) {
			t.Errorf("%s: got %v, want %v", name, g, w)
			continue
		}
		for i := range w {
			if g[i] != w[i] {
				t.Errorf("%s[%d] = %+v, want %+v", name, i, g[i], w[i])
			}
		}
	}

	golden := filepath.Join("testdata", "page.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(page), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	wantPage, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if page != string(wantPage) {
		t.Errorf("page differs from %s (go test -update rewrites it):\n%s", golden, page)
	}

	if n := h.stats.Counter("metrics_received").Load(); n != 6 {
		t.Errorf("metrics_received = %d, want 6", n)
	}
	if n := h.stats.Counter("metrics_dropped").Load(); n != 1 {
		t.Errorf("metrics_dropped = %d, want 1", n)
	}
	if n := h.stats.Counter("http_requests").Load(); n != 1 {
		t.Errorf("http_requests = %d, want 1", n)
	}
}

func TestExporterReplacesSeries(t *testing.T) {
	h := start(t, nil)
	h.send(metric("m", 1000, tagsHostCPU, num("v", 1)))
	h.send(metric("m", 2000, tagsHostCPU, num("v", 2)), metric("m", 0, nil, num("v", 3)))
	want := "# HELP m bucky3 bucket m\n# TYPE m untyped\n" +
		"m{cpu=\"cpu0\",host=\"web1\",value=\"v\"} 2 2000\n" +
		"m{value=\"v\"} 3\n"
	if got := h.scrape(t); got != want {
		t.Errorf("page =\n%s\nwant\n%s", got, want)
	}
}

func TestExporterWithoutTimestamps(t *testing.T) {
	h := start(t, func(o *Options) { o.AddTimestamps = false })
	h.send(metric("m", 1000, nil, num("v", 1)))
	want := "# HELP m bucky3 bucket m\n# TYPE m untyped\nm{value=\"v\"} 1\n"
	if got := h.scrape(t); got != want {
		t.Errorf("page =\n%s\nwant\n%s", got, want)
	}
}

func TestExporterGzip(t *testing.T) {
	h := start(t, func(o *Options) { o.Compression = "gzip" })
	h.send(sampleMetrics()...)
	plain := h.scrape(t)

	f := func(acceptEncoding string, wantGzip bool) {
		t.Helper()
		resp, body := h.get(t, http.MethodGet, "/metrics", http.Header{"Accept-Encoding": {acceptEncoding}})
		if got := resp.Header.Get("Content-Encoding") == "gzip"; got != wantGzip {
			t.Fatalf("Accept-Encoding %q: gzip %v, want %v", acceptEncoding, got, wantGzip)
		}
		if wantGzip {
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if body, err = io.ReadAll(zr); err != nil {
				t.Fatal(err)
			}
		}
		if string(body) != plain {
			t.Errorf("Accept-Encoding %q: page differs:\n%s", acceptEncoding, body)
		}
	}
	f("gzip", true)
	f("deflate, gzip;q=0.5", true)
	f("*", true)
	f("gzip;q=0", false)
	f("identity", false)
	f("", false)
}

func TestExporterNoGzipUnlessConfigured(t *testing.T) {
	h := start(t, nil)
	h.send(metric("m", 0, nil, num("v", 1)))
	resp, _ := h.get(t, http.MethodGet, "/metrics", http.Header{"Accept-Encoding": {"gzip"}})
	if ce := resp.Header.Get("Content-Encoding"); ce != "" {
		t.Errorf("Content-Encoding %q without compression = gzip", ce)
	}
}

func TestExporterRoutes(t *testing.T) {
	h := start(t, nil)
	h.send(metric("m", 0, nil, num("v", 1)))
	f := func(method, path string, wantStatus int) {
		t.Helper()
		resp, _ := h.get(t, method, path, nil)
		if resp.StatusCode != wantStatus {
			t.Errorf("%s %s: status %d, want %d", method, path, resp.StatusCode, wantStatus)
		}
	}
	f(http.MethodGet, "/metrics", 200)
	f(http.MethodHead, "/metrics", 200)
	f(http.MethodGet, "/", 404)
	f(http.MethodGet, "/metrics/", 404)
	f(http.MethodGet, "/other", 404)
	f(http.MethodPost, "/metrics", 405)
	if n := h.stats.Counter("http_requests").Load(); n != 6 {
		t.Errorf("http_requests = %d, want 6", n)
	}

	root := start(t, func(o *Options) { o.HTTPPath = "" })
	root.send(metric("m", 0, nil, num("v", 1)))
	if resp, body := root.get(t, http.MethodGet, "/", nil); resp.StatusCode != 200 || !strings.Contains(string(body), "m{") {
		t.Errorf("http_path \"\": GET / gave %d %q", resp.StatusCode, body)
	}
	if resp, _ := root.get(t, http.MethodGet, "/metrics", nil); resp.StatusCode != 404 {
		t.Errorf("http_path \"\": GET /metrics gave %d, want 404", resp.StatusCode)
	}
}

func TestExporterEvictsStaleSeries(t *testing.T) {
	h := start(t, func(o *Options) {
		o.FlushInterval = 0.01
		o.ValuesTimeout = 0.05
	})
	h.send(metric("m", 0, nil, num("v", 1)))
	if page := h.scrape(t); !strings.Contains(page, "m{") {
		t.Fatalf("series missing before its timeout:\n%s", page)
	}
	// Eviction runs on the exporter's own ticker; poll until it has.
	deadline := time.Now().Add(10 * time.Second)
	for h.scrape(t) != "" {
		if time.Now().After(deadline) {
			t.Fatal("series not evicted 10 s after a 0.05 s values_timeout")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestExporterPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	o := DefaultOptions()
	o.LocalHost = ln.Addr().String()
	e, err := New(module(engine.NewStats()), o)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Run(context.Background(), make(chan *engine.Batch)); err == nil {
		t.Fatal("Run on a port in use returned nil")
	}
}

func TestExporterCancel(t *testing.T) {
	o := DefaultOptions()
	o.LocalHost = "127.0.0.1:0"
	e, err := New(module(engine.NewStats()), o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx, make(chan *engine.Batch)) }()
	<-e.Ready()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run after cancel = %v, want context.Canceled", err)
	}
	if _, err := net.Dial("tcp", e.Addr().String()); err == nil {
		t.Error("listener still accepts after Run returned")
	}
}

func TestOptionsValidate(t *testing.T) {
	f := func(edit func(*Options), wantErr string) {
		t.Helper()
		o := DefaultOptions()
		edit(&o)
		err := o.Validate()
		if wantErr == "" {
			if err != nil {
				t.Errorf("Validate() = %v, want nil", err)
			}
			return
		}
		if err == nil || !strings.HasPrefix(err.Error(), wantErr) {
			t.Errorf("Validate() = %v, want an error starting %q", err, wantErr)
		}
	}
	f(func(*Options) {}, "")
	f(func(o *Options) { o.Compression = "gzip" }, "")
	f(func(o *Options) { o.HTTPPath = "" }, "")
	f(func(o *Options) { o.Compression = "br" }, "compression:")
	f(func(o *Options) { o.ValuesTimeout = 0 }, "values_timeout:")
	f(func(o *Options) { o.LocalHost = "9103" }, "local_host:")

	// The registry checks the common options (flush_interval) once,
	// before Validate and New.
	types := []engine.Type{engine.DestinationType("prometheus_exporter", DefaultOptions, New)}
	_, err := engine.Parse([]byte("[p]\nmodule_type = \"prometheus_exporter\"\nflush_interval = 0\n"), types, func(string) (string, bool) { return "", false })
	if err == nil || !strings.Contains(err.Error(), "flush_interval:") {
		t.Errorf("flush_interval = 0 through the registry: %v, want a flush_interval error", err)
	}
}

// promtoolPath finds promtool on PATH or where scripts/backends.sh puts it.
func promtoolPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("promtool"); err == nil {
		return p
	}
	p := filepath.Join("..", "..", ".cache", "backends", "usr", "bin", "promtool")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("promtool not found on PATH nor at %s: run scripts/backends.sh install", p)
	}
	return p
}

func TestPromtoolAcceptsPage(t *testing.T) {
	promtool := promtoolPath(t)
	h := start(t, nil)
	h.send(sampleMetrics()...)
	page := h.scrape(t)

	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(page)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s\npage:\n%s", err, out, page)
	}
}

func TestExporterScrapesWhileIngesting(t *testing.T) {
	h := start(t, func(o *Options) { o.FlushInterval = 0.001; o.ValuesTimeout = 0.002 })
	done := make(chan struct{})
	scraped := make(chan struct{})
	// The scraper finishes at least one scrape, and keeps going until the
	// batches are all in.
	go func() {
		for {
			resp, err := h.client.Get(h.url + "/metrics")
			if err != nil {
				t.Error(err)
				scraped <- struct{}{}
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if problems := pageProblems(string(body)); len(problems) > 0 {
				t.Error(problems)
			}
			select {
			case <-done:
				scraped <- struct{}{}
				return
			default:
			}
		}
	}()
	for i := range 200 {
		h.send(metric("m", 0, []engine.Tag{{Key: "i", Value: strconv.Itoa(i % 7)}}, num("v", float64(i))))
	}
	close(done)
	<-scraped
}
