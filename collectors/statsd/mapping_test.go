package statsd

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bucky3/bucky3/aggregate"
	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/parse"
)

// mappedOptions are testOptions with testdata/mapping.yml and layout.
func mappedOptions(t testing.TB, layout string) Options {
	t.Helper()
	o := testOptions()
	o.Readers = 1
	o.Layout = layout
	o.MappingConfig = "testdata/mapping.yml"
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	return o
}

// mappingLines exercise every rule of testdata/mapping.yml, and lines no
// rule matches.
const mappingLines = "api.users.requests:1|c|#env:prod,host:a\napi.users.requests:2|c|#host:a\n" +
	"api.users.latency:12|ms\napi.users.latency:30:40|ms|#host:b\n" +
	"bytes.in:2|c\nbytes.in:1|c|@0.5\nbytes.in:3|g\n" +
	"honor.x:1|c|#env:mine\nhonor.y:1|c\n" +
	"re.foo:1|g\nre.foo.bar:1|g\n" +
	"debug.x:1|c\ndebug.y:5|ms\n" +
	"empty.:1|c\n" +
	"plain.timer:5|ms\nplain_count:1|c|#k:v\nusers:alice|s\n" +
	"zero.c:5|c\nzero.t:5|ms\nslow.t:12|ms\nslow.t:100|ms\n" +
	"esc.a:1|c|#k.x:line,k-x:line2,other:o\nhesc.a:1|c|#k.x:line\nhesc.b:1|c\n"

// The memo must give what a full parse and mapping of every line gives,
// in both layouts, and count the same drops.
func TestMapping_KnownLines(t *testing.T) {
	for _, layout := range []string{layoutBucky3, layoutTyped} {
		sameAsParser(t, mappedOptions(t, layout), 3, []byte(mappingLines), []byte("debug.x:2|c\nbad.x:x|c\napi.users.requests:1|c|#env:prod,host:a"))
	}
}

// flushLines sends datagrams through a reader of o and returns the flush,
// one line per metric field, sorted, and the server's counters.
func flushLines(t *testing.T, o Options, datagrams ...string) ([]string, *engine.Stats) {
	t.Helper()
	stats := engine.NewStats()
	srv, err := New(engine.Module{Name: "t", Log: slog.New(slog.DiscardHandler), Stats: stats}, o)
	if err != nil {
		t.Fatal(err)
	}
	table, err := aggregate.New(tableOptions(srv.o))
	if err != nil {
		t.Fatal(err)
	}
	handle := (&readerSet{server: srv, table: table}).handler(0)
	for _, d := range datagrams {
		handle([]byte(d))
	}
	var out []string
	for _, m := range table.Flush(time.Now()) {
		tags := []string{}
		for _, tg := range m.Tags {
			tags = append(tags, tg.Key+"="+tg.Value)
		}
		for _, f := range m.Fields {
			out = append(out, fmt.Sprintf("%s{%s} %s=%s", m.Bucket, strings.Join(tags, ","), f.Name, formatValue(f.Value)))
		}
	}
	slices.Sort(out)
	return out, stats
}

// formatValue renders a typed value with its distribution.
func formatValue(v engine.Value) string {
	d := v.Dist
	switch v.Kind {
	case engine.KindHistogram:
		return fmt.Sprintf("histogram(count %d sum %g bounds %v counts %v)", d.Count, d.Sum, d.Bounds, d.Counts)
	case engine.KindSummary:
		return fmt.Sprintf("summary(count %d sum %g samples %v)", d.Count, d.Sum, d.Samples)
	case engine.KindCounter:
		return fmt.Sprintf("counter(%g)", v.Num)
	}
	return v.String()
}

func TestMapping_Bucky3Layout(t *testing.T) {
	got, stats := flushLines(t, mappedOptions(t, layoutBucky3), mappingLines)
	for _, want := range []string{
		// Renamed, labels merged: the mapping's env wins over the line's.
		"stats_counters{env=mapped,host=a,name=api_requests_total,route=users} count=3",
		// Timers keep milliseconds in the bucky3 layout.
		"stats_timers{host=b,name=api_latency_seconds,percentile=100.0,route=users} upper=40",
		"stats_timers{name=api_latency_seconds,percentile=100.0,route=users} upper=12",
		// scale applies to counters and gauges.
		"stats_counters{dir=in,name=transfer_bytes} count=4096",
		"stats_gauges{name=bytes.in} value=3", // the rule is for counters
		// honor_labels keeps the line's tag.
		"stats_counters{env=mine,name=honored} count=1",
		"stats_counters{env=y,name=honored} count=1",
		"stats_gauges{name=re_foo} value=1",
		"stats_gauges{name=re.foo.bar} value=1",
		"stats_timers{name=plain.timer,percentile=100.0} upper=5",
		"stats_counters{k=v,name=plain_count} count=1",
		"stats_counters{name=zeroed_c} count=0",
		// scale leaves bucky3 timers alone.
		"stats_timers{name=zeroed_t,percentile=100.0} upper=5",
		"stats_timers{name=slow_t_seconds,percentile=100.0} upper=100",
		// A label replaces the tags whose keys escape to its name, as
		// statsd_exporter merges escaped tags, unless honor_labels.
		"stats_counters{k_x=mapped,name=esc,other=o} count=1",
		"stats_counters{k.x=line,name=hesc} count=1",
		"stats_counters{k_x=mapped,name=hesc} count=1",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("missing %s", want)
		}
	}
	for _, line := range got {
		if strings.Contains(line, "debug") || strings.Contains(line, "dropped") {
			t.Errorf("dropped line flushed: %s", line)
		}
	}
	for name, want := range map[string]uint64{
		"lines_filtered_mapping": 2, "lines_dropped_mapping_empty_name": 1, "metrics_dropped": 0, "lines_invalid": 0,
	} {
		if n := stats.Counter(name).Load(); n != want {
			t.Errorf("%s = %d, want %d", name, n, want)
		}
	}
	// A rule's drop is configured, not lost; an empty mapped name is lost.
	if engine.IsLoss("lines_filtered_mapping") || !engine.IsLoss("lines_dropped_mapping_empty_name") {
		t.Error("mapping counters misclassified as losses")
	}
	if t.Failed() {
		t.Logf("flushed:\n%s", strings.Join(got, "\n"))
	}
}

func TestMapping_TypedLayout(t *testing.T) {
	got, _ := flushLines(t, mappedOptions(t, layoutTyped), mappingLines)
	for _, want := range []string{
		"api_requests_total{env=mapped,host=a,route=users} value=counter(3)",
		// ms become seconds; the rule asks for a summary.
		"api_latency_seconds{route=users} value=summary(count 1 sum 0.012 samples [0.012])",
		"api_latency_seconds{host=b,route=users} value=summary(count 2 sum 0.07 samples [0.03 0.04])",
		"transfer_bytes{dir=in} value=counter(4096)",
		// Unmatched timers get the defaults: a histogram of its buckets.
		"plain.timer{} value=histogram(count 1 sum 0.005 bounds [0.01 0.1 1] counts [1 0 0 0])",
		"plain_count{k=v} value=counter(1)",
		"users{} value=1",
		"zeroed_c{} value=counter(0)",
		"zeroed_t{} value=histogram(count 1 sum 0 bounds [0.01 0.1 1] counts [1 0 0 0])",
		// ms → s, then the rule's scale.
		"slow_t_seconds{} value=histogram(count 2 sum 0.224 bounds [0.01 0.1 1] counts [0 1 1 0])",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("missing %s", want)
		}
	}
	if t.Failed() {
		t.Logf("flushed:\n%s", strings.Join(got, "\n"))
	}
}

// Without a mapping the typed layout types every series by the table's
// defaults.
func TestTypedLayout_NoMapping(t *testing.T) {
	o := testOptions()
	o.Readers, o.Layout = 1, layoutTyped
	got, _ := flushLines(t, o, "a.b:1|c\na.b:2|c\nt:100|ms\ng:5|g\ng:+1|g")
	for _, want := range []string{
		"a.b{} value=counter(3)",
		"g{} value=6",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("missing %s in\n%s", want, strings.Join(got, "\n"))
		}
	}
	sameAsParser(t, o, 3, []byte("a.b:1|c\nt:100|ms|#k:v\ng:5|g\ng:+1|g\ns:x|s"))
}

// Tag lists drop tags before the series key: lines that differ only in a
// dropped tag add up, through the memo as through the parser.
func TestTagLists(t *testing.T) {
	lines := "req:1|c|#host:a,env:prod\nreq:2|c|#host:b,env:prod\nreq:4|c|#env:dev\nreq:8|c|#host:c,container_id=x|c:y\n"
	o := testOptions()
	o.Readers = 1
	o.TagDenylist = []string{"host", "container_id"}
	got, _ := flushLines(t, o, lines)
	if want := []string{"stats_counters{env=dev,name=req} count=4", "stats_counters{env=prod,name=req} count=3", "stats_counters{name=req} count=8"}; !containsAll(got, want) {
		t.Errorf("denylist: got\n%s\nwant %q", strings.Join(got, "\n"), want)
	}
	sameAsParser(t, o, 3, []byte(lines))

	o.TagDenylist, o.TagAllowlist = nil, []string{"env"}
	got, _ = flushLines(t, o, lines)
	if want := []string{"stats_counters{env=dev,name=req} count=4", "stats_counters{env=prod,name=req} count=3", "stats_counters{name=req} count=8"}; !containsAll(got, want) {
		t.Errorf("allowlist: got\n%s\nwant %q", strings.Join(got, "\n"), want)
	}
	sameAsParser(t, o, 3, []byte(lines))

	// The lists apply to the line's tags, not to the labels a mapping adds.
	o = mappedOptions(t, layoutBucky3)
	o.TagAllowlist = []string{"host"}
	got, _ = flushLines(t, o, "api.users.requests:1|c|#env:prod,host:a,x:y")
	if want := []string{"stats_counters{env=mapped,host=a,name=api_requests_total,route=users} count=1"}; !containsAll(got, want) {
		t.Errorf("allowlist with mapping: got\n%s\nwant %q", strings.Join(got, "\n"), want)
	}
}

func containsAll(got, want []string) bool {
	for _, w := range want {
		if !slices.Contains(got, w) {
			return false
		}
	}
	return true
}

// Every line of the benchmarks' mapped datagrams matches a rule of
// testdata/mapping_50.yml, so that they measure mapped lines.
func TestMappedDatagram(t *testing.T) {
	o := testOptions()
	o.Readers, o.MappingConfig = 1, "testdata/mapping_50.yml"
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	var p parse.StatsD
	drops := 0
	for _, s := range p.Parse(mappedDatagram(0, 400), testNowMs) {
		res, ok := o.mapper.Map(string(s.Name), s.Type)
		if !ok {
			t.Fatalf("%s|%s matches no rule", s.Name, s.Type)
		}
		if res.Drop {
			drops++
		}
	}
	if drops != 20 {
		t.Fatalf("%d lines dropped, want 20", drops)
	}
}
