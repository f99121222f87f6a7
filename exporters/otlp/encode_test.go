package otlp

import (
	"bytes"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/bucky3/bucky3/engine"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func num(name string, f float64) engine.Field {
	return engine.Field{Name: name, Value: engine.Number(f)}
}

func tag(k, v string) engine.Tag { return engine.Tag{Key: k, Value: v} }

const nowNs = 1700000000000000000

// decode unmarshals a request with the OTLP project's generated types
// (MetricsData has the wire format of ExportMetricsServiceRequest), which
// also checks that every string is UTF-8.
func decode(t testing.TB, b []byte) *metricspb.MetricsData {
	t.Helper()
	var md metricspb.MetricsData
	if err := (proto.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(b, &md); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	if len(md.ProtoReflect().GetUnknown()) > 0 {
		t.Fatalf("unknown fields in the request")
	}
	return &md
}

func attrs(kvs []*commonpb.KeyValue) string {
	var s []string
	for _, kv := range kvs {
		s = append(s, fmt.Sprintf("%s=%q", kv.GetKey(), kv.GetValue().GetStringValue()))
	}
	return "{" + strings.Join(s, ",") + "}"
}

// render writes one line per data point:
// resource{…} scope name gauge|sum(delta,monotonic) {attributes} value@ns
func render(t testing.TB, md *metricspb.MetricsData) string {
	t.Helper()
	var lines []string
	for _, rm := range md.GetResourceMetrics() {
		res := "resource" + attrs(rm.GetResource().GetAttributes())
		for _, sm := range rm.GetScopeMetrics() {
			for _, m := range sm.GetMetrics() {
				var kind string
				var points []*metricspb.NumberDataPoint
				switch {
				case m.GetGauge() != nil:
					kind, points = "gauge", m.GetGauge().GetDataPoints()
				case m.GetSum() != nil:
					s := m.GetSum()
					kind = fmt.Sprintf("sum(%s,monotonic=%v)", s.GetAggregationTemporality(), s.GetIsMonotonic())
					points = s.GetDataPoints()
				default:
					t.Fatalf("metric %s: neither gauge nor sum", m.GetName())
				}
				if len(points) != 1 {
					t.Fatalf("metric %s: %d points, want 1", m.GetName(), len(points))
				}
				p := points[0]
				lines = append(lines, fmt.Sprintf("%s %s %s %s %s %s@%d", res, sm.GetScope().GetName(), m.GetName(), kind,
					attrs(p.GetAttributes()), strconv.FormatFloat(p.GetAsDouble(), 'g', -1, 64), p.GetTimeUnixNano()))
			}
		}
	}
	return strings.Join(lines, "\n")
}

func TestEncoder_Success(t *testing.T) {
	e := NewEncoder([]string{"host", "env", "host"}, []string{"stats_counters"})
	var buf []byte
	f := func(ms []engine.Metric, want ...string) {
		t.Helper()
		for range 2 { // reuse of the encoder and buffer changes nothing
			e.Reset()
			points := 0
			for i := range ms {
				points += e.Add(&ms[i], nowNs)
			}
			if points != len(want) || e.Points() != points {
				t.Fatalf("added %d points (Points %d), want %d", points, e.Points(), len(want))
			}
			buf = e.AppendRequest(buf[:0])
			if got := render(t, decode(t, buf)); got != strings.Join(want, "\n") {
				t.Fatalf("\n got %s\nwant %s", got, strings.Join(want, "\n"))
			}
		}
	}
	// Counters' count is a delta sum, everything else a gauge; resource
	// attributes leave the data point's attributes.
	f([]engine.Metric{{Bucket: "stats_counters", Tags: []engine.Tag{tag("env", "prod"), tag("host", "a"), tag("name", "req")}, Fields: []engine.Field{num("count", 5), num("rate", 0.5)}, Timestamp: 1700000000123}},
		`resource{env="prod",host="a"} bucky3 stats_counters_count sum(AGGREGATION_TEMPORALITY_DELTA,monotonic=true) {name="req"} 5@1700000000123000000`,
		`resource{env="prod",host="a"} bucky3 stats_counters_rate gauge {name="req"} 0.5@1700000000123000000`)
	// Same resource: one ResourceMetrics; a new one when it changes, also
	// back to an earlier one. No timestamp: now. Timers: gauges.
	f([]engine.Metric{
		{Bucket: "stats_timers", Tags: []engine.Tag{tag("host", "a")}, Fields: []engine.Field{num("count", 3), num("mean", 2.5)}},
		{Bucket: "stats_gauges", Tags: []engine.Tag{tag("host", "a")}, Fields: []engine.Field{num("value", -1)}},
		{Bucket: "stats_gauges", Tags: []engine.Tag{tag("host", "b")}, Fields: []engine.Field{num("value", 2)}},
		{Bucket: "stats_gauges", Tags: []engine.Tag{tag("host", "a")}, Fields: []engine.Field{num("value", 3)}},
	},
		`resource{host="a"} bucky3 stats_timers_count gauge {} 3@1700000000000000000`,
		`resource{host="a"} bucky3 stats_timers_mean gauge {} 2.5@1700000000000000000`,
		`resource{host="a"} bucky3 stats_gauges_value gauge {} -1@1700000000000000000`,
		`resource{host="b"} bucky3 stats_gauges_value gauge {} 2@1700000000000000000`,
		`resource{host="a"} bucky3 stats_gauges_value gauge {} 3@1700000000000000000`)
	// Only finite numbers; empty tag values are no attribute; keys are
	// kept as they are, invalid UTF-8 becomes U+FFFD; names sanitised.
	f([]engine.Metric{{Bucket: "9docker.mem", Tags: []engine.Tag{tag("a.b", "x\xffy"), tag("empty", ""), tag("host", "")},
		Fields: []engine.Field{{Name: "s", Value: engine.String("x")}, {Name: "ok", Value: engine.Bool(true)}, num("nan", math.NaN()), num("rss", 7)}, Timestamp: -5}},
		"resource{} bucky3 _9docker_mem_rss gauge {a.b=\"x\uFFFDy\"} 7@1700000000000000000")
	f([]engine.Metric{{Bucket: "none", Fields: []engine.Field{{Name: "s", Value: engine.String("x")}}}})
}

var goldenMetrics = []engine.Metric{
	{Bucket: "stats_counters", Tags: []engine.Tag{tag("env", "prod"), tag("host", "web-1"), tag("name", "requests")}, Fields: []engine.Field{num("count", 42), num("rate", 4.2)}, Timestamp: 1700000000000},
	{Bucket: "system_cpu", Tags: []engine.Tag{tag("host", "web-1"), tag("name", "cpu0")}, Fields: []engine.Field{num("user", 1234), num("system", 567)}, Timestamp: 1700000000500},
	{Bucket: "stats_timers", Tags: []engine.Tag{tag("host", "web-1"), tag("name", "db.query")}, Fields: []engine.Field{num("count", 3), num("mean", 4.25), num("upper_90", 12.5)}},
	{Bucket: "logs", Tags: []engine.Tag{tag("unit", "nginx.service")}, Fields: []engine.Field{{Name: "message", Value: engine.String("GET /a?b=c \"ok\"")}, {Name: "ok", Value: engine.Bool(true)}}},
}

// TestEncoder_Golden keeps a decoded request and its bytes (hex), so that
// a change of the wire format shows in review.
func TestEncoder_Golden(t *testing.T) {
	e := NewEncoder([]string{"host"}, []string{"stats_counters"})
	for i := range goldenMetrics {
		e.Add(&goldenMetrics[i], nowNs)
	}
	raw := e.AppendRequest(nil)
	out := fmt.Sprintf("%s\n\n%x\n", render(t, decode(t, raw)), raw)
	path := filepath.Join("testdata", "export_request.golden")
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

func TestParseResponse(t *testing.T) {
	f := func(b []byte, wantN int64, wantMsg string) {
		t.Helper()
		if n, msg := parseResponse(b); n != wantN || msg != wantMsg {
			t.Fatalf("parseResponse(%x) = %d, %q; want %d, %q", b, n, msg, wantN, wantMsg)
		}
	}
	partial := func(n int64, msg string) []byte {
		var ps []byte
		ps = protowire.AppendTag(ps, 1, protowire.VarintType)
		ps = protowire.AppendVarint(ps, uint64(n))
		ps = protowire.AppendTag(ps, 2, protowire.BytesType)
		ps = protowire.AppendString(ps, msg)
		b := protowire.AppendTag(nil, 1, protowire.BytesType)
		return protowire.AppendBytes(b, ps)
	}
	f(nil, 0, "")
	f(partial(3, "bad name"), 3, "bad name")
	f(partial(0, ""), 0, "")
	f([]byte(`{"partialSuccess":{}}`), 0, "") // JSON: not read
	f([]byte{0x0a, 0x05, 0x08}, 0, "")        // truncated
}

// FuzzEncoder checks that any metric encodes to a request the OTLP types
// decode, with one data point per finite numeric field, its value and
// time as given, and the resource attribute never among the point's.
func FuzzEncoder(f *testing.F) {
	f.Add("stats_counters", "count", "host", "a", "name", "req", 1.5, int64(1700000000123))
	f.Add("9m.x", "", "host", "\xff", "a.b", "", math.NaN(), int64(0))
	f.Add("", "v", "a-b", "1", "host", "2", math.Copysign(0, -1), int64(-1))
	f.Fuzz(func(t *testing.T, bucket, field, k1, v1, k2, v2 string, n float64, ts int64) {
		e := NewEncoder([]string{"host"}, []string{"stats_counters"})
		m := engine.Metric{Bucket: bucket, Tags: engine.SortTags([]engine.Tag{tag(k1, v1), tag(k2, v2)}), Timestamp: ts,
			Fields: []engine.Field{num(field, n), {Name: field, Value: engine.String(v1)}, num(field+"2", n+1)}}
		added := e.Add(&m, nowNs)
		md := decode(t, e.AppendRequest(nil))
		wantTS := uint64(nowNs)
		if ts > 0 {
			wantTS = uint64(ts) * 1e6
		}
		points := 0
		for _, rm := range md.GetResourceMetrics() {
			for _, sm := range rm.GetScopeMetrics() {
				for _, metric := range sm.GetMetrics() {
					dps := metric.GetGauge().GetDataPoints()
					if s := metric.GetSum(); s != nil {
						dps = s.GetDataPoints()
					}
					for _, p := range dps {
						points++
						if p.GetTimeUnixNano() != wantTS || p.GetAsDouble() != n && p.GetAsDouble() != n+1 {
							t.Fatalf("point %v: want value %v or %v at %d", p, n, n+1, wantTS)
						}
						for _, kv := range p.GetAttributes() {
							if kv.GetKey() == "host" || kv.GetValue().GetStringValue() == "" {
								t.Fatalf("point attribute %v", kv)
							}
						}
					}
				}
			}
		}
		if points != added {
			t.Fatalf("%d points decoded, %d added", points, added)
		}
	})
}
