package main

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/bucky3/bucky3/internal/backendtest"
)

// The typed layout side by side with statsd_exporter v0.31.0: both read
// the same mapping file and the same datagrams, and their pages must hold
// the same families, types and label sets, equal counter and gauge values,
// equal histogram buckets, sums and counts, and summary quantiles within
// the objectives' error. compatDifferences lists what differs on purpose
// (README.md, "Coming from statsd_exporter").

// compatDifferences are the families only bucky3 serves, and why.
var compatDifferences = map[string]string{
	// statsd_exporter rejects sets ("no support for StatsD sets").
	"users_unique": "sets are gauges of the interval's unique count",
}

// compatInternal reports whether family is one of an exporter's own.
func compatInternal(family string) bool {
	for _, p := range []string{"go_", "process_", "promhttp_", "statsd_exporter_", "statsd_metric_mapper_", "bucky3_"} {
		if strings.HasPrefix(family, p) {
			return true
		}
	}
	return false
}

// compatTraffic returns the datagrams of the test: every StatsD type,
// sample rates, gauge deltas, DogStatsD tags, dotted names, glob and regex
// rules, a drop rule and unmatched names. summary returns the values sent
// to the summary series of kind, for the quantile check.
func compatTraffic() (datagrams []string, summary map[string][]float64) {
	rng := rand.New(rand.NewPCG(1, 2))
	summary = map[string][]float64{}
	var lines []string
	add := func(format string, args ...any) { lines = append(lines, fmt.Sprintf(format, args...)) }
	for i := range 400 {
		add("api.users.get.latency:%d|ms", 1+rng.IntN(800))
		add("api.orders.post.latency:%d|ms|#env:prod", 1+rng.IntN(3000))
		add("api.users.requests:1|c")
		add("api.orders.requests:2|c|@0.5")
		add("cache.main.hits:%d|c|#region:eu,tier:hot", 1+i%7)
		add("plain.hits-total:3|c")
		add("payload.size:%d|h", rng.IntN(20000))
		add("render.time:%g|d", rng.Float64()*2)
		kind := []string{"select", "insert"}[i%2]
		v := float64(1+rng.IntN(500)) / 1000
		summary[kind] = append(summary[kind], v)
		add("db.query.%s:%g|ms", kind, v*1000)
		add("db.query.%s:1|c", kind)
		add("debug.noise:%d|c", i)
		add("users.unique:user%d|s", i%37)
	}
	add("api.users.get.latency:30|ms|@0.1")
	add("api.users.get.latency:5:7:9|ms")
	add("app.temperature:20|g")
	add("app.temperature:+5|g")
	add("app.temperature:-2|g")
	add("delta.only:+4|g")
	add("delta.only:+4|g")
	add("billing.queue.invoices_depth:7|g")
	add("größe.messung:%d|g", 42)
	add("dash--name.x.total:1|c")
	add("host.load:1.5|g|#host:a")
	add("host.load:2.5|g|#host:b")
	// Ten lines a datagram: small enough that the default receive buffers
	// of both servers take them all.
	for i := 0; i < len(lines); i += 10 {
		datagrams = append(datagrams, strings.Join(lines[i:min(i+10, len(lines))], "\n"))
	}
	return datagrams, summary
}

func sendDatagrams(t *testing.T, addr string, datagrams []string) {
	t.Helper()
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i, d := range datagrams {
		if _, err := conn.Write([]byte(d)); err != nil {
			t.Fatal(err)
		}
		// Paced: statsd_exporter reads one datagram at a time into a
		// default-sized receive buffer.
		if i%4 == 3 {
			time.Sleep(time.Millisecond)
		}
	}
}

// scrapeProto fetches url in the delimited protobuf format, as Prometheus
// with native histograms asks for it.
func scrapeProto(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.Contains(ct, "encoding=delimited") {
		t.Fatalf("%s answered a protobuf request with %q", url, ct)
	}
	dec := expfmt.NewDecoder(resp.Body, expfmt.NewFormat(expfmt.TypeProtoDelim))
	families := map[string]*dto.MetricFamily{}
	for {
		var f dto.MetricFamily
		if err := dec.Decode(&f); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("%s: protobuf page: %v", url, err)
		}
		if !compatInternal(f.GetName()) {
			families[f.GetName()] = &f
		}
	}
	return families
}

// nativeBuckets renders native buckets as "index:count" by absolute
// index, whatever the spans, so that equal histograms compare equal.
func nativeBuckets(spans []*dto.BucketSpan, deltas []int64) string {
	var b strings.Builder
	idx, i := int32(0), 0
	var count int64
	for _, sp := range spans {
		idx += sp.GetOffset()
		for range sp.GetLength() {
			count += deltas[i]
			i++
			if count != 0 {
				fmt.Fprintf(&b, "%d:%d ", idx, count)
			}
			idx++
		}
	}
	return b.String()
}

func scrapeFamilies(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	body := scrape(url)
	if body == "" {
		t.Fatalf("nothing served at %s", url)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("%s does not parse: %v\n%s", url, err, body)
	}
	for name := range families {
		if compatInternal(name) {
			delete(families, name)
		}
	}
	return families
}

func TestTypedLayoutMatchesStatsdExporter(t *testing.T) {
	mapping, err := filepath.Abs("testdata/compat-mapping.yml")
	if err != nil {
		t.Fatal(err)
	}
	se := backendtest.StartStatsdExporter(t, mapping)
	udp, web := freeAddr(t), freeAddr(t)
	metrics := "http://" + web + "/metrics"
	start(t, writeConfig(t, fmt.Sprintf(`
[statsd]
module_type = "statsd_server"
local_host = %q
flush_interval = 1
randomize_startup = false
layout = "typed"
mapping_config = %q

[prom]
module_type = "prometheus_exporter"
local_host = %q
layout = "typed"
`, udp, mapping, web)))
	for deadline := time.Now().Add(20 * time.Second); scrape(metrics) == ""; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the agent never served %s", metrics)
		}
	}

	// short.lived.a is sent first and expires (ttl 2s) before the scrape.
	early := []string{"short.lived.a:1|c"}
	sendDatagrams(t, se.UDP, early)
	sendDatagrams(t, udp, early)
	time.Sleep(3500 * time.Millisecond)

	datagrams, sent := compatTraffic()
	sendDatagrams(t, se.UDP, datagrams)
	sendDatagrams(t, udp, datagrams)
	// Both have it all once bucky3's flush (every second) carried the
	// last datagram; statsd_exporter applies each line as it comes.
	want := 400.0
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		f := scrapeFamilies(t, metrics)["api_requests_total"]
		if f != nil && sumFamily(f, "resource", "users") == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bucky3 never counted %v api.users.requests:\n%s", want, scrape(metrics))
		}
	}
	// short.lived.b comes last, well inside its ttl at the scrape.
	late := []string{"short.lived.b:1|c"}
	sendDatagrams(t, se.UDP, late)
	sendDatagrams(t, udp, late)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if f := scrapeFamilies(t, metrics)["short_lived_total"]; f != nil && sumFamily(f, "which", "b") == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bucky3 never served short_lived_total{which=\"b\"}:\n%s", scrape(metrics))
		}
	}
	packets := fmt.Sprintf("statsd_exporter_udp_packets_total %d", len(datagrams)+len(early)+len(late))
	if page := scrape(se.Metrics); !strings.Contains(page, packets+"\n") {
		t.Fatalf("statsd_exporter did not read every datagram (want %q): %s", packets, grepLines(page, "statsd_exporter_udp_packets_total"))
	}

	refNative := scrapeProto(t, se.Metrics)
	gotNative := scrapeProto(t, metrics)
	ref := scrapeFamilies(t, se.Metrics)
	got := scrapeFamilies(t, metrics)
	t.Logf("statsd_exporter's errors: %s", grepLines(scrape(se.Metrics), "statsd_exporter_sample_errors_total", "statsd_exporter_events_conflict_total"))
	if len(ref) < 10 {
		t.Fatalf("statsd_exporter serves only %d families: the traffic did not reach it:\n%s", len(ref), scrape(se.Metrics))
	}
	for name, rf := range ref {
		gf := got[name]
		if gf == nil {
			t.Errorf("family %s (%s) missing from bucky3's page", name, rf.GetType())
			continue
		}
		compareFamily(t, name, rf, gf, sent)
	}
	for name, gf := range got {
		if ref[name] != nil {
			continue
		}
		if why, ok := compatDifferences[name]; ok {
			t.Logf("bucky3 only: %s (%s): %s", name, gf.GetType(), why)
			continue
		}
		t.Errorf("family %s (%s) only on bucky3's page", name, gf.GetType())
	}
	if got["dropped"] != nil || got["debug_noise"] != nil {
		t.Error("the drop rule's lines are served")
	}
	if f := got["short_lived_total"]; f == nil || len(f.GetMetric()) != 1 || labelsOf(f.GetMetric()[0]) != "which=b" {
		t.Errorf("short_lived_total: want only which=b (a's ttl passed), got %v", f)
	}

	// The protobuf exposition: native histograms beside the classic
	// buckets, compared bucket by bucket.
	natives := 0
	for name, rf := range refNative {
		if rf.GetType() != dto.MetricType_HISTOGRAM {
			continue
		}
		gf := gotNative[name]
		if gf == nil {
			t.Errorf("protobuf: histogram %s missing from bucky3's page", name)
			continue
		}
		gm := byLabels(gf)
		for labels, rs := range byLabels(rf) {
			what := "protobuf " + name + "{" + labels + "}"
			gs := gm[labels]
			if gs == nil {
				t.Errorf("%s missing from bucky3's page", what)
				continue
			}
			rh, gh := rs.GetHistogram(), gs.GetHistogram()
			if rh.GetSchema() != gh.GetSchema() || rh.GetZeroThreshold() != gh.GetZeroThreshold() || rh.GetZeroCount() != gh.GetZeroCount() {
				t.Errorf("%s: schema %d zero %g/%d, statsd_exporter %d zero %g/%d", what,
					gh.GetSchema(), gh.GetZeroThreshold(), gh.GetZeroCount(), rh.GetSchema(), rh.GetZeroThreshold(), rh.GetZeroCount())
			}
			if r, g := nativeBuckets(rh.GetPositiveSpan(), rh.GetPositiveDelta()), nativeBuckets(gh.GetPositiveSpan(), gh.GetPositiveDelta()); r != g {
				t.Errorf("%s: native buckets\n%s\nstatsd_exporter\n%s", what, g, r)
			}
			if r, g := nativeBuckets(rh.GetNegativeSpan(), rh.GetNegativeDelta()), nativeBuckets(gh.GetNegativeSpan(), gh.GetNegativeDelta()); r != g {
				t.Errorf("%s: negative native buckets %s, statsd_exporter %s", what, g, r)
			}
			if len(rh.GetPositiveSpan()) > 0 {
				natives++
			}
		}
	}
	if natives == 0 {
		t.Error("statsd_exporter served no native histogram: the comparison compared nothing")
	}

	cmd := exec.Command(backendtest.Promtool(t), "check", "metrics")
	cmd.Stdin = strings.NewReader(scrape(metrics))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics on the typed page: %v\n%s", err, out)
	}
}

// compareFamily compares one family of statsd_exporter's page (r) with
// bucky3's (g).
func compareFamily(t *testing.T, name string, r, g *dto.MetricFamily, sent map[string][]float64) {
	t.Helper()
	if r.GetType() != g.GetType() {
		t.Errorf("%s: type %s, statsd_exporter %s", name, g.GetType(), r.GetType())
		return
	}
	rm, gm := byLabels(r), byLabels(g)
	if !slices.Equal(sortedKeys(rm), sortedKeys(gm)) {
		t.Errorf("%s: label sets %v, statsd_exporter %v", name, sortedKeys(gm), sortedKeys(rm))
		return
	}
	for labels, rs := range rm {
		gs := gm[labels]
		what := name + "{" + labels + "}"
		switch r.GetType() {
		case dto.MetricType_COUNTER:
			equalValue(t, what, gs.GetCounter().GetValue(), rs.GetCounter().GetValue())
		case dto.MetricType_GAUGE:
			equalValue(t, what, gs.GetGauge().GetValue(), rs.GetGauge().GetValue())
		case dto.MetricType_HISTOGRAM:
			rh, gh := rs.GetHistogram(), gs.GetHistogram()
			if gh.GetSampleCount() != rh.GetSampleCount() {
				t.Errorf("%s: _count %d, statsd_exporter %d", what, gh.GetSampleCount(), rh.GetSampleCount())
			}
			equalValue(t, what+" _sum", gh.GetSampleSum(), rh.GetSampleSum())
			if fmtBuckets(gh.GetBucket()) != fmtBuckets(rh.GetBucket()) {
				t.Errorf("%s: buckets %s, statsd_exporter %s", what, fmtBuckets(gh.GetBucket()), fmtBuckets(rh.GetBucket()))
			}
		case dto.MetricType_SUMMARY:
			rq, gq := rs.GetSummary(), gs.GetSummary()
			if gq.GetSampleCount() != rq.GetSampleCount() {
				t.Errorf("%s: _count %d, statsd_exporter %d", what, gq.GetSampleCount(), rq.GetSampleCount())
			}
			equalValue(t, what+" _sum", gq.GetSampleSum(), rq.GetSampleSum())
			values := slices.Sorted(slices.Values(sent[labelValue(gs, "kind")]))
			if len(gq.GetQuantile()) != len(rq.GetQuantile()) {
				t.Errorf("%s: %d quantiles, statsd_exporter %d", what, len(gq.GetQuantile()), len(rq.GetQuantile()))
			}
			for _, q := range gq.GetQuantile() {
				checkQuantile(t, what, q, values)
			}
		default:
			t.Errorf("%s: unexpected type %s", what, r.GetType())
		}
	}
}

// checkQuantile checks that q's value is one whose rank in the sorted
// values is within the objective's error of its quantile, the guarantee
// of the estimator statsd_exporter uses. The objectives come from the
// mapping file.
func checkQuantile(t *testing.T, what string, q *dto.Quantile, values []float64) {
	t.Helper()
	errs := map[float64]float64{0.99: 0.001, 0.9: 0.01, 0.5: 0.05}
	e, ok := errs[q.GetQuantile()]
	if !ok {
		t.Errorf("%s: quantile %g is not an objective of the mapping", what, q.GetQuantile())
		return
	}
	if len(values) == 0 {
		t.Errorf("%s: no values sent", what)
		return
	}
	n := float64(len(values))
	lo := values[max(0, int(math.Floor((q.GetQuantile()-e)*n))-1)]
	hi := values[min(len(values)-1, int(math.Ceil((q.GetQuantile()+e)*n)))]
	if v := q.GetValue(); v < lo || v > hi {
		t.Errorf("%s: quantile %g = %g, want within [%g, %g]", what, q.GetQuantile(), v, lo, hi)
	}
}

func equalValue(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-9*math.Max(1, math.Abs(want)) {
		t.Errorf("%s = %g, statsd_exporter %g", what, got, want)
	}
}

func fmtBuckets(bs []*dto.Bucket) string {
	var b strings.Builder
	for _, x := range bs {
		fmt.Fprintf(&b, "%g:%d ", x.GetUpperBound(), x.GetCumulativeCount())
	}
	return b.String()
}

func byLabels(f *dto.MetricFamily) map[string]*dto.Metric {
	m := map[string]*dto.Metric{}
	for _, x := range f.GetMetric() {
		m[labelsOf(x)] = x
	}
	return m
}

func labelsOf(m *dto.Metric) string {
	var kv []string
	for _, l := range m.GetLabel() {
		kv = append(kv, l.GetName()+"="+l.GetValue())
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	})
}

func sumFamily(f *dto.MetricFamily, label, value string) float64 {
	var sum float64
	for _, m := range f.GetMetric() {
		if labelValue(m, label) == value {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue()
		}
	}
	return sum
}

func grepLines(page string, prefixes ...string) string {
	var out []string
	for _, l := range strings.Split(page, "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				out = append(out, l)
			}
		}
	}
	return strings.Join(out, "\n")
}
