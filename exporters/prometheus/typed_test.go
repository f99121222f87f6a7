package prometheus

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/bucky3/bucky3/engine"
)

// typedMetric is a metric as the typed statsd layout sends it: the
// metric name as bucket and one field named value.
func typedMetric(name string, tags []engine.Tag, v engine.Value) engine.Metric {
	return engine.Metric{Bucket: name, Tags: tags, Fields: []engine.Field{{Name: fieldLabel, Value: v}}}
}

func gaugeDelta(n float64) engine.Value { return engine.Value{Kind: engine.KindGaugeDelta, Num: n} }

// histogram returns a KindHistogram of values in classic buckets bounds
// (nil: none) and, when schema is not nil, native buckets of *schema.
func histogram(bounds []float64, schema *int32, values ...float64) engine.Value {
	d := &engine.Distribution{Count: uint64(len(values))}
	if bounds != nil {
		d.Bounds = bounds
		d.Counts = make([]uint64, len(bounds)+1)
	}
	if schema != nil {
		d.Native = &engine.NativeBuckets{Schema: *schema, ZeroThreshold: math.Ldexp(1, -128)}
	}
	for _, v := range values {
		d.Sum += v
		if bounds != nil {
			i, _ := slices.BinarySearch(bounds, v) // v <= bounds[i]
			d.Counts[i]++
		}
		if d.Native != nil {
			addNative(d.Native, v)
		}
	}
	return engine.Value{Kind: engine.KindHistogram, Dist: d}
}

// addNative adds v to n: the bucket i with base^(i-1) < |v| <= base^i.
func addNative(n *engine.NativeBuckets, v float64) {
	if math.Abs(v) <= n.ZeroThreshold {
		n.ZeroCount++
		return
	}
	idx := int32(math.Ceil(math.Log2(math.Abs(v)) * math.Ldexp(1, int(n.Schema))))
	buckets := &n.Positive
	if v < 0 {
		buckets = &n.Negative
	}
	i, found := slices.BinarySearchFunc(*buckets, idx, func(b engine.NativeBucket, t int32) int { return int(b.Index) - int(t) })
	if found {
		(*buckets)[i].Count++
		return
	}
	*buckets = slices.Insert(*buckets, i, engine.NativeBucket{Index: idx, Count: 1})
}

// summary returns a KindSummary of count observations summing to sum,
// of which samples were kept.
func summary(count uint64, sum float64, samples ...float64) engine.Value {
	return engine.Value{Kind: engine.KindSummary, Dist: &engine.Distribution{Count: count, Sum: sum, Samples: samples}}
}

func schemaOf(s int32) *int32 { return &s }

func startTyped(t *testing.T, edit func(*Options)) *harness {
	t.Helper()
	return start(t, func(o *Options) {
		o.Layout = layoutTyped
		if edit != nil {
			edit(o)
		}
	})
}

// typedBatches are two flushes of every kind of value, with names and
// tags that need escaping.
func typedBatches() [][]engine.Metric {
	get := []engine.Tag{{Key: "code", Value: "200"}, {Key: "method", Value: "GET"}}
	help := &engine.TypeMeta{Help: "Requests served.\nBy code."}
	bounds := []float64{0.1, 0.5, 1}
	return [][]engine.Metric{{
		{Bucket: "http.requests", Tags: get, Fields: []engine.Field{{Name: fieldLabel, Value: engine.Value{Kind: engine.KindCounter, Num: 3, Meta: help}}}},
		typedMetric("9lives", nil, engine.CounterIncrease(1)),
		typedMetric("queue--size", []engine.Tag{{Key: "a.b", Value: "x\"y"}}, engine.Number(7)),
		typedMetric("drift", nil, gaugeDelta(-2)),
		typedMetric("req_latency", []engine.Tag{{Key: "route", Value: "/"}}, histogram(bounds, nil, 0.05, 0.3, 0.3, 2)),
		typedMetric("native_only", nil, histogram(nil, schemaOf(0), 0.5, 3, 3)),
		typedMetric("rpc_seconds", nil, summary(5, 15, 1, 2, 3, 4, 5)),
		metric("system_cpu", 1700000000123, tagsHostCPU, num("idle", 97.5), num("user", 1.25)),
	}, {
		typedMetric("http.requests", get, engine.CounterIncrease(2)),
		typedMetric("queue--size", []engine.Tag{{Key: "a.b", Value: "x\"y"}}, gaugeDelta(-2)),
		typedMetric("drift", nil, gaugeDelta(-0.5)),
		typedMetric("req_latency", []engine.Tag{{Key: "route", Value: "/"}}, histogram(bounds, nil, 0.5)),
		typedMetric("rpc_seconds", nil, summary(1, 6, 6)),
	}}
}

func TestTypedPageGolden(t *testing.T) {
	h := startTyped(t, nil)
	for _, b := range typedBatches() {
		h.send(b...)
	}
	page := h.scrape(t)
	golden := filepath.Join("testdata", "typed.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(page), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if page != string(want) {
		t.Errorf("page differs from %s (go test -update rewrites it):\n%s", golden, page)
	}
	fams := parsePage(t, page)
	for name, typ := range map[string]dto.MetricType{
		"http_requests": dto.MetricType_COUNTER, "queue_size": dto.MetricType_GAUGE,
		"req_latency": dto.MetricType_HISTOGRAM, "rpc_seconds": dto.MetricType_SUMMARY,
		"system_cpu_idle": dto.MetricType_GAUGE,
	} {
		if fams[name] == nil || fams[name].GetType() != typ {
			t.Errorf("family %s: %v, want type %v", name, fams[name], typ)
		}
	}
}

func TestTypedPromtoolAcceptsPage(t *testing.T) {
	promtool := promtoolPath(t)
	h := startTyped(t, func(o *Options) { o.SelfMetrics = true })
	for _, b := range typedBatches() {
		// Counters keep their names, as in statsd_exporter, and promtool
		// wants them to end in _total: the test's names do.
		for i := range b {
			if b[i].Fields[0].Value.Kind == engine.KindCounter {
				b[i].Bucket += ".total"
			}
		}
		h.send(b...)
	}
	resp, body := h.get(t, http.MethodGet, "/metrics", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s\npage:\n%s", err, out, body)
	}
}

// typedStoreAt returns a typed store for tests that drive its clock.
func typedStoreAt(t *testing.T, ttl time.Duration) (*typedStore, *engine.Stats) {
	t.Helper()
	stats := engine.NewStats()
	return newTypedStore(slog.New(slog.DiscardHandler), stats, storeLimits{}, ttl, time.Minute), stats
}

func ingestAt(s *typedStore, now time.Duration, metrics ...engine.Metric) {
	s.ingest(&engine.Batch{Source: "test", Metrics: metrics}, int64(now))
}

func textOf(s *typedStore) string {
	b, _ := s.appendText(nil)
	return string(b)
}

func TestTypedCountersSurviveFlushes(t *testing.T) {
	s, _ := typedStoreAt(t, 0)
	for i := range 10 {
		ingestAt(s, time.Duration(i)*time.Hour, typedMetric("hits", nil, engine.CounterIncrease(1.5)))
		s.expire(int64(time.Duration(i)*time.Hour + time.Minute))
	}
	if got, want := textOf(s), "# HELP hits "+defaultHelp+"\n# TYPE hits counter\nhits 15\n"; got != want {
		t.Errorf("page %q, want %q", got, want)
	}
}

func TestTypedTTL(t *testing.T) {
	s, stats := typedStoreAt(t, 30*time.Second)
	short := &engine.TypeMeta{TTL: 5 * time.Second}
	ingestAt(s, 0,
		engine.Metric{Bucket: "short", Fields: []engine.Field{{Name: fieldLabel, Value: engine.Value{Kind: engine.KindCounter, Num: 1, Meta: short}}}},
		typedMetric("default", nil, engine.CounterIncrease(1)),
		metric("host", 0, nil, num("load", 1)), // values_timeout, a minute here
	)
	has := func(now time.Duration, want ...string) {
		t.Helper()
		s.expire(int64(now))
		if got := s.names; !slices.Equal(got, want) {
			t.Errorf("at %v: families %v, want %v", now, got, want)
		}
		if g := stats.Gauge("series").Load(); g != int64(len(want)) {
			t.Errorf("at %v: series gauge %d, want %d", now, g, len(want))
		}
	}
	has(5*time.Second, "default", "host_load", "short")
	has(6*time.Second, "default", "host_load")
	// An update restarts the idle time.
	ingestAt(s, 20*time.Second, typedMetric("default", nil, engine.CounterIncrease(1)))
	has(50*time.Second, "default", "host_load")
	has(51*time.Second, "host_load")
	has(61 * time.Second)

	// ttl 0 keeps a typed series for ever.
	s, _ = typedStoreAt(t, 0)
	ingestAt(s, 0, typedMetric("forever", nil, engine.Number(1)))
	s.expire(int64(1000 * time.Hour))
	if len(s.names) != 1 {
		t.Errorf("ttl 0: families %v, want forever", s.names)
	}
}

func TestTypedConflictsAreCountedNotServed(t *testing.T) {
	s, stats := typedStoreAt(t, 0)
	a := []engine.Tag{{Key: "a", Value: "1"}}
	ingestAt(s, 0,
		typedMetric("x", a, engine.CounterIncrease(1)),
		typedMetric("x", a, engine.Number(5)), // type
		// Other label names are no conflict, as in statsd_exporter.
		typedMetric("x", []engine.Tag{{Key: "b", Value: "1"}}, engine.CounterIncrease(1)),
		typedMetric("x", nil, engine.CounterIncrease(1)),
		typedMetric("h", nil, histogram([]float64{1, 2}, nil, 1)),
		typedMetric("h", nil, histogram([]float64{1, 3}, nil, 1)), // buckets
		typedMetric("h_count", nil, engine.Number(1)),             // a sample name of h
		typedMetric("s_sum", nil, engine.Number(1)),
		typedMetric("s", nil, summary(1, 1, 1)), // its _sum is taken
		typedMetric("x", a, engine.CounterIncrease(-1)),
	)
	page := textOf(s)
	checkPage(t, page)
	want := "# HELP h " + defaultHelp + "\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n" +
		"# HELP s_sum " + defaultHelp + "\n# TYPE s_sum gauge\ns_sum 1\n" +
		"# HELP x " + defaultHelp + "\n# TYPE x counter\nx 1\nx{a=\"1\"} 1\nx{b=\"1\"} 1\n"
	if page != want {
		t.Errorf("page:\n%s\nwant:\n%s", page, want)
	}
	got := s.conflictCounts()
	if wantCounts := map[string]uint64{"x": 1, "h": 1, "h_count": 1, "s": 1}; !mapsEqual(got, wantCounts) {
		t.Errorf("conflicts %v, want %v", got, wantCounts)
	}
	if n := stats.Counter("metrics_dropped_typed_conflict").Load(); n != 4 {
		t.Errorf("metrics_dropped_typed_conflict = %d, want 4", n)
	}
	if n := stats.Counter("metrics_dropped_negative_counter").Load(); n != 1 {
		t.Errorf("metrics_dropped_negative_counter = %d, want 1", n)
	}
	if n := stats.Counter("metrics_dropped").Load(); n != 5 {
		t.Errorf("metrics_dropped = %d, want 5", n)
	}
	// The names are bounded.
	for i := range 2 * maxConflictNames {
		name := "c" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		ingestAt(s, 0, typedMetric(name, nil, engine.CounterIncrease(1)), typedMetric(name, nil, engine.Number(1)))
	}
	if got := s.conflictCounts(); len(got) != maxConflictNames+1 || got[otherConflicts] == 0 {
		t.Errorf("%d conflict names (%d under %s), want %d and the rest under it", len(got), got[otherConflicts], otherConflicts, maxConflictNames+1)
	}
}

func mapsEqual(a, b map[string]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestTypedConflictsSelfMetric(t *testing.T) {
	h := startTyped(t, func(o *Options) { o.SelfMetrics = true })
	h.send(typedMetric("x", nil, engine.CounterIncrease(1)), typedMetric("x", nil, engine.Number(1)))
	_, body := h.get(t, http.MethodGet, "/metrics", nil)
	if !strings.Contains(string(body), "bucky3_typed_conflicts_total{module=\"prom\",name=\"x\"} 1\n") {
		t.Errorf("no conflict count on the page:\n%s", body)
	}
}

func TestTypedSummaryQuantiles(t *testing.T) {
	f := func(name string, sampled int) {
		t.Helper()
		s, _ := typedStoreAt(t, 0)
		r := rand.New(rand.NewPCG(1, 2))
		var all []float64
		for i := range 100 {
			values := make([]float64, 1000)
			sum := 0.0
			for j := range values {
				values[j] = r.Float64()
				sum += values[j]
			}
			all = append(all, values...)
			ingestAt(s, time.Duration(i)*time.Second, typedMetric("lat", nil, summary(1000, sum, values[:sampled]...)))
		}
		slices.Sort(all)
		ser := s.families["lat"].order[0]
		if ser.summ.count != 100_000 {
			t.Errorf("%s: count %d, want 100000", name, ser.summ.count)
		}
		for i, o := range ser.summ.objectives {
			// The estimate's rank is within Error of Q; with a sample,
			// allow the sampling error too.
			allowed := o.Error
			if sampled < 1000 {
				allowed += 3 * math.Sqrt(o.Q*(1-o.Q)/float64(100*sampled))
			}
			rank := float64(below(all, ser.summ.values[i])) / float64(len(all))
			if math.Abs(rank-o.Q) > allowed {
				t.Errorf("%s: quantile %v estimated %v at rank %v, want within %v", name, o.Q, ser.summ.values[i], rank, allowed)
			}
		}
	}
	f("every observation", 1000)
	f("a uniform tenth", 100)
}

// below returns how many of the sorted values are below v.
func below(sorted []float64, v float64) int {
	i, _ := slices.BinarySearch(sorted, v)
	return i
}

func TestTypedSummaryWindow(t *testing.T) {
	s, _ := typedStoreAt(t, 0)
	meta := &engine.TypeMeta{MaxAge: 10 * time.Second, AgeBuckets: 2}
	ingestAt(s, 0, engine.Metric{Bucket: "w", Fields: []engine.Field{{Name: fieldLabel, Value: engine.Value{Kind: engine.KindSummary, Meta: meta, Dist: &engine.Distribution{Count: 1, Sum: 4, Samples: []float64{4}}}}}})
	q := func() float64 { return s.families["w"].order[0].summ.values[0] }
	if q() != 4 {
		t.Fatalf("median %v, want 4", q())
	}
	v := s.version.Load()
	s.expire(int64(9 * time.Second))
	if q() != 4 {
		t.Errorf("median %v after 9 s of a 10 s window, want 4", q())
	}
	s.expire(int64(10 * time.Second))
	if !math.IsNaN(q()) || s.version.Load() == v {
		t.Errorf("median %v after the window, want NaN and a new page", q())
	}
	if got := s.families["w"].order[0].summ.count; got != 1 {
		t.Errorf("count %d, want 1: sum and count are cumulative", got)
	}
}

// TestTypedNativeMatchesClientGolang feeds the same observations to a
// client_golang histogram and, one per interval, to the typed layout:
// both must write the same native buckets, through the resolution
// reductions the bucket cap forces.
func TestTypedNativeMatchesClientGolang(t *testing.T) {
	const factor, maxBuckets = 1.1, 20
	ref := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ref", Help: "ref", NativeHistogramBucketFactor: factor, NativeHistogramMaxBucketNumber: maxBuckets})
	s, _ := typedStoreAt(t, 0)
	meta := &engine.TypeMeta{NativeMaxBuckets: maxBuckets}
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 3000 {
		v := math.Exp(r.NormFloat64() * 3)
		if i%10 == 0 {
			v = -v
		}
		if i%97 == 0 {
			v = 0
		}
		ref.Observe(v)
		val := histogram(nil, schemaOf(3), v)
		val.Meta = meta
		ingestAt(s, 0, typedMetric("h", nil, val))
	}
	var want dto.Metric
	if err := ref.Write(&want); err != nil {
		t.Fatal(err)
	}
	got := s.families["h"].order[0].hist.dto()
	w := want.GetHistogram()
	if got.GetSchema() != w.GetSchema() || got.GetZeroCount() != w.GetZeroCount() || got.GetSampleCount() != w.GetSampleCount() {
		t.Errorf("schema %d zero %d count %d, want %d %d %d", got.GetSchema(), got.GetZeroCount(), got.GetSampleCount(), w.GetSchema(), w.GetZeroCount(), w.GetSampleCount())
	}
	if w.GetSchema() >= 3 {
		t.Errorf("client_golang kept schema %d: the test should force reductions", w.GetSchema())
	}
	for _, side := range []struct {
		name        string
		got, want   []*dto.BucketSpan
		gotD, wantD []int64
	}{{"positive", got.PositiveSpan, w.PositiveSpan, got.PositiveDelta, w.PositiveDelta}, {"negative", got.NegativeSpan, w.NegativeSpan, got.NegativeDelta, w.NegativeDelta}} {
		if spans(side.got) != spans(side.want) || !slices.Equal(side.gotD, side.wantD) {
			t.Errorf("%s: spans %s deltas %v, want %s %v", side.name, spans(side.got), side.gotD, spans(side.want), side.wantD)
		}
	}
}

func spans(s []*dto.BucketSpan) string {
	var b strings.Builder
	for _, x := range s {
		fmt.Fprintf(&b, "[%d:%d]", x.GetOffset(), x.GetLength())
	}
	return b.String()
}

func TestTypedNativeHalving(t *testing.T) {
	f := func(in []int32, want ...int32) {
		t.Helper()
		var b []engine.NativeBucket
		for _, i := range in {
			b = append(b, engine.NativeBucket{Index: i, Count: 1})
		}
		var got []int32
		for _, x := range halve(b) {
			got = append(got, x.Index)
		}
		if !slices.Equal(got, want) {
			t.Errorf("halve(%v) = %v, want %v", in, got, want)
		}
	}
	// Bucket i covers (base^(i-1), base^i]: pairs (2k-1, 2k) merge into k.
	f([]int32{-3, -2, -1, 0, 1, 2, 3, 4}, -1, 0, 1, 2)
	f([]int32{5}, 3)
	f(nil)
}

// scrapeProto scrapes h asking for the delimited protobuf format as
// Prometheus does with native histograms on.
func scrapeProto(t *testing.T, h *harness) map[string]*dto.MetricFamily {
	t.Helper()
	resp, body := h.get(t, http.MethodGet, "/metrics", http.Header{"Accept": {
		"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"}})
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != protoContentType {
		t.Fatalf("status %d, Content-Type %q, want 200 and %q", resp.StatusCode, resp.Header.Get("Content-Type"), protoContentType)
	}
	dec := expfmt.NewDecoder(bytes.NewReader(body), expfmt.NewFormat(expfmt.TypeProtoDelim))
	fams := map[string]*dto.MetricFamily{}
	for {
		mf := &dto.MetricFamily{}
		if err := dec.Decode(mf); errors.Is(err, io.EOF) {
			return fams
		} else if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if fams[mf.GetName()] != nil {
			t.Errorf("family %s twice", mf.GetName())
		}
		fams[mf.GetName()] = mf
	}
}

func TestTypedProtobufExposition(t *testing.T) {
	for _, gz := range []bool{false, true} {
		h := startTyped(t, func(o *Options) {
			o.SelfMetrics = true
			if gz {
				o.Compression = "gzip"
			}
		})
		both := histogram([]float64{1, 2}, schemaOf(1), 0, 0.5, 1.5, 1.5, 3)
		h.send(
			typedMetric("both", []engine.Tag{{Key: "k", Value: "v\xff"}}, both),
			typedMetric("hits", nil, engine.CounterIncrease(2)),
		)
		h.client.Transport.(*http.Transport).DisableCompression = !gz
		fams := scrapeProto(t, h)
		hits := fams["hits"]
		if hits.GetType() != dto.MetricType_COUNTER || hits.Metric[0].GetCounter().GetValue() != 2 {
			t.Errorf("hits: %v", hits)
		}
		if fams["bucky3_build_info"] == nil || fams["go_goroutines"] == nil {
			t.Errorf("the own metrics are missing from the protobuf page")
		}
		m := fams["both"].GetMetric()[0]
		if l := m.GetLabel()[0]; l.GetName() != "k" || l.GetValue() != "v\uFFFD" {
			t.Errorf("label %v", l)
		}
		hg := m.GetHistogram()
		// Schema 1: 0.5 is in bucket -2, 1.5 in bucket 2 (√2 < 1.5 <= 2),
		// 3 in bucket 4 (2√2 < 3 <= 4); 0 in the zero bucket.
		if hg.GetSchema() != 1 || hg.GetZeroCount() != 1 || hg.GetSampleCount() != 5 || hg.GetSampleSum() != 6.5 {
			t.Errorf("histogram %v", hg)
		}
		if got, want := spans(hg.PositiveSpan), "[-2:1][3:3]"; got != want || !slices.Equal(hg.PositiveDelta, []int64{1, 1, -2, 1}) {
			t.Errorf("spans %s deltas %v, want %s [1 1 -2 1]", got, hg.PositiveDelta, want)
		}
		var cum []uint64
		for _, b := range hg.Bucket {
			cum = append(cum, b.GetCumulativeCount())
		}
		if !slices.Equal(cum, []uint64{2, 4}) {
			t.Errorf("classic buckets %v, want [2 4]", cum)
		}
		// A text scrape of the same store still gets the text page.
		if page := h.scrape(t); !strings.Contains(page, "both_bucket{k=\"v\uFFFD\",le=\"+Inf\"} 5\n") {
			t.Errorf("text page:\n%s", page)
		}
	}
}

// FuzzTypedPage feeds arbitrary names, tags and values to the typed
// layout: the text page must parse without problems and the protobuf page
// must decode to the same families.
func FuzzTypedPage(f *testing.F) {
	f.Add("http.requests", "code", "200", "a.b", "x\"y", "", uint8(0), 3.0)
	f.Add("9lives", "__name__", "v", "9k", "\xff", "idle\xff", uint8(1), -1.0)
	f.Add("a--b", "", "", "a_b", "2", "", uint8(2), 0.5)
	f.Add("日本", "k", "\n", "k", "v", "", uint8(3), math.Inf(1))
	f.Add("", "x", "y", "z", "w", "f", uint8(4), math.NaN())
	f.Fuzz(func(t *testing.T, bucket, k1, v1, k2, v2, field string, kind uint8, v float64) {
		s, _ := typedStoreAt(t, 0)
		tags := engine.SortTags([]engine.Tag{{Key: k1, Value: v1}, {Key: k2, Value: v2}})
		var val engine.Value
		switch kind % 5 {
		case 0:
			val = engine.CounterIncrease(v)
		case 1:
			val = engine.Number(v)
		case 2:
			val = gaugeDelta(v)
		case 3:
			val = histogram([]float64{0.5, 1}, schemaOf(int32(kind%12)-4), v)
		case 4:
			val = summary(1, v, v)
		}
		val.Meta = &engine.TypeMeta{Help: v1}
		m := typedMetric(bucket, tags, val)
		if field != "" {
			m.Fields[0].Name = field
		}
		ingestAt(s, 0, m, m)
		text := textOf(s)
		fams := parsePage(t, text)
		for _, p := range pageProblems(text) {
			t.Error(p)
		}
		b, _ := s.appendProto(nil)
		dec := expfmt.NewDecoder(bytes.NewReader(b), expfmt.NewFormat(expfmt.TypeProtoDelim))
		n := 0
		for {
			mf := &dto.MetricFamily{}
			err := dec.Decode(mf)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("protobuf page does not decode: %v", err)
			}
			if fams[mf.GetName()] == nil || fams[mf.GetName()].GetType() != mf.GetType() {
				t.Errorf("protobuf family %s %v not on the text page:\n%s", mf.GetName(), mf.GetType(), text)
			}
			n++
		}
		if n != len(fams) {
			t.Errorf("%d protobuf families, %d text ones:\n%s", n, len(fams), text)
		}
	})
}

func TestTypedLimits(t *testing.T) {
	stats := engine.NewStats()
	tight := &budget{}
	s := newTypedStore(slog.New(slog.DiscardHandler), stats, storeLimits{maxSeries: 2, memory: tight}, time.Second, time.Second)
	ingestAt(s, 0, typedMetric("a", nil, engine.Number(1)), typedMetric("b", nil, engine.Number(1)), typedMetric("c", nil, engine.Number(1)))
	if !slices.Equal(s.names, []string{"a", "b"}) || stats.Counter("metrics_dropped_max_series").Load() != 1 {
		t.Errorf("families %v, %d dropped for max_series; want a b and 1", s.names, stats.Counter("metrics_dropped_max_series").Load())
	}
	// Known series keep updating; expiry makes room, which a tight
	// memory budget refuses.
	ingestAt(s, 2*time.Second, typedMetric("a", nil, engine.Number(2)))
	s.expire(int64(2 * time.Second))
	tight.tight = true
	ingestAt(s, 2*time.Second, typedMetric("c", nil, engine.Number(1)))
	if !slices.Equal(s.names, []string{"a"}) || stats.Counter("metrics_dropped_memory_limit").Load() != 1 {
		t.Errorf("families %v, %d dropped for memory; want a and 1", s.names, stats.Counter("metrics_dropped_memory_limit").Load())
	}
	tight.tight = false
	ingestAt(s, 2*time.Second, typedMetric("c", nil, engine.Number(1)))
	if !slices.Equal(s.names, []string{"a", "c"}) {
		t.Errorf("families %v, want a c", s.names)
	}
}

func TestTypedOptions(t *testing.T) {
	types := []engine.Type{engine.DestinationType("prometheus_exporter", DefaultOptions, New)}
	f := func(options, wantErr string) {
		t.Helper()
		_, err := engine.Parse([]byte("[p]\nmodule_type = \"prometheus_exporter\"\n"+options), types, func(string) (string, bool) { return "", false })
		if wantErr == "" {
			if err != nil {
				t.Errorf("%q: %v, want valid", options, err)
			}
			return
		}
		if err == nil || !strings.Contains(err.Error(), wantErr) || !strings.Contains(err.Error(), `"p"`) {
			t.Errorf("%q: %v, want an error naming the module and %q", options, err, wantErr)
		}
	}
	f("layout = \"typed\"\nttl = 300\n", "")
	f("layout = \"bucky3\"\nttl = 0\n", "")
	f("layout = \"statsd\"\n", "layout:")
	f("ttl = -1\n", "ttl:")
	f("ttl = 0.0001\n", "ttl:")
}

// TestTypedConcurrentScrapes has text and protobuf scrapers, with and
// without gzip, read the typed page while batches arrive: every page is
// whole and consistent (one batch moves the counter, the histogram and the
// summary together) and no scraper sees the store go back.
func TestTypedConcurrentScrapes(t *testing.T) {
	const batches = 200
	h := startTyped(t, func(o *Options) { o.Compression = "gzip"; o.SelfMetrics = true })
	h.client.Transport.(*http.Transport).DisableCompression = false
	done := make(chan struct{})
	var wg sync.WaitGroup
	for c := range 4 {
		wg.Go(func() {
			proto, gz := c%2 == 1, c >= 2
			last := 0.0
			for n := 0; ; n++ {
				select {
				case <-done:
					if n >= 3 {
						return
					}
				default:
				}
				k, err := scrapeTypedCount(h, proto, gz)
				if err != nil {
					t.Errorf("scraper %d (protobuf %v, gzip %v): %v", c, proto, gz, err)
					return
				}
				if k < last {
					t.Errorf("scraper %d: %v batches after %v", c, k, last)
					return
				}
				last = k
			}
		})
	}
	for range batches {
		h.send(
			typedMetric("hits", nil, engine.CounterIncrease(1)),
			typedMetric("lat", nil, histogram([]float64{1}, schemaOf(0), 0.5)),
			typedMetric("rpc", nil, summary(1, 2, 2)),
		)
	}
	close(done)
	wg.Wait()
	for c := range 4 {
		if k, err := scrapeTypedCount(h, c%2 == 1, c >= 2); err != nil || k != batches {
			t.Errorf("final scrape %d: %v batches, %v; want %d", c, k, err, batches)
		}
	}
}

// scrapeTypedCount scrapes h and returns how many batches of the test
// above the page shows, checking that its families agree.
func scrapeTypedCount(h *harness, protobuf, gz bool) (float64, error) {
	req, err := http.NewRequest(http.MethodGet, h.url+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	if protobuf {
		req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeProtoDelim)))
	}
	if !gz {
		req.Header.Set("Accept-Encoding", "identity")
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.Uncompressed != gz {
		return 0, fmt.Errorf("gzip response %v, asked for %v", resp.Uncompressed, gz)
	}
	format := expfmt.ResponseFormat(resp.Header)
	if (format.FormatType() == expfmt.TypeProtoDelim) != protobuf {
		return 0, fmt.Errorf("format %s, protobuf asked %v", format, protobuf)
	}
	dec := expfmt.NewDecoder(resp.Body, format)
	fams := map[string]*dto.MetricFamily{}
	for {
		mf := &dto.MetricFamily{}
		if err := dec.Decode(mf); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return 0, err
		}
		fams[mf.GetName()] = mf
	}
	if fams["hits"] == nil {
		if fams["lat"] != nil || fams["rpc"] != nil {
			return 0, fmt.Errorf("lat or rpc without hits")
		}
		return 0, nil
	}
	k := fams["hits"].GetMetric()[0].GetCounter().GetValue()
	hist := fams["lat"].GetMetric()[0].GetHistogram()
	sum := fams["rpc"].GetMetric()[0].GetSummary()
	if float64(hist.GetSampleCount()) != k || float64(sum.GetSampleCount()) != k || sum.GetSampleSum() != 2*k {
		return 0, fmt.Errorf("hits %v, lat count %d, rpc count %d sum %v: one page, several stores", k, hist.GetSampleCount(), sum.GetSampleCount(), sum.GetSampleSum())
	}
	if protobuf && hist.GetSchema() != 0 || fams["bucky3_build_info"] == nil {
		return 0, fmt.Errorf("native schema %d, own metrics %v", hist.GetSchema(), fams["bucky3_build_info"] != nil)
	}
	return k, nil
}

func TestTypedSummaryOddOptions(t *testing.T) {
	s, _ := typedStoreAt(t, 0)
	meta := &engine.TypeMeta{MaxAge: time.Nanosecond, AgeBuckets: 7, Quantiles: []engine.Quantile{{Q: 0.9, Error: 0.01}, {Q: 0.5, Error: 0.05}, {Q: 0.9, Error: 0.001}}}
	v := summary(2, 3, 1, 2)
	v.Meta = meta
	ingestAt(s, 0, typedMetric("odd", nil, v))
	s.expire(int64(time.Hour)) // must return
	page := textOf(s)
	checkPage(t, page)
	if want := "odd{quantile=\"0.5\"} NaN\nodd{quantile=\"0.9\"} NaN\nodd_sum 3\nodd_count 2\n"; !strings.HasSuffix(page, want) {
		t.Errorf("page:\n%s\nwant it to end with\n%s", page, want)
	}
}
