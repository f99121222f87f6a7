package prometheus

import (
	"math"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/bucky3/bucky3/engine"
)

func TestAppendMetricName(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := string(AppendMetricName([]byte("x"), in)); got != "x"+want {
			t.Errorf("AppendMetricName(%q) = %q, want %q", in, got[1:], want)
		}
	}
	f("system_cpu", "system_cpu")
	f("a:b_C9", "a:b_C9")
	f("", "_")
	f("9lives", "_9lives")
	f("a.b-c d", "a_b_c_d")
	f("__x", "__x")
	f("über", "__ber")
	f("a\xffb", "a_b")
}

func TestAppendLabelName(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := string(AppendLabelName([]byte("x"), in)); got != "x"+want {
			t.Errorf("AppendLabelName(%q) = %q, want %q", in, got[1:], want)
		}
	}
	f("host", "host")
	f("Host_9", "Host_9")
	f("a:b", "a_b")
	f("", "_")
	f("0x", "_0x")
	f("value", "tag_value")
	f("values", "values")
	f("__name__", "tag___name__")
	f("_.x", "tag___x")
	f("_x", "_x")
	f("é", "tag___")
}

func TestAppendLabelValue(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := string(AppendLabelValue([]byte("x"), in)); got != "x"+want {
			t.Errorf("AppendLabelValue(%q) = %q, want %q", in, got[1:], want)
		}
	}
	f("", "")
	f("plain", "plain")
	f(`a\b`, `a\\b`)
	f(`say "hi"`, `say \"hi\"`)
	f("two\nlines", `two\nlines`)
	f("tab\tand\rcr", "tab\tand\rcr")
	f("日本", "日本")
	f("a\xffb", "a\uFFFDb")
	f("\xe6\x97", "\uFFFD\uFFFD")
}

func TestAppendValue(t *testing.T) {
	f := func(v float64, ts int64, want string) {
		t.Helper()
		if got := string(AppendValue(nil, v, ts)); got != want {
			t.Errorf("AppendValue(%v, %d) = %q, want %q", v, ts, got, want)
		}
	}
	f(0, 0, " 0\n")
	f(1.5, 1700000000123, " 1.5 1700000000123\n")
	f(-2, 0, " -2\n")
	f(1e21, 0, " 1e+21\n")
	f(123456789, 0, " 1.23456789e+08\n")
	f(math.Inf(1), 0, " +Inf\n")
	f(math.Inf(-1), 0, " -Inf\n")
	f(math.NaN(), 0, " NaN\n")
}

func TestAppendSample(t *testing.T) {
	f := func(bucket string, tags []engine.Tag, field, want string) {
		t.Helper()
		got := string(AppendSample(nil, bucket, tags, field, 1, 0))
		if got != want+" 1\n" {
			t.Errorf("AppendSample(%q, %v, %q) =\n%q, want\n%q", bucket, tags, field, got, want+" 1\n")
		}
	}
	tag := func(kv ...string) []engine.Tag {
		var tags []engine.Tag
		for i := 0; i < len(kv); i += 2 {
			tags = append(tags, engine.Tag{Key: kv[i], Value: kv[i+1]})
		}
		return tags
	}
	f("m", nil, "count", `m{value="count"}`)
	f("m", tag("a", "1", "z", "2"), "v", `m{a="1",value="v",z="2"}`)
	f("m", tag("a", "1", "b", "2"), "v", `m{a="1",b="2",value="v"}`)
	f("m", tag("x", "1", "y", "2"), "v", `m{value="v",x="1",y="2"}`)
	// The field label keeps its name; a tag called value steps aside.
	f("m", tag("value", "t"), "f", `m{tag_value="t",value="f"}`)
	f("m", tag("__name__", "n"), "f", `m{tag___name__="n",value="f"}`)
	// Sanitising can reorder keys: "a.z" becomes "a_z", which sorts after "a_b".
	f("m", tag("a.z", "1", "a_b", "2"), "f", `m{a_b="2",a_z="1",value="f"}`)
	// Keys that sanitise alike keep the first.
	f("m", tag("a-b", "first", "a.b", "second"), "f", `m{a_b="first",value="f"}`)
	f("m", tag("a-b", "first", "a_b", "second"), "f", `m{a_b="first",value="f"}`)
	// Unsorted or duplicate tags (a broken source) still give a valid line.
	f("m", tag("z", "1", "a", "2"), "f", `m{a="2",value="f",z="1"}`)
	f("m", tag("a", "1", "a", "2"), "f", `m{a="1",value="f"}`)
	f("m", tag("1", "x"), "f", `m{_1="x",value="f"}`)
	f("cpu.load-1", tag("host", "a\"b\\c\nd"), "va\xfflue", `cpu_load_1{host="a\"b\\c\nd",value="va`+"\uFFFD"+`lue"}`)
}

func TestAppendFamilyHeader(t *testing.T) {
	got := string(AppendFamilyHeader(nil, "system_cpu"))
	want := "# HELP system_cpu bucky3 bucket system_cpu\n# TYPE system_cpu untyped\n"
	if got != want {
		t.Errorf("AppendFamilyHeader = %q, want %q", got, want)
	}
}

// parsePage parses an exposition the way a Prometheus server would.
func parsePage(t testing.TB, page string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(page))
	if err != nil {
		t.Fatalf("page does not parse: %v\n%s", err, page)
	}
	return fams
}

func FuzzAppendSample(f *testing.F) {
	f.Add("system_cpu", "host", "web1", "cpu", "cpu0", "idle", 97.5, int64(1700000000123))
	f.Add("a.b", "value", "x", "__name__", "y", "value", -1.0, int64(0))
	f.Add("", "", "", "", "", "", 0.0, int64(-1))
	f.Add("9\xff", "a-b", "\"\\\n", "a.b", "\xe6\x97", "\x00", math.Inf(1), int64(5))
	f.Fuzz(func(t *testing.T, bucket, k1, v1, k2, v2, field string, v float64, ts int64) {
		tags := []engine.Tag{{Key: k1, Value: v1}, {Key: k2, Value: v2}}
		name := string(AppendMetricName(nil, bucket))
		page := string(AppendSample(AppendFamilyHeader(nil, name), bucket, tags, field, v, ts))
		fams := parsePage(t, page)
		fam := fams[name]
		if len(fams) != 1 || fam == nil || len(fam.Metric) != 1 {
			t.Fatalf("want one sample of family %q, got %v from\n%s", name, fams, page)
		}
		m := fam.Metric[0]
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		if got, want := labels[fieldLabel], string([]rune(field)); got != want {
			t.Errorf("field label = %q, want %q in\n%s", got, want, page)
		}
		wantLabels := 2
		if compareLabelNames(k1, k2) != 0 {
			wantLabels = 3
		}
		if len(labels) != wantLabels {
			t.Errorf("got labels %v, want %d in\n%s", labels, wantLabels, page)
		}
		got := m.GetUntyped().GetValue()
		if got != v && !(math.IsNaN(got) && math.IsNaN(v)) {
			t.Errorf("value = %v, want %v", got, v)
		}
		if m.GetTimestampMs() != ts {
			t.Errorf("timestamp = %d, want %d", m.GetTimestampMs(), ts)
		}
	})
}
