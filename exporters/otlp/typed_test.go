package otlp

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/engine/enginetest"
	"github.com/bucky3/bucky3/internal/backendtest"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
)

// typedMetrics are one of each typed kind statsd_server's typed layout
// emits, tagged host=h; the last two have nothing to send.
func typedMetrics(h string, ts int64) []engine.Metric {
	tags := []engine.Tag{tag("code", "200"), tag("host", h)}
	typed := func(bucket string, v engine.Value) engine.Metric {
		return engine.Metric{Bucket: bucket, Fields: []engine.Field{{Name: "value", Value: v}}, Tags: tags, Timestamp: ts}
	}
	return []engine.Metric{
		typed("api.hits", engine.CounterIncrease(3)),
		typed("level", engine.Value{Kind: engine.KindGaugeDelta, Num: -2.5}),
		typed("rt", engine.Value{Kind: engine.KindHistogram, Dist: &engine.Distribution{
			Count: 4, Sum: 1.75, Bounds: []float64{0.005, 0.5, 1}, Counts: []uint64{1, 1, 0, 2}}}),
		// schema 0: bucket 1 is (1, 2], bucket 3 is (4, 8]
		typed("nh", engine.Value{Kind: engine.KindHistogram, Dist: &engine.Distribution{
			Count: 6, Sum: 20, Native: &engine.NativeBuckets{ZeroThreshold: 1e-128, ZeroCount: 1,
				Positive: []engine.NativeBucket{{Index: 1, Count: 2}, {Index: 3, Count: 3}}}}}),
		typed("size", engine.Value{Kind: engine.KindSummary, Dist: &engine.Distribution{
			Count: 5, Sum: 15, Samples: []float64{5, 1, 4, 2, 3}}, Meta: &engine.TypeMeta{Quantiles: []engine.Quantile{{Q: 0.5}, {Q: 0.99}}}}),
		typed("bad", engine.CounterIncrease(math.NaN())),
		typed("negative", engine.CounterIncrease(-1)),
	}
}

// renderTyped writes one line per typed data point.
func renderTyped(t *testing.T, md *metricspb.MetricsData) string {
	t.Helper()
	var lines []string
	for _, rm := range md.GetResourceMetrics() {
		for _, sm := range rm.GetScopeMetrics() {
			for _, m := range sm.GetMetrics() {
				var line string
				switch {
				case m.GetSum() != nil:
					s := m.GetSum()
					p := s.GetDataPoints()[0]
					line = fmt.Sprintf("sum(%s,monotonic=%v) %s %v", s.GetAggregationTemporality(), s.GetIsMonotonic(), attrs(p.GetAttributes()), p.GetAsDouble())
				case m.GetHistogram() != nil:
					h := m.GetHistogram()
					p := h.GetDataPoints()[0]
					line = fmt.Sprintf("histogram(%s) %s count=%d sum=%v bounds=%v counts=%v", h.GetAggregationTemporality(), attrs(p.GetAttributes()),
						p.GetCount(), p.GetSum(), p.GetExplicitBounds(), p.GetBucketCounts())
				case m.GetExponentialHistogram() != nil:
					h := m.GetExponentialHistogram()
					p := h.GetDataPoints()[0]
					line = fmt.Sprintf("exponential(%s) %s count=%d sum=%v scale=%d zero=%d@%v positive=%d%v negative=%v", h.GetAggregationTemporality(),
						attrs(p.GetAttributes()), p.GetCount(), p.GetSum(), p.GetScale(), p.GetZeroCount(), p.GetZeroThreshold(),
						p.GetPositive().GetOffset(), p.GetPositive().GetBucketCounts(), p.GetNegative().GetBucketCounts())
				case m.GetSummary() != nil:
					p := m.GetSummary().GetDataPoints()[0]
					var qs []string
					for _, q := range p.GetQuantileValues() {
						qs = append(qs, fmt.Sprintf("%v:%v", q.GetQuantile(), q.GetValue()))
					}
					line = fmt.Sprintf("summary %s count=%d sum=%v quantiles=%v", attrs(p.GetAttributes()), p.GetCount(), p.GetSum(), qs)
				default:
					t.Fatalf("metric %s: no typed data", m.GetName())
				}
				lines = append(lines, m.GetName()+" "+line)
			}
		}
	}
	return strings.Join(lines, "\n")
}

func TestEncoder_Typed(t *testing.T) {
	e := NewEncoder([]string{"host"}, nil)
	for range 2 { // the encoder's scratch is reused cleanly
		e.Reset()
		added := 0
		for _, m := range typedMetrics("a", 1000) {
			added += e.Add(&m, nowNs)
		}
		if added != 5 || e.Points() != 5 {
			t.Fatalf("added %d, Points() = %d, want 5", added, e.Points())
		}
		got := renderTyped(t, decode(t, e.AppendRequest(nil)))
		want := strings.Join([]string{
			`api_hits sum(AGGREGATION_TEMPORALITY_DELTA,monotonic=true) {code="200"} 3`,
			`level sum(AGGREGATION_TEMPORALITY_DELTA,monotonic=false) {code="200"} -2.5`,
			`rt histogram(AGGREGATION_TEMPORALITY_DELTA) {code="200"} count=4 sum=1.75 bounds=[0.005 0.5 1] counts=[1 1 0 2]`,
			`nh exponential(AGGREGATION_TEMPORALITY_DELTA) {code="200"} count=6 sum=20 scale=0 zero=1@1e-128 positive=0[2 0 3] negative=[]`,
			`size summary {code="200"} count=5 sum=15 quantiles=[0.5:3 0.99:5]`,
		}, "\n")
		if got != want {
			t.Fatalf("got\n%s\nwant\n%s", got, want)
		}
	}
}

func TestEncoder_TypedLayout(t *testing.T) {
	f := func(layout bool, want string) {
		t.Helper()
		e := NewEncoder(nil, nil)
		e.TypedLayout = layout
		for _, m := range []engine.Metric{
			{Bucket: "g", Fields: []engine.Field{num("value", 10)}},
			{Bucket: "g", Fields: []engine.Field{{Name: "value", Value: engine.Value{Kind: engine.KindGaugeDelta, Num: 1}}}},
			{Bucket: "cpu", Fields: []engine.Field{num("value", 1), num("idle", 2)}},
		} {
			e.Add(&m, nowNs)
		}
		var names []string
		for _, rm := range decode(t, e.AppendRequest(nil)).GetResourceMetrics() {
			for _, m := range rm.GetScopeMetrics()[0].GetMetrics() {
				names = append(names, m.GetName())
			}
		}
		if got := strings.Join(names, " "); got != want {
			t.Errorf("typed layout %v: names %s, want %s", layout, got, want)
		}
	}
	f(false, "g_value g cpu_value cpu_idle")
	f(true, "g g cpu_value cpu_idle")
}

func TestClient_VictoriaMetricsTyped(t *testing.T) {
	r := backendtest.StartVictoriaMetricsOTLP(t)
	in, stats, stop := run(t, fastOptions(r.OTLPURL))
	in <- &engine.Batch{Metrics: typedMetrics("typed", time.Now().UnixMilli())}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	enginetest.CheckDelivery(t, stats, map[string]uint64{"metrics_received": 7, "metrics_sent": 5, "metrics_dropped": 2,
		"metrics_dropped_no_fields": 2, "fields_skipped": 2})
	sel := `{host="typed",code="200"`
	for expr, want := range map[string]float64{
		"api_hits" + sel + "}":                         3,
		"level" + sel + "}":                            -2.5,
		"rt_count" + sel + "}":                         4,
		"rt_sum" + sel + "}":                           1.75,
		"rt_bucket" + sel + `,le="0.005"}`:             1,
		"rt_bucket" + sel + `,le="0.5"}`:               2,
		"rt_bucket" + sel + `,le="1"}`:                 2,
		"rt_bucket" + sel + `,le="+Inf"}`:              4,
		"nh_count" + sel + "}":                         6,
		"nh_sum" + sel + "}":                           20,
		"sum(nh_bucket" + sel + "})":                   6,
		"histogram_quantile(1, nh_bucket" + sel + "})": 8,
		"size_count" + sel + "}":                       5,
		"size_sum" + sel + "}":                         15,
		"size" + sel + `,quantile="0.5"}`:              3,
		"size" + sel + `,quantile="0.99"}`:             5,
	} {
		wantValue(t, r, expr, want)
	}
}
