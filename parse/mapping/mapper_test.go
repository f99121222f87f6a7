package mapping

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/parse"
)

func mustParse(t *testing.T, cfg string) *Mapper {
	t.Helper()
	m, err := Parse([]byte(cfg))
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, cfg)
	}
	return m
}

// show renders a Map outcome: "-" unmatched, "drop", or name{k=v,…}.
func show(m *Mapper, name string, typ parse.Type) string {
	r, ok := m.Map(name, typ)
	switch {
	case !ok:
		return "-"
	case r.Drop:
		return "drop"
	}
	var b strings.Builder
	b.WriteString(r.Name + "{")
	for i, l := range r.Labels {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(l.Name + "=" + l.Value)
	}
	b.WriteString("}")
	return b.String()
}

// mapCases checks name→want for counters (statsd_exporter's tests default
// to that type) over one config.
func mapCases(t *testing.T, cfg string, cases ...string) {
	t.Helper()
	m := mustParse(t, cfg)
	for i := 0; i < len(cases); i += 2 {
		for range 2 { // a Mapper keeps no state between calls
			if got := show(m, cases[i], parse.Counter); got != cases[i+1] {
				t.Errorf("Map(%q) = %s, want %s", cases[i], got, cases[i+1])
			}
		}
	}
}

func TestMap_Glob(t *testing.T) {
	t.Run("several definitions", func(t *testing.T) {
		mapCases(t, `---
mappings:
- match: test.dispatcher.*.*.*
  name: "dispatch_events"
  labels:
    processor: "$1"
    action: "$2"
    result: "$3"
    job: "test_dispatcher"
- match: test.my-dispatch-host01.name.dispatcher.*.*.*
  name: "host_dispatch_events"
  labels: {processor: "$1", action: "$2", result: "$3", job: "test_dispatcher"}
- match: request_time.*.*.*.*.*.*.*.*.*.*.*.*
  name: "tyk_http_request"
  labels:
    method_and_path: "${1}"
    response_code: "${2}"
    ipv4_t4: "${10}"
    oauthid: "${12}"
- match: "*.*"
  name: "catchall"
  labels: {first: "$1", second: "$2", third: "$3", job: "$1-$2-$3"}
- match: (.*)\.(.*)-(.*)\.(.*)
  match_type: regex
  name: "proxy_requests_total"
  labels: {job: "$1", protocol: "$2", endpoint: "$3", result: "$4"}
`,
			"test.dispatcher.FooProcessor.send.succeeded", "dispatch_events{action=send,job=test_dispatcher,processor=FooProcessor,result=succeeded}",
			"test.my-dispatch-host01.name.dispatcher.FooProcessor.send.succeeded", "host_dispatch_events{action=send,job=test_dispatcher,processor=FooProcessor,result=succeeded}",
			"request_time.get/threads/1/posts.200.00000000.nonversioned.discussions.a11bbcdf.172.20.0.1.12ba97b7.", "tyk_http_request{ipv4_t4=1,method_and_path=get/threads/1/posts,oauthid=,response_code=200}",
			"foo.bar", "catchall{first=foo,job=foo-bar-,second=bar,third=}",
			"foo.bar.baz", "-",
			"proxy-1.http-goober.success", "proxy_requests_total{endpoint=goober,job=proxy-1,protocol=http,result=success}",
		)
	})
	t.Run("backtracking without ordering", func(t *testing.T) {
		mapCases(t, `
defaults:
  glob_disable_ordering: true
mappings:
- match: backtrack.*.bbb
  name: "testb"
  labels: {label: "${1}_foo"}
- match: backtrack.justatest.aaa
  name: "testa"
  labels: {label: "${1}_foo"}
`,
			"backtrack.good.bbb", "testb{label=good_foo}",
			"backtrack.justatest.bbb", "testb{label=justatest_foo}",
			"backtrack.justatest.aaa", "testa{label=_foo}",
		)
	})
	t.Run("captures of a failed path do not leak", func(t *testing.T) {
		mapCases(t, `
mappings:
- match: '*.dummy.*'
  name: metric_one
  labels: {system: $1, attribute: $2}
- match: 'full.name.*'
  name: metric_two
  labels: {system: static, attribute: $1}
`,
			"whatever.dummy.test", "metric_one{attribute=test,system=whatever}",
			"full.name.anothertest", "metric_two{attribute=anothertest,system=static}",
		)
	})
	t.Run("supersets without ordering", func(t *testing.T) {
		mapCases(t, `
defaults: {glob_disable_ordering: true}
mappings:
- {match: noorder.*.*, name: testa, labels: {label: "${1}_foo"}}
- {match: noorder.*.bbb, name: testb, labels: {label: "${1}_foo"}}
- {match: noorder.ccc.bbb, name: testc, labels: {label: "ccc_foo"}}
`,
			"noorder.good.bbb", "testb{label=good_foo}",
			"noorder.ccc.bbb", "testc{label=ccc_foo}",
			"noorder.good.x", "testa{label=good_foo}",
		)
	})
	t.Run("first rule in file order wins", func(t *testing.T) {
		mapCases(t, `
mappings:
- {match: order.*.*, name: testa, labels: {label: "${1}_foo"}}
- {match: order.*.bbb, name: testb, labels: {label: "${1}_foo"}}
- {match: order.ccc.bbb, name: testc}
- {match: x.ccc.bbb, name: xc}
- {match: x.*.bbb, name: xstar, labels: {l1: "$1"}}
`,
			"order.good.bbb", "testa{label=good_foo}",
			"order.ccc.bbb", "testa{label=ccc_foo}",
			"x.ccc.bbb", "xc{}",
			"x.ddd.bbb", "xstar{l1=ddd}",
		)
	})
	t.Run("references", func(t *testing.T) {
		mapCases(t, `
mappings:
- match: test.*
  name: "name"
  labels: {bad: "$1_foo", good: "${1}_foo", whole: "$0", named: "$x", past: "$2", pct: "%d-$1"}
- {match: dyn.*.*, name: "${1}_$2"}
- {match: one.*.*, name: "$1"}
- {match: all.*, name: "all_$0"}
`,
			"test.a", "name{bad=,good=a_foo,named=,past=,pct=%!d(string=a)-%!s(MISSING),whole=test.a}",
			"dyn.total_requests.count", "total_requests_count{}",
			"one.total_requests.count", "total_requests{}",
			"one..count", "{}", // an empty name: the caller drops it, as statsd_exporter does
			"all.x", "all_all.x{}",
		)
	})
	t.Run("components", func(t *testing.T) {
		mapCases(t, `
mappings:
- {match: test.99.myapp.*, name: a, labels: {label: "${1}_foo"}}
- {match: test.99test.myapp.*, name: b, labels: {label: "${1}_foo"}}
- {match: "foo--bar.*", name: "foo_bar_${1}"}
- {match: kafka.server.brokerPort.9092.clientId.ReplicaFetcherThread-0-1.1MinuteRate, name: kafka}
- {match: '*', name: single, labels: {label: "${1}"}}
- {match: "*.test.*", name: st, labels: {label: "${2}_foo"}}
`,
			"test.99.myapp.create", "a{label=create_foo}",
			"test.99test.myapp.create", "b{label=create_foo}",
			"foo--bar.count", "foo_bar_count{}",
			"kafka.server.brokerPort.9092.clientId.ReplicaFetcherThread-0-1.1MinuteRate", "kafka{}",
			"test", "single{label=test}",
			"", "single{label=}",
			"foo.test.a", "st{label=a_foo}",
			"foo.test.a.b", "-",
			"foo.tes.a", "-",
		)
	})
	t.Run("README example", func(t *testing.T) {
		mapCases(t, `
mappings:
- match: test.dispatcher.*.*.*
  name: "dispatcher_events_total"
  labels: {processor: "$1", action: "$2", outcome: "$3", job: "test_dispatcher"}
- match: "*.signup.*.*"
  name: "signup_events_total"
  labels: {provider: "$2", outcome: "$3", job: "${1}_server"}
`,
			"test.dispatcher.FooProcessor.send.success", "dispatcher_events_total{action=send,job=test_dispatcher,outcome=success,processor=FooProcessor}",
			"foo_product.signup.facebook.failure", "signup_events_total{job=foo_product_server,outcome=failure,provider=facebook}",
			"test.web-server.foo.bar", "-",
		)
	})
	// statsd_exporter attaches a rule only to a trie state it creates.
	t.Run("trie quirks", func(t *testing.T) {
		mapCases(t, `
mappings:
- {match: a.b.c, name: abc}
- {match: a.b, name: ab}
- {match: d.*, name: d1}
- {match: "*.e", name: e}
- {match: d.*, name: d2}
`,
			"a.b.c", "abc{}",
			"a.b", "-",
			"d.x", "d1{}",
			"d.e", "e{}", // the repeated d.* took priority 4, after *.e
		)
	})
}

func TestMap_Regex(t *testing.T) {
	t.Run("order and anchoring", func(t *testing.T) {
		mapCases(t, `
mappings:
- {match: 'rx\.(\w+)\.(\w+)', match_type: regex, name: "${2}_$1", labels: {whole: "$0", named: "${n}", bad: "$1_x"}}
- {match: 'count$', match_type: regex, name: counts}
- {match: '^(?P<first>[a-z]+)\.', match_type: regex, name: first, labels: {fi: "$first"}}
`,
			"rx.total_requests.count", "count_total_requests{bad=,named=,whole=rx.total_requests.count}",
			"pre.rx.a.b", "b_a{bad=,named=,whole=rx.a.b}",
			"x.count", "counts{}",
			"abc.def", "first{fi=abc}",
			"ABC", "-",
		)
	})
	t.Run("glob rules before regex rules", func(t *testing.T) {
		mapCases(t, `
mappings:
- {match: 'web\..*', match_type: regex, name: regex_first}
- {match: web.*, name: glob_second}
- {match: '.', match_type: regex, name: dropped, action: drop}
`,
			"web.localhost", "glob_second{}",
			"web.a.b", "regex_first{}",
			"other", "drop",
		)
	})
	t.Run("match_type default", func(t *testing.T) {
		mapCases(t, `
defaults: {match_type: regex}
mappings:
- {match: 'a+', name: as}
- {match: 'b.*', match_type: glob, name: bs}
`,
			"xaax", "as{}",
			"b.c", "bs{}",
			"bxc", "-",
		)
	})
}

func TestMap_Types(t *testing.T) {
	m := mustParse(t, `
mappings:
- {match: t.*, match_metric_type: counter, name: c}
- {match: t.*, match_metric_type: gauge, name: g}
- {match: t.*, match_metric_type: observer, name: o}
- {match: 'r\.(.*)', match_type: regex, match_metric_type: gauge, name: rg}
- {match: 'r\.(.*)', match_type: regex, match_metric_type: timer, name: ro}
- {match: u.*, match_metric_type: counter, name: uc}
`)
	f := func(name string, typ parse.Type, want string) {
		t.Helper()
		if got := show(m, name, typ); got != want {
			t.Errorf("Map(%q, %v) = %s, want %s", name, typ, got, want)
		}
	}
	f("t.x", parse.Counter, "c{}")
	f("t.x", parse.Gauge, "g{}")
	f("t.x", parse.Set, "g{}")
	f("t.x", parse.Timer, "o{}")
	f("t.x", parse.Histogram, "o{}")
	f("t.x", parse.Distribution, "o{}")
	f("t.x", 0, "-")
	f("r.x", parse.Gauge, "rg{}")
	f("r.x", parse.Distribution, "ro{}")
	f("r.x", parse.Counter, "-")
	f("u.x", parse.Counter, "uc{}")
	f("u.x", parse.Gauge, "-")
	if r, _ := m.Map("t.x", parse.Gauge); r.Rule.MatchMetricType != MatchGauge || r.Rule.Index != 1 {
		t.Errorf("rule = %+v", r.Rule)
	}
}

func TestMap_Drop(t *testing.T) {
	mapCases(t, `mappings:
- {match: web.*, name: web, labels: {site: "$1"}}
- {match: web.*.*, name: web, action: map}
- {match: ., match_type: regex, name: drop, action: drop}`,
		"test.a", "drop",
		"abc", "drop",
		"web.localhost", "web{site=localhost}",
		"web.a.b", "web{}",
	)
}

func TestRuleOptions(t *testing.T) {
	m := mustParse(t, `
defaults:
  ttl: 1m2s
  observer_type: histogram
  histogram_options:
    buckets: [1, 2, 5]
    native_histogram_max_buckets: 100
  summary_options:
    quantiles: [{quantile: 0.9, error: 0.1}, {quantile: 0.99, error: 0.01}]
    max_age: 15m
    age_buckets: 3
    buf_cap: 100
mappings:
- {match: h.default, name: hd}
- match: h.own
  name: ho
  ttl: 5s
  help: Own help.
  scale: 1e-6
  histogram_options: {buckets: [0.1, 1, .inf], native_histogram_bucket_factor: 1.5}
- {match: s.default, name: sd, observer_type: summary, honor_labels: true}
- match: s.partial
  name: sp
  observer_type: summary
  summary_options: {max_age: 5m}
- match: s.own
  name: so
  observer_type: summary
  summary_options:
    quantiles: [{quantile: 0.7, error: 0.002}, {quantile: 0.42, error: 0.04}, {quantile: 0.7, error: 0.003}]
    max_age: 5m
    age_buckets: 2
    buf_cap: 1000
`)
	q := func(qe ...float64) []engine.Quantile {
		var out []engine.Quantile
		for i := 0; i < len(qe); i += 2 {
			out = append(out, engine.Quantile{Q: qe[i], Error: qe[i+1]})
		}
		return out
	}
	defQ := q(0.9, 0.1, 0.99, 0.01)
	f := func(name string, want Rule) {
		t.Helper()
		r, ok := m.Map(name, parse.Timer)
		if !ok {
			t.Fatalf("%s unmatched", name)
		}
		got := *r.Rule
		want.Index, want.Match, want.Name = got.Index, got.Match, got.Name
		got.meta, got.name, got.labelTpls, got.labelKeys = nil, template{}, nil, nil
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %+v\nwant %+v", name, got, want)
		}
		meta := r.Rule.TypeMeta()
		if meta.TTL != want.TTL || meta.Help != want.Help || meta.MaxAge != want.MaxAge ||
			meta.AgeBuckets != want.AgeBuckets || meta.NativeMaxBuckets != want.NativeMaxBuckets ||
			!reflect.DeepEqual(meta.Quantiles, want.Quantiles) {
			t.Errorf("%s: meta %+v", name, meta)
		}
	}
	f("h.default", Rule{TTL: 62 * time.Second, Scale: 1, ObserverType: ObserverHistogram, Buckets: []float64{1, 2, 5},
		NativeFactor: 1.1, NativeMaxBuckets: 100, Quantiles: defQ, MaxAge: 15 * time.Minute, AgeBuckets: 3, BufCap: 100})
	f("h.own", Rule{TTL: 5 * time.Second, Help: "Own help.", Scale: 1e-6, ObserverType: ObserverHistogram, Buckets: []float64{0.1, 1},
		NativeFactor: 1.5, NativeMaxBuckets: 100, Quantiles: defQ, MaxAge: 15 * time.Minute, AgeBuckets: 3, BufCap: 100})
	f("s.default", Rule{TTL: 62 * time.Second, HonorLabels: true, Scale: 1, ObserverType: ObserverSummary, Buckets: []float64{1, 2, 5},
		NativeFactor: 1.1, NativeMaxBuckets: 100, Quantiles: defQ, MaxAge: 15 * time.Minute, AgeBuckets: 3, BufCap: 100})
	f("s.partial", Rule{TTL: 62 * time.Second, Scale: 1, ObserverType: ObserverSummary, Buckets: []float64{1, 2, 5},
		NativeFactor: 1.1, NativeMaxBuckets: 100, Quantiles: defQ, MaxAge: 5 * time.Minute, AgeBuckets: 3, BufCap: 100})
	f("s.own", Rule{TTL: 62 * time.Second, Scale: 1, ObserverType: ObserverSummary, Buckets: []float64{1, 2, 5},
		NativeFactor: 1.1, NativeMaxBuckets: 100, Quantiles: q(0.42, 0.04, 0.7, 0.003), MaxAge: 5 * time.Minute, AgeBuckets: 2, BufCap: 1000})

	d := *m.Defaults()
	d.meta = nil
	want := Rule{Index: -1, TTL: 62 * time.Second, Scale: 1, ObserverType: ObserverHistogram, Buckets: []float64{1, 2, 5},
		NativeFactor: 1.1, NativeMaxBuckets: 100, Quantiles: defQ, MaxAge: 15 * time.Minute, AgeBuckets: 3, BufCap: 100}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("Defaults:\n got %+v\nwant %+v", d, want)
	}
}

func TestRuleOptions_Defaults(t *testing.T) {
	f := func(cfg string, observer Observer, buckets []float64, quantiles []engine.Quantile) {
		t.Helper()
		m := mustParse(t, cfg)
		for _, r := range append(m.Rules(), m.Defaults()) {
			if r.ObserverType != observer || !reflect.DeepEqual(r.Buckets, buckets) || !reflect.DeepEqual(r.Quantiles, quantiles) {
				t.Errorf("rule %d: %v %v %v, want %v %v %v", r.Index, r.ObserverType, r.Buckets, r.Quantiles, observer, buckets, quantiles)
			}
			if r.NativeFactor != 1.1 || r.NativeMaxBuckets != 256 || r.TTL != 0 || r.Scale != 1 || r.Action != ActionMap {
				t.Errorf("rule %d: %+v", r.Index, r)
			}
		}
	}
	defQ := []engine.Quantile{{Q: 0.5, Error: 0.05}, {Q: 0.9, Error: 0.01}, {Q: 0.99, Error: 0.001}}
	f(``, ObserverSummary, defBuckets, defQ)
	f("mappings:\n- {match: a.*, name: a}", ObserverSummary, defBuckets, defQ)
	f("defaults: {observer_type: ''}\nmappings:\n- {match: a.*, name: a}", ObserverSummary, defBuckets, defQ)
	f("defaults: {timer_type: histogram}\nmappings:\n- {match: a.*, name: a}", ObserverHistogram, defBuckets, defQ)
	f("defaults: {observer_type: histogram, timer_type: summary, buckets: [3]}\nmappings:\n- {match: a.*, name: a}", ObserverHistogram, []float64{3}, defQ)
	f("defaults: {quantiles: [{quantile: 0.3, error: 0.1}]}\nmappings:\n- {match: a.*, name: a}", ObserverSummary, defBuckets,
		[]engine.Quantile{{Q: 0.3, Error: 0.1}})

	// histogram_options without an observer type anywhere still makes a
	// summary in statsd_exporter; the buckets are what a histogram would use.
	m := mustParse(t, "mappings:\n- {match: a.*, name: a, histogram_options: {buckets: [1]}}")
	if r := m.Rules()[0]; r.ObserverType != ObserverSummary || !reflect.DeepEqual(r.Buckets, []float64{1}) {
		t.Errorf("histogram_options alone: %+v", r)
	}
}

func TestRuleOptions_Legacy(t *testing.T) {
	m := mustParse(t, `
mappings:
- {match: a, name: a, timer_type: histogram, buckets: [1, 2]}
- {match: b, name: b, timer_type: histogram, observer_type: summary, quantiles: [{quantile: 0.1, error: 0.01}]}
- {match: c, name: c, match_metric_type: timer}
`)
	r := m.Rules()
	if r[0].ObserverType != ObserverHistogram || !reflect.DeepEqual(r[0].Buckets, []float64{1, 2}) {
		t.Errorf("a: %+v", r[0])
	}
	if r[1].ObserverType != ObserverSummary || !reflect.DeepEqual(r[1].Quantiles, []engine.Quantile{{Q: 0.1, Error: 0.01}}) {
		t.Errorf("b: %+v", r[1])
	}
	if r[2].MatchMetricType != MatchObserver {
		t.Errorf("c: %+v", r[2])
	}
}

func TestParse_Failure(t *testing.T) {
	f := func(cfg, wantErr string) {
		t.Helper()
		m, err := Parse([]byte(cfg))
		if err == nil {
			t.Errorf("Parse succeeded, want %q\n%s", wantErr, cfg)
			return
		}
		if m != nil || !strings.Contains(err.Error(), wantErr) || !strings.HasPrefix(err.Error(), "mapping: ") {
			t.Errorf("Parse error %q, want %q", err, wantErr)
		}
	}
	f("mappings:\n- {match: 'bad!!metric-line.*.*', name: foo}", `mappings[0] (match "bad!!metric-line.*.*"): invalid match: bad!!metric-line.*.*`)
	f("mappings:\n- {match: a.b*, name: foo}", "invalid match: a.b*")
	f("mappings:\n- {match: 9a.b, name: foo}", "invalid match: 9a.b")
	f("mappings:\n- {match: a..b, name: foo}", "invalid match: a..b")
	f("mappings:\n- {match: a, name: a}\n- {match: test.*.*, name: 0foo}", `mappings[1] (match "test.*.*"): metric name '0foo' doesn't match regex`)
	f("mappings:\n- {match: test.*.*, name: a.b}", "metric name 'a.b' doesn't match regex")
	f("mappings:\n- {match: test.*.*, name: 'a$x'}", "doesn't match regex")
	f("mappings:\n- {match: test.*.*, labels: {this: $1}}", "metric mapping didn't set a metric name")
	f("mappings:\n- match: *.test.*\n  name: x", "mapping: yaml:")
	f("mappings:\n- {match: '*\\.foo', match_type: regex, name: foo}", "invalid regex *\\.foo in mapping: error parsing regexp")
	f("mappings:\n- {match: a, name: a, labels: {a: x}}", "invalid label key: a")
	f("mappings:\n- {match: a, name: a, labels: {1ab: x}}", "invalid label key: 1ab")
	f("mappings:\n- {match: a, name: a, labels: {a-b: x}}", "invalid label key: a-b")
	f("mappings:\n- {match: a, name: a, match_metric_type: wrong}", "invalid metric type 'wrong'")
	f("mappings:\n- {match: a, name: a, match_type: exact}", `invalid match type "exact"`)
	f("mappings:\n- {match: a, name: a, action: keep}", `invalid action type "keep"`)
	f("mappings:\n- {match: a, name: a, observer_type: gauge}", "invalid observer type 'gauge'")
	f("defaults: {observer_type: gauge}", "invalid observer type 'gauge'")
	f("mappings:\n- {match: a, name: a, observer_type: histogram, summary_options: {}}", "cannot use histogram observer and summary options at the same time")
	f("mappings:\n- {match: a, name: a, observer_type: summary, histogram_options: {}}", "cannot use summary observer and histogram options at the same time")
	f("defaults: {observer_type: summary}\nmappings:\n- {match: a, name: a, histogram_options: {}}", "cannot use summary observer and histogram options")
	f("mappings:\n- {match: a, name: a, observer_type: summary, quantiles: [{quantile: 0.42, error: 0.04}], summary_options: {quantiles: [{quantile: 0.42, error: 0.04}]}}",
		"cannot use quantiles in both the top level and summary options at the same time in a")
	f("mappings:\n- {match: a, name: a, buckets: [1], histogram_options: {buckets: [2]}}", "cannot use buckets in both the top level and histogram options at the same time in a")
	f("mappings:\n- {match: a, name: a, unknown_key: 1}", "field unknown_key not found")
	f("mappingz: []", "field mappingz not found")
	f("defaults: {glob_disable_ordering: true, parse_dogstatsd_tags: true}", "field parse_dogstatsd_tags not found")
	f("mappings:\n- match: a\n  name: a\n  match: b", "field match already set")
	f("mappings:\n- {match: a, name: a, ttl: forever}", "mapping: yaml:")
	f("mappings:\n- {match: a, name: a, histogram_options: {native_histogram_max_buckets: -1}}", "mapping: yaml:")
	f("mappings:\n- {match: a, name: a, observer_type: histogram, histogram_options: {buckets: [2, 1]}}", "histogram buckets must be in increasing order")
	f("defaults: {histogram_options: {buckets: [1, 1]}}", "mapping: defaults: histogram buckets must be in increasing order")
	f("defaults: {summary_options: {quantiles: [{quantile: 1.5, error: 0.1}]}}", "invalid quantile 1.5")
	f("- a\n- b", "mapping: yaml:")
}

func TestLoad(t *testing.T) {
	m, err := Load("testdata/statsd_mapping.yml")
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Rules()) < 50 {
		t.Errorf("testdata has %d rules, want at least 50", len(m.Rules()))
	}
	if _, err := Load("testdata/missing.yml"); err == nil || !strings.HasPrefix(err.Error(), "mapping: open testdata/missing.yml: ") {
		t.Errorf("Load(missing) = %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yml")
	if err := os.WriteFile(bad, []byte("mappings:\n- {match: a, name: a}\n- {match: 'b*', name: b}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	want := "mapping: " + bad + `: mappings[1] (match "b*"): invalid match: b*`
	if _, err := Load(bad); err == nil || err.Error() != want {
		t.Errorf("Load(bad) = %v, want %s", err, want)
	}
}

func TestNeedBacktracking(t *testing.T) {
	f := func(want bool, globs ...string) {
		t.Helper()
		if got := needBacktracking(globs, false); got != want {
			t.Errorf("needBacktracking(%q) = %v, want %v", globs, got, want)
		}
		if !needBacktracking(globs, true) {
			t.Errorf("an ordered trie must always backtrack")
		}
	}
	f(false, "a.b")
	f(false, "a.*", "b.*")
	f(true, "backtrack.*.bbb", "backtrack.justatest.aaa")
	f(false, "noorder.*.*", "noorder.*.bbb", "noorder.ccc.bbb")
	f(false, "a.*.c", "a.b.c")
	f(false, "a.*.c", "a.b.d.e")
}

// A Mapper is shared by every reader goroutine.
func TestMap_Concurrent(t *testing.T) {
	m, err := Load("testdata/statsd_mapping.yml")
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"api.http.GET.users.200.duration", "envoy.cluster.b.upstream_cx_total", "legacy.a.b", "nope", "debug.x"}
	want := make([]string, len(names))
	for i, n := range names {
		want[i] = show(m, n, parse.Timer)
	}
	done := make(chan struct{})
	for range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 200 {
				for i, n := range names {
					if got := show(m, n, parse.Timer); got != want[i] {
						t.Errorf("Map(%q) = %s, want %s", n, got, want[i])
						return
					}
				}
			}
		}()
	}
	for range 4 {
		<-done
	}
}
