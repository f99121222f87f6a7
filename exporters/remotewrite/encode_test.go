package remotewrite

import (
	"bytes"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/bucky3/bucky3/engine"
	"google.golang.org/protobuf/encoding/protowire"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func num(name string, f float64) engine.Field {
	return engine.Field{Name: name, Value: engine.Number(f)}
}

func tag(k, v string) engine.Tag { return engine.Tag{Key: k, Value: v} }

const nowMs = 1700000000000

// series is one decoded TimeSeries, rendered as `name{a="b",…} value@ts`
// with labels in wire order and __name__ shown as the name.
type series struct {
	labels [][2]string
	value  float64
	ts     int64
}

func (s series) String() string {
	var b strings.Builder
	var name string
	var ls []string
	for _, l := range s.labels {
		if l[0] == "__name__" {
			name = l[1]
			ls = append(ls, "__name__")
			continue
		}
		ls = append(ls, fmt.Sprintf("%s=%q", l[0], l[1]))
	}
	fmt.Fprintf(&b, "%s{%s} %s@%d", name, strings.Join(ls, ","), strconv.FormatFloat(s.value, 'g', -1, 64), s.ts)
	return b.String()
}

// decodeRequest decodes a WriteRequest with protowire, independently of
// the encoder's protobuf library, failing on anything remote write 1.0
// does not allow: unknown fields, other than one sample per series.
func decodeRequest(t testing.TB, b []byte) []series {
	t.Helper()
	var out []series
	forFields(t, b, func(num protowire.Number, typ protowire.Type, v []byte) {
		if num != 1 || typ != protowire.BytesType {
			t.Fatalf("WriteRequest: unexpected field %d type %d", num, typ)
		}
		var s series
		samples := 0
		forFields(t, v, func(num protowire.Number, typ protowire.Type, v []byte) {
			switch {
			case num == 1 && typ == protowire.BytesType:
				var l [2]string
				forFields(t, v, func(num protowire.Number, typ protowire.Type, v []byte) {
					if (num != 1 && num != 2) || typ != protowire.BytesType {
						t.Fatalf("Label: unexpected field %d type %d", num, typ)
					}
					l[num-1] = string(v)
				})
				s.labels = append(s.labels, l)
			case num == 2 && typ == protowire.BytesType:
				samples++
				forFields(t, v, func(num protowire.Number, typ protowire.Type, v []byte) {
					switch {
					case num == 1 && typ == protowire.Fixed64Type:
						u, _ := protowire.ConsumeFixed64(v)
						s.value = math.Float64frombits(u)
					case num == 2 && typ == protowire.VarintType:
						u, _ := protowire.ConsumeVarint(v)
						s.ts = int64(u)
					default:
						t.Fatalf("Sample: unexpected field %d type %d", num, typ)
					}
				})
			default:
				t.Fatalf("TimeSeries: unexpected field %d type %d", num, typ)
			}
		})
		if samples != 1 {
			t.Fatalf("series %v has %d samples, want 1", s, samples)
		}
		out = append(out, s)
	})
	return out
}

// forFields calls f for each field of message b; v is the payload of a
// bytes field, or the raw value bytes of a scalar.
func forFields(t testing.TB, b []byte, f func(protowire.Number, protowire.Type, []byte)) {
	t.Helper()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatalf("bad tag: %v", protowire.ParseError(n))
		}
		b = b[n:]
		var v []byte
		if typ == protowire.BytesType {
			v, n = protowire.ConsumeBytes(b)
		} else {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n >= 0 {
				v = b[:n]
			}
		}
		if n < 0 {
			t.Fatalf("field %d: %v", num, protowire.ParseError(n))
		}
		f(num, typ, v)
		b = b[n:]
	}
}

func render(ss []series) string {
	var lines []string
	for _, s := range ss {
		lines = append(lines, s.String())
	}
	return strings.Join(lines, "\n")
}

func TestEncoder_Success(t *testing.T) {
	var e Encoder
	var buf []byte
	f := func(m engine.Metric, want ...string) {
		t.Helper()
		for range 2 { // reuse of the encoder and buffer changes nothing
			e.Reset()
			next, added := e.Add(&m, nowMs, 0, 1000)
			if next != len(m.Fields) || added != len(want) {
				t.Fatalf("Add(%+v) = %d, %d; want %d, %d", m, next, added, len(m.Fields), len(want))
			}
			buf = e.AppendRequest(buf[:0])
			if got := render(decodeRequest(t, buf)); got != strings.Join(want, "\n") {
				t.Fatalf("Add(%+v)\n got %s\nwant %s", m, got, strings.Join(want, "\n"))
			}
		}
	}
	f(engine.Metric{Bucket: "system_cpu", Tags: []engine.Tag{tag("host", "a"), tag("name", "cpu0")}, Fields: []engine.Field{num("user", 1.5), num("idle", 98)}, Timestamp: 1700000000123},
		`system_cpu_user{__name__,host="a",name="cpu0"} 1.5@1700000000123`,
		`system_cpu_idle{__name__,host="a",name="cpu0"} 98@1700000000123`)
	// No timestamp: now. __name__ sorts after upper case and before lower.
	f(engine.Metric{Bucket: "m", Tags: []engine.Tag{tag("Z", "1"), tag("_a", "2"), tag("a", "3")}, Fields: []engine.Field{num("v", -0.5)}},
		`m_v{Z="1",__name__,_a="2",a="3"} -0.5@1700000000000`)
	// Sanitising: names, a leading digit, the reserved __ prefix, empty
	// keys; empty values are no label; invalid UTF-8 becomes U+FFFD.
	f(engine.Metric{Bucket: "9docker.mem-usage", Tags: []engine.Tag{tag("", "e"), tag("1x", "d"), tag("__name__", "n"), tag("a.b", "x\xffy"), tag("empty", "")}, Fields: []engine.Field{num("rss:total", 7)}},
		`_9docker_mem_usage_rss:total{_="e",_1x="d",__name__,a_b="x�y",tag___name__="n"} 7@1700000000000`)
	// Keys sanitising alike keep the first in tag order, even when the
	// sort moves a later one in front.
	f(engine.Metric{Bucket: "m", Tags: []engine.Tag{tag("a-b", "1"), tag("a.b", "2"), tag("a_b", "3"), tag("a~", "4")}, Fields: []engine.Field{num("v", 1)}},
		`m_v{__name__,a_="4",a_b="1"} 1@1700000000000`)
	// Only finite numbers are samples.
	f(engine.Metric{Bucket: "logs", Fields: []engine.Field{{Name: "msg", Value: engine.String("x")}, {Name: "ok", Value: engine.Bool(true)}, {Name: "n", Value: engine.Null()},
		num("nan", math.NaN()), num("inf", math.Inf(-1)), num("big", 1e300)}, Timestamp: 1},
		`logs_big{__name__} 1e+300@1`)
	f(engine.Metric{Bucket: "", Fields: []engine.Field{num("", 0)}}, `__{__name__} 0@1700000000000`)
	f(engine.Metric{Bucket: "none"})
}

func TestEncoder_Limit(t *testing.T) {
	var e Encoder
	m := engine.Metric{Bucket: "m", Fields: []engine.Field{num("a", 1), {Name: "s", Value: engine.String("x")}, num("b", 2), num("c", 3)}}
	f := func(first, limit, wantNext, wantAdded int, want string) {
		t.Helper()
		e.Reset()
		next, added := e.Add(&m, nowMs, first, limit)
		if next != wantNext || added != wantAdded || e.Samples() != wantAdded {
			t.Fatalf("Add(first %d, limit %d) = %d, %d (Samples %d); want %d, %d", first, limit, next, added, e.Samples(), wantNext, wantAdded)
		}
		var names []string
		for _, s := range decodeRequest(t, e.AppendRequest(nil)) {
			names = append(names, s.labels[0][1])
		}
		if got := strings.Join(names, " "); got != want {
			t.Fatalf("Add(first %d, limit %d) series %q, want %q", first, limit, got, want)
		}
	}
	f(0, 1, 1, 1, "m_a")
	f(0, 2, 3, 2, "m_a m_b") // stops at the field it could not add
	f(0, 3, 4, 3, "m_a m_b m_c")
	f(1, 1, 3, 1, "m_b")
	f(3, 1, 4, 1, "m_c")
	f(4, 1, 4, 0, "")

	// Two metrics share one request until the limit.
	e.Reset()
	if next, added := e.Add(&m, nowMs, 0, 4); next != 4 || added != 3 {
		t.Fatalf("first metric: %d, %d", next, added)
	}
	if next, added := e.Add(&m, nowMs, 0, 4); next != 1 || added != 1 || e.Samples() != 4 {
		t.Fatalf("second metric: %d, %d, %d samples", next, added, e.Samples())
	}
	if got := len(decodeRequest(t, e.AppendRequest(nil))); got != 4 {
		t.Fatalf("%d series, want 4", got)
	}
	e.Reset()
	if got := e.AppendRequest(nil); len(got) != 0 {
		t.Fatalf("empty request encodes as %x", got)
	}
}

var goldenMetrics = []engine.Metric{
	{Bucket: "stats_counters", Tags: []engine.Tag{tag("env", "prod"), tag("name", "requests")}, Fields: []engine.Field{num("count", 42), num("rate", 4.2)}, Timestamp: 1700000000000},
	{Bucket: "system_cpu", Tags: []engine.Tag{tag("host", "web-1"), tag("name", "cpu0")}, Fields: []engine.Field{num("user", 1234), num("system", 567)}, Timestamp: 1700000000500},
	{Bucket: "stats_timers", Tags: []engine.Tag{tag("host", "web-1"), tag("name", "db.query")}, Fields: []engine.Field{num("count", 3), num("mean", 4.25), num("upper_90", 12.5)}},
	{Bucket: "logs", Tags: []engine.Tag{tag("unit", "nginx.service")}, Fields: []engine.Field{{Name: "message", Value: engine.String("GET /a?b=c \"ok\"")}, {Name: "ok", Value: engine.Bool(true)}}},
}

// TestEncoder_Golden keeps a decoded request and its bytes (hex), so that
// a change of the wire format shows in review.
func TestEncoder_Golden(t *testing.T) {
	var e Encoder
	for i := range goldenMetrics {
		e.Add(&goldenMetrics[i], nowMs, 0, 1000)
	}
	raw := e.AppendRequest(nil)
	out := fmt.Sprintf("%s\n\n%x\n", render(decodeRequest(t, raw)), raw)
	path := filepath.Join("testdata", "write_request.golden")
	if *update {
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal([]byte(out), want) {
		t.Fatalf("output differs from %s (run with -update to accept):\n%s", path, out)
	}
}

var (
	metricNameRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelNameRE  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// FuzzEncoder checks what a receiver relies on, whatever the input: a
// valid metric name, valid label names sorted without repeats, UTF-8
// values, and the sample's value and timestamp as given.
func FuzzEncoder(f *testing.F) {
	f.Add("system_cpu", "user", "host", "a", "name", "cpu0", 1.5, int64(1700000000123), 1)
	f.Add("9m.x", "", "__name__", "\xff", "a.b", "", math.NaN(), int64(0), 0)
	f.Add("", "v", "a-b", "1", "a.b", "2", math.Copysign(0, -1), int64(-1), 2)
	f.Fuzz(func(t *testing.T, bucket, field, k1, v1, k2, v2 string, n float64, ts int64, limit int) {
		limit = 1 + min(max(limit, 0), 3)
		tags := []engine.Tag{tag(k1, v1), tag(k2, v2)}
		m := engine.Metric{Bucket: bucket, Tags: engine.SortTags(tags), Timestamp: ts,
			Fields: []engine.Field{num(field, n), {Name: field, Value: engine.String(v1)}, num(field+"2", n+1)}}
		var e Encoder
		var got []series
		for first := 0; first < len(m.Fields); {
			e.Reset()
			next, added := e.Add(&m, nowMs, first, limit)
			if next <= first && added == 0 {
				t.Fatalf("Add(first %d, limit %d) made no progress", first, limit)
			}
			got = append(got, decodeRequest(t, e.AppendRequest(nil))...)
			first = next
		}
		wantTS := ts
		if ts == 0 {
			wantTS = nowMs
		}
		wantN := 0
		for _, fl := range m.Fields {
			if IsSample(fl.Value) {
				wantN++
			}
		}
		if len(got) != wantN {
			t.Fatalf("%d series, want %d", len(got), wantN)
		}
		for _, s := range got {
			if s.ts != wantTS || s.value != n && s.value != n+1 {
				t.Fatalf("series %v: want value %v or %v at %d", s, n, n+1, wantTS)
			}
			names := 0
			for i, l := range s.labels {
				if i > 0 && s.labels[i-1][0] >= l[0] {
					t.Fatalf("series %v: labels not sorted or repeated", s)
				}
				if !utf8.ValidString(l[1]) || l[1] == "" {
					t.Fatalf("series %v: label value %q", s, l[1])
				}
				if l[0] == "__name__" {
					names++
					if !metricNameRE.MatchString(l[1]) {
						t.Fatalf("series %v: bad metric name", s)
					}
				} else if !labelNameRE.MatchString(l[0]) || strings.HasPrefix(l[0], "__") {
					t.Fatalf("series %v: bad label name %q", s, l[0])
				}
			}
			if names != 1 {
				t.Fatalf("series %v: %d names", s, names)
			}
		}
	})
}
