package prometheus

import (
	"math"
	"testing"
	"time"

	"github.com/bucky3/bucky3/engine"
)

func metric(bucket string, ts int64, tags []engine.Tag, fields ...engine.Field) engine.Metric {
	return engine.Metric{Bucket: bucket, Timestamp: ts, Tags: tags, Fields: fields}
}

func num(name string, v float64) engine.Field {
	return engine.Field{Name: name, Value: engine.Number(v)}
}

func storePage(s *store) string {
	p, _ := s.appendPage(nil)
	return string(p)
}

func TestStoreReplacesAndKeepsOrder(t *testing.T) {
	stats := engine.NewStats()
	s := newStore(stats, storeLimits{})
	host := []engine.Tag{{Key: "host", Value: "a"}}
	s.ingest(&engine.Batch{Metrics: []engine.Metric{
		metric("zeta", 5, nil, num("x", 1)),
		metric("alpha", 0, host, num("b", 1), num("a", 2)),
	}}, 1, true)
	s.ingest(&engine.Batch{Metrics: []engine.Metric{
		metric("alpha", 7, host, num("b", 10)),
		metric("zeta", 5, nil, num("x", 3)),
	}}, 2, false)
	want := "# HELP alpha bucky3 bucket alpha\n# TYPE alpha untyped\n" +
		"alpha{host=\"a\",value=\"b\"} 10\n" +
		"alpha{host=\"a\",value=\"a\"} 2\n" +
		"# HELP zeta bucky3 bucket zeta\n# TYPE zeta untyped\n" +
		"zeta{value=\"x\"} 3\n"
	if got := storePage(s); got != want {
		t.Errorf("page =\n%s\nwant\n%s", got, want)
	}
	if n := stats.Counter("metrics_received").Load(); n != 4 {
		t.Errorf("metrics_received = %d, want 4", n)
	}
}

func TestStoreMergesBucketsThatSanitiseAlike(t *testing.T) {
	s := newStore(engine.NewStats(), storeLimits{})
	s.ingest(&engine.Batch{Metrics: []engine.Metric{
		metric("a.b", 0, nil, num("x", 1)),
		metric("a-b", 0, nil, num("x", 2)),
		metric("a-b", 0, nil, num("y", 3)),
	}}, 1, true)
	want := "# HELP a_b bucky3 bucket a_b\n# TYPE a_b untyped\n" +
		"a_b{value=\"x\"} 2\n" +
		"a_b{value=\"y\"} 3\n"
	if got := storePage(s); got != want {
		t.Errorf("page =\n%s\nwant\n%s", got, want)
	}
}

func TestStoreSkipsNonSamples(t *testing.T) {
	stats := engine.NewStats()
	s := newStore(stats, storeLimits{})
	s.ingest(&engine.Batch{Metrics: []engine.Metric{metric("m", 0, nil,
		engine.Field{Name: "s", Value: engine.String("text")},
		engine.Field{Name: "n", Value: engine.Null()},
		engine.Field{Name: "t", Value: engine.Bool(true)},
		engine.Field{Name: "f", Value: engine.Bool(false)},
		num("nan", math.NaN()),
		num("inf", math.Inf(-1)),
	)}}, 1, true)
	want := "# HELP m bucky3 bucket m\n# TYPE m untyped\n" +
		"m{value=\"t\"} 1\n" +
		"m{value=\"f\"} 0\n"
	if got := storePage(s); got != want {
		t.Errorf("page =\n%s\nwant\n%s", got, want)
	}
	if n := stats.Counter("metrics_dropped").Load(); n != 2 {
		t.Errorf("metrics_dropped = %d, want 2 (the non-finite numbers)", n)
	}
}

func TestStoreEvicts(t *testing.T) {
	s := newStore(engine.NewStats(), storeLimits{})
	sec := int64(time.Second)
	s.ingest(&engine.Batch{Metrics: []engine.Metric{
		metric("old", 0, nil, num("x", 1)),
		metric("mixed", 0, nil, num("a", 1), num("b", 2), num("c", 3)),
	}}, 1*sec, true)
	s.ingest(&engine.Batch{Metrics: []engine.Metric{
		metric("mixed", 0, nil, num("b", 20)),
	}}, 10*sec, true)

	s.evict(5 * sec)
	want := "# HELP mixed bucky3 bucket mixed\n# TYPE mixed untyped\n" +
		"mixed{value=\"b\"} 20\n"
	if got := storePage(s); got != want {
		t.Errorf("after evict, page =\n%s\nwant\n%s", got, want)
	}

	// Evicted series come back as new ones, after the survivors, and the
	// index of the moved survivor still finds it.
	s.ingest(&engine.Batch{Metrics: []engine.Metric{
		metric("mixed", 0, nil, num("a", 100), num("b", 200)),
		metric("old", 0, nil, num("x", 300)),
	}}, 11*sec, true)
	want = "# HELP mixed bucky3 bucket mixed\n# TYPE mixed untyped\n" +
		"mixed{value=\"b\"} 200\n" +
		"mixed{value=\"a\"} 100\n" +
		"# HELP old bucky3 bucket old\n# TYPE old untyped\n" +
		"old{value=\"x\"} 300\n"
	if got := storePage(s); got != want {
		t.Errorf("after refill, page =\n%s\nwant\n%s", got, want)
	}

	s.evict(20 * sec)
	if got := storePage(s); got != "" {
		t.Errorf("after evicting everything, page = %q", got)
	}
}
