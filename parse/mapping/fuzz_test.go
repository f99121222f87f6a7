package mapping

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/bucky3/bucky3/parse"
)

var fuzzTypes = []parse.Type{0, parse.Counter, parse.Gauge, parse.Timer, parse.Histogram, parse.Set, parse.Distribution, 7}

// FuzzParse: any YAML either fails with an error or gives a Mapper whose
// Map does not panic; the outcome does not depend on the run.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"",
		"mappings:\n- {match: a.*, name: a_$1, labels: {ab: '${1}'}}",
		"defaults: {glob_disable_ordering: true, observer_type: histogram}\nmappings:\n- {match: a.*.c, name: x}\n- {match: a.b.*, name: y}",
		"mappings:\n- {match: '(.*)\\.(.*)', match_type: regex, name: r, labels: {ab: $2}}",
		"mappings:\n- {match: a, name: a, observer_type: summary, summary_options: {quantiles: [{quantile: 0.5, error: 0.1}]}}",
		"mappings:\n- {match: a, name: a, timer_type: histogram, buckets: [1, 2]}",
		"mappings:\n- {match: 'a', name: a, action: drop}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		m2, err2 := Parse(b)
		if (err == nil) != (err2 == nil) || err != nil && err.Error() != err2.Error() {
			t.Fatalf("Parse is not deterministic: %v / %v", err, err2)
		}
		if err != nil {
			if m != nil || !strings.HasPrefix(err.Error(), "mapping: ") {
				t.Fatalf("bad error result %v %v", m, err)
			}
			return
		}
		for _, name := range []string{"", "a", "a.b", "a.b.c", "a..c", "*.*", string(b)} {
			for _, typ := range fuzzTypes {
				r1, ok1 := m.Map(name, typ)
				r2, ok2 := m2.Map(name, typ)
				checkResult(t, name, typ, r1, ok1)
				if ok1 != ok2 || r1.Name != r2.Name || !reflect.DeepEqual(r1.Labels, r2.Labels) || ok1 && r1.Rule.Index != r2.Rule.Index {
					t.Fatalf("Map(%q) differs between two parses", name)
				}
			}
		}
	})
}

// FuzzMap: Map of any name and type does not panic and is deterministic.
func FuzzMap(f *testing.F) {
	for _, seed := range []string{"", ".", "api.http.GET.users.200.duration", "test.dispatcher.a.b.c",
		"envoy.cluster.x.upstream_cx_total", "proxy-1.http-goober.success", "legacy.a.b", "a.b.c.d.e.f.g.h.i.j", "%s.%d", "*.*.*"} {
		for _, typ := range []parse.Type{parse.Counter, parse.Timer} {
			f.Add(seed, uint8(typ))
		}
	}
	ordered, err := Load("testdata/statsd_mapping.yml")
	if err != nil {
		f.Fatal(err)
	}
	b, _ := os.ReadFile("testdata/statsd_mapping.yml")
	unordered, err := Parse([]byte(strings.Replace(string(b), "glob_disable_ordering: false", "glob_disable_ordering: true", 1)))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, name string, typ uint8) {
		for _, m := range []*Mapper{ordered, unordered} {
			r1, ok1 := m.Map(name, parse.Type(typ))
			r2, ok2 := m.Map(name, parse.Type(typ))
			checkResult(t, name, parse.Type(typ), r1, ok1)
			if ok1 != ok2 || !reflect.DeepEqual(r1, r2) {
				t.Fatalf("Map(%q, %d) is not deterministic: %+v %+v", name, typ, r1, r2)
			}
		}
	})
}

func checkResult(t *testing.T, name string, typ parse.Type, r Result, ok bool) {
	t.Helper()
	if !ok {
		if !reflect.DeepEqual(r, Result{}) {
			t.Fatalf("Map(%q, %v): unmatched with a result %+v", name, typ, r)
		}
		return
	}
	if r.Rule == nil || r.Drop != (r.Rule.Action == ActionDrop) || r.Rule.TypeMeta() == nil {
		t.Fatalf("Map(%q, %v): bad rule %+v", name, typ, r)
	}
	if !slices.IsSortedFunc(r.Labels, func(a, b Label) int { return strings.Compare(a.Name, b.Name) }) {
		t.Fatalf("Map(%q, %v): labels not sorted %v", name, typ, r.Labels)
	}
}

// FuzzAppendEscaped: the output is a valid Prometheus name (or empty for an
// empty input) and appending never touches what dst held.
func FuzzAppendEscaped(f *testing.F) {
	for _, seed := range []string{"", "clean", "0digit", "with--dash", "with😱emoji", "a.*.b", "\xff-\xfe--"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, name string) {
		got := AppendEscaped([]byte("p"), name)
		if got[0] != 'p' {
			t.Fatalf("prefix overwritten")
		}
		out := got[1:]
		if (len(out) == 0) != (name == "") {
			t.Fatalf("AppendEscaped(%q) = %q", name, out)
		}
		for i, c := range out {
			letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
			digit := c >= '0' && c <= '9'
			if !letter && (!digit || i == 0) {
				t.Fatalf("AppendEscaped(%q) = %q: bad byte at %d", name, out, i)
			}
		}
	})
}
