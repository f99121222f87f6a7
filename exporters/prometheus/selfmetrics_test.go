package prometheus

import (
	"context"
	"log/slog"
	"maps"
	"net/http"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/bucky3/bucky3/engine"
)

func TestWithoutTotals(t *testing.T) {
	f := func(names string, want string) {
		t.Helper()
		var values []engine.StatValue
		for n := range strings.FieldsSeq(names) {
			g := strings.HasPrefix(n, "gauge:")
			values = append(values, engine.StatValue{Name: strings.TrimPrefix(n, "gauge:"), Gauge: g})
		}
		var got []string
		for _, v := range withoutTotals(values) {
			got = append(got, v.Name)
		}
		if strings.Join(got, " ") != want {
			t.Errorf("withoutTotals(%s) = %q, want %q", names, got, want)
		}
	}
	f("lines_invalid lines_invalid_bad_type lines_received", "lines_invalid_bad_type lines_received")
	f("metrics_dropped metrics_droppedX metrics_dropped_max_series", "metrics_droppedX metrics_dropped_max_series")
	f("metrics_dropped metrics_sent", "metrics_dropped metrics_sent")
	// Only loss counters are totals; a gauge beside is not a reason.
	f("metrics_received metrics_received_bytes", "metrics_received metrics_received_bytes")
	f("packets_dropped gauge:packets_dropped_x", "packets_dropped packets_dropped_x")
}

func TestMapStat(t *testing.T) {
	src, dst := engine.ModuleSource, engine.ModuleDestination
	f := func(kind engine.ModuleKind, name string, gauge bool, family, reason string) {
		t.Helper()
		got := mapStat(kind, engine.StatValue{Name: name, Gauge: gauge})
		if got.family != family || got.reason != reason {
			t.Errorf("mapStat(%v, %q, gauge %v) = %+v, want %s reason %q", kind, name, gauge, got, family, reason)
		}
	}
	f(src, "lines_received", false, "bucky3_lines_received_total", "")
	f(src, "lines_invalid_bad_value", false, "bucky3_lines_dropped_total", "invalid_bad_value")
	f(src, "lines_invalid", false, "bucky3_lines_dropped_total", "invalid")
	f(src, "lines_dropped_too_long", false, "bucky3_lines_dropped_total", "too_long")
	f(src, "metrics_dropped_max_series", false, "bucky3_lines_dropped_total", "max_series")
	f(src, "metrics_dropped", false, "bucky3_lines_dropped_total", "unspecified")
	f(src, "packets_dropped_kernel", false, "bucky3_packets_dropped_kernel_total", "")
	f(src, "packets_dropped_too_large", false, "bucky3_packets_dropped_total", "too_large")
	f(src, "values_not_finite", false, "bucky3_metrics_dropped_total", "not_finite")
	f(src, "series", true, "bucky3_series", "")
	f(src, "read_errors", false, "bucky3_read_errors_total", "")
	f(src, "metrics_sent", false, "bucky3_metrics_sent_total", "")
	f(dst, "metrics_sent", false, "bucky3_metrics_sent_total", "")
	f(dst, "metrics_dropped_inbox_full", false, "bucky3_metrics_dropped_total", "inbox_full")
	f(dst, "metrics_dropped", false, "bucky3_metrics_dropped_total", "unspecified")
	f(dst, "metrics_buffered", true, "bucky3_queue_length", "")
	f(dst, "lines_received", false, "bucky3_lines_received_total", "")
	f(dst, "values_not_finite", false, "bucky3_metrics_dropped_total", "not_finite")
	f(dst, "odd.name-1", true, "bucky3_odd_name_1", "")
	f(dst, "odd.name-1", false, "bucky3_odd_name_1_total", "")
}

// selfSamples scrapes h and returns its bucky3_* samples as
// "family{labels} value" lines, sorted, build info left out.
func selfSamples(t *testing.T, h *harness) []string {
	t.Helper()
	fams := parsePage(t, h.scrape(t))
	var out []string
	for name, fam := range fams {
		if !strings.HasPrefix(name, "bucky3_") || name == "bucky3_build_info" {
			continue
		}
		for _, m := range fam.Metric {
			var labels []string
			for _, l := range m.Label {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			out = append(out, name+"{"+strings.Join(labels, ",")+"} "+strings.ToLower(fam.GetType().String())+" "+strconv.FormatFloat(v, 'g', -1, 64))
		}
	}
	slices.Sort(out)
	return out
}

// TestSelfMetricsFromAllStats serves the counters of a fake agent's
// modules and checks every sample the mapping makes of them.
func TestSelfMetricsFromAllStats(t *testing.T) {
	statsd := engine.NewStats()
	for name, n := range map[string]uint64{
		"lines_received": 10, "lines_invalid": 3, "lines_invalid_bad_value": 2, "lines_invalid_bad_type": 1,
		"packets_dropped": 5, "packets_dropped_kernel": 4, "packets_dropped_too_large": 1,
		"metrics_dropped": 6, "metrics_dropped_max_series": 6, "lines_dropped_max_series": 1,
		"values_not_finite": 7, "read_errors": 0,
	} {
		statsd.Counter(name).Add(n)
	}
	statsd.Gauge("series").Set(42)
	statsd.Gauge("odd-gauge").Set(-3)
	influx := engine.NewStats()
	influx.Counter("metrics_sent").Add(100)
	influx.Counter("metrics_dropped").Add(3)
	influx.Counter("metrics_dropped_inbox_full").Add(2)
	influx.Counter("metrics_dropped_buffer_full").Add(1)
	influx.Gauge("metrics_buffered").Set(9)
	all := []engine.ModuleStats{
		{Name: "statsd", Kind: engine.ModuleSource, Stats: statsd},
		{Name: "influx", Kind: engine.ModuleDestination, Stats: influx},
	}

	o := DefaultOptions()
	o.LocalHost = "127.0.0.1:0"
	stats := engine.NewStats()
	m := engine.Module{Name: "prom", Type: "prometheus_exporter", Log: slog.New(slog.DiscardHandler), Stats: stats,
		AllStats: func() []engine.ModuleStats {
			return append(all, engine.ModuleStats{Name: "prom", Kind: engine.ModuleDestination, Stats: stats})
		}}
	h := startModule(t, m, o)

	want := []string{
		"bucky3_flush_errors_total{module=influx} counter 0",
		"bucky3_flush_errors_total{module=prom} counter 0",
		"bucky3_flush_errors_total{module=statsd} counter 0",
		"bucky3_lines_dropped_total{module=statsd,reason=invalid_bad_type} counter 1",
		"bucky3_lines_dropped_total{module=statsd,reason=invalid_bad_value} counter 2",
		// lines_dropped_max_series and metrics_dropped_max_series add up.
		"bucky3_lines_dropped_total{module=statsd,reason=max_series} counter 7",
		"bucky3_lines_received_total{module=statsd} counter 10",
		"bucky3_metrics_dropped_total{module=influx,reason=buffer_full} counter 1",
		"bucky3_metrics_dropped_total{module=influx,reason=inbox_full} counter 2",
		"bucky3_metrics_dropped_total{module=prom,reason=max_series} counter 0",
		"bucky3_metrics_dropped_total{module=prom,reason=memory_limit} counter 0",
		"bucky3_metrics_dropped_total{module=prom,reason=not_finite} counter 0",
		"bucky3_metrics_dropped_total{module=prom,reason=reserved_name} counter 0",
		"bucky3_metrics_dropped_total{module=statsd,reason=not_finite} counter 7",
		"bucky3_metrics_received_total{module=prom} counter 0",
		"bucky3_metrics_sent_total{module=influx} counter 100",
		"bucky3_odd_gauge{module=statsd} gauge -3",
		"bucky3_packets_dropped_kernel_total{module=statsd} counter 4",
		"bucky3_packets_dropped_total{module=statsd,reason=too_large} counter 1",
		"bucky3_queue_length{module=influx} gauge 9",
		"bucky3_read_errors_total{module=statsd} counter 0",
		"bucky3_series{module=prom} gauge 0",
		"bucky3_series{module=statsd} gauge 42",
	}
	// The exporter's own HTTP counters move with each scrape; drop them.
	var got []string
	for _, s := range selfSamples(t, h) {
		ownCounter := strings.HasPrefix(s, "bucky3_http_requests") || strings.HasPrefix(s, "bucky3_pages_") || strings.HasPrefix(s, "bucky3_connections")
		if !strings.Contains(s, "module=prom") || !ownCounter {
			got = append(got, s)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("own metrics:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	fams := parsePage(t, h.scrape(t))
	bi := fams["bucky3_build_info"]
	if bi == nil || len(bi.Metric) != 1 || bi.Metric[0].GetGauge().GetValue() != 1 {
		t.Fatalf("bucky3_build_info = %v", bi)
	}
	labels := map[string]string{}
	for _, l := range bi.Metric[0].Label {
		labels[l.GetName()] = l.GetValue()
	}
	if labels["goversion"] != runtime.Version() || labels["version"] != "dev" {
		t.Errorf("bucky3_build_info labels %v, want version dev and goversion %s", labels, runtime.Version())
	}
	for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes", "process_cpu_seconds_total", "process_resident_memory_bytes"} {
		if fams[name] == nil {
			t.Errorf("family %s missing; families: %v", name, slices.Sorted(maps.Keys(fams)))
		}
	}
}

// startModule is start with a caller-built module.
func startModule(t *testing.T, m engine.Module, o Options) *harness {
	t.Helper()
	e, err := New(m, o)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{e: e, stats: m.Stats, in: make(chan *engine.Batch), client: &http.Client{Transport: &http.Transport{DisableCompression: true}}}
	done := make(chan error, 1)
	go func() { done <- e.Run(context.Background(), h.in) }()
	<-e.Ready()
	h.url = "http://" + e.Addr().String()
	t.Cleanup(func() {
		close(h.in)
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
	return h
}

// TestSelfMetricsWinNameCollisions sends data under names the own metrics
// use: those families are dropped, counted, and the page keeps one family
// of each name; the self_report bucket "bucky3" is not one of them.
func TestSelfMetricsWinNameCollisions(t *testing.T) {
	h := start(t, func(o *Options) { o.SelfMetrics = true })
	h.send(
		metric("bucky3", 0, []engine.Tag{{Key: "name", Value: "statsd"}}, num("lines_received", 5)),
		metric("bucky3_lines_received_total", 0, nil, num("v", 1), num("w", 2)),
		metric("go_goroutines", 0, nil, num("v", 1)),
		metric("go_other", 0, nil, num("v", 1)),
	)
	page := h.scrape(t) // checkPage finds no family twice
	fams := parsePage(t, page)
	if f := fams["bucky3"]; f == nil || f.GetType().String() != "UNTYPED" {
		t.Errorf("data family bucky3 missing:\n%s", page)
	}
	if f := fams["go_goroutines"]; f == nil || f.GetType().String() != "GAUGE" || len(f.Metric) != 1 {
		t.Errorf("go_goroutines is not the Go collector's gauge alone: %v", f)
	}
	if fams["go_other"] == nil {
		t.Error("data family go_other dropped: only the collectors' own names are reserved")
	}
	if n := h.stats.Counter("metrics_dropped_reserved_name").Load(); n != 3 {
		t.Errorf("metrics_dropped_reserved_name = %d, want 3 (two fields and one)", n)
	}
}

func TestSelfMetricsOff(t *testing.T) {
	h := start(t, nil) // self_metrics = false
	h.send(metric("bucky3_x", 0, nil, num("v", 1)))
	want := "# HELP bucky3_x bucky3 bucket bucky3_x\n# TYPE bucky3_x untyped\nbucky3_x{value=\"v\"} 1\n"
	if got := h.scrape(t); got != want {
		t.Errorf("page with self_metrics off =\n%s\nwant\n%s", got, want)
	}
}

func TestPromtoolAcceptsOwnMetrics(t *testing.T) {
	promtool := promtoolPath(t)
	h := start(t, func(o *Options) { o.SelfMetrics = true; o.Compression = "gzip" })
	h.send(sampleMetrics()...)
	for _, gz := range []bool{false, true} {
		page, err := scrapeBody(h, gz)
		if err != nil {
			t.Fatal(err)
		}
		checkPage(t, page)
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(page)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("promtool check metrics (gzip %v): %v\n%s\npage:\n%s", gz, err, out, page)
		}
		if !strings.Contains(page, "\n# TYPE bucky3_build_info gauge\n") || !strings.HasPrefix(page, "# HELP _9lives ") {
			t.Errorf("gzip %v: page is not the data then the own metrics:\n%s", gz, page)
		}
	}
}
