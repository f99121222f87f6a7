package remotewrite

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/engine/enginetest"
)

func typedMetric(bucket string, v engine.Value, ts int64, tags ...engine.Tag) engine.Metric {
	return engine.Metric{Bucket: bucket, Fields: []engine.Field{{Name: "value", Value: v}}, Tags: tags, Timestamp: ts}
}

func hist(count uint64, sum float64, counts ...uint64) engine.Value {
	return engine.Value{Kind: engine.KindHistogram, Dist: &engine.Distribution{Count: count, Sum: sum, Bounds: []float64{0.005, 0.5, 1}, Counts: counts}}
}

func summary(sum float64, samples ...float64) engine.Value {
	return engine.Value{Kind: engine.KindSummary, Dist: &engine.Distribution{Count: uint64(len(samples)), Sum: sum, Samples: samples},
		Meta: &engine.TypeMeta{Quantiles: []engine.Quantile{{Q: 0.5}, {Q: 0.99}}}}
}

// typedInterval is one flush of the typed layout: interval k (1, 2, …)
// brings the same changes again, so the totals of interval k are k times
// the first's.
func typedInterval(ts int64, tags ...engine.Tag) []engine.Metric {
	return []engine.Metric{
		typedMetric("api.hits", engine.CounterIncrease(3), ts, tags...),
		typedMetric("level", engine.Value{Kind: engine.KindGaugeDelta, Num: -2.5}, ts, tags...),
		typedMetric("rt", hist(4, 1.75, 1, 1, 0, 2), ts, tags...),
		typedMetric("size", summary(15, 5, 1, 4, 2, 3), ts, tags...),
		typedMetric("bad", engine.CounterIncrease(-1), ts, tags...),
		typedMetric("nan", engine.Value{Kind: engine.KindGaugeDelta, Num: math.NaN()}, ts, tags...),
	}
}

func TestEncoder_Typed(t *testing.T) {
	var e Encoder
	var buf []byte
	request := func(ms []engine.Metric) string {
		t.Helper()
		e.Reset()
		for i := range ms {
			e.Add(&ms[i], nowMs, 0, 1000)
		}
		buf = e.AppendRequest(buf[:0])
		return render(decodeRequest(t, buf))
	}
	// The totals of interval k are k times the first's; quantiles are the
	// interval's own.
	want := func(k float64) string {
		return fmt.Sprintf(strings.Join([]string{
			`api_hits{__name__,le="x"} %[1]g@5`,
			`level{__name__,le="x"} %[2]g@5`,
			`rt_bucket{__name__,le="0.005"} %[3]g@5`,
			`rt_bucket{__name__,le="0.5"} %[4]g@5`,
			`rt_bucket{__name__,le="1"} %[4]g@5`,
			`rt_bucket{__name__,le="+Inf"} %[5]g@5`,
			`rt_sum{__name__,le="x"} %[6]g@5`,
			`rt_count{__name__,le="x"} %[5]g@5`,
			`size{__name__,le="x",quantile="0.5"} 3@5`,
			`size{__name__,le="x",quantile="0.99"} 5@5`,
			`size_sum{__name__,le="x"} %[7]g@5`,
			`size_count{__name__,le="x"} %[8]g@5`,
		}, "\n"), 3*k, -2.5*k, k, 2*k, 4*k, 1.75*k, 15*k, 5*k)
	}
	// A tag named le gives way to the bucket's le.
	ms := typedInterval(5, tag("le", "x"))
	if got := request(ms); got != want(1) {
		t.Fatalf("first interval\n got %s\nwant %s", got, want(1))
	}
	if e.Samples() != 12 || e.TypedSeries() != 4 {
		t.Fatalf("Samples() = %d, TypedSeries() = %d; want 12, 4", e.Samples(), e.TypedSeries())
	}
	// Not committed: the retry of the same interval sends the same totals.
	e.Discard()
	if got := request(ms); got != want(1) {
		t.Fatalf("retried interval\n got %s\nwant %s", got, want(1))
	}
	e.Commit()
	// Two intervals in one request: each adds to the other.
	two := append(typedInterval(5, tag("le", "x")), typedInterval(5, tag("le", "x"))...)
	if got := request(two); got != want(2)+"\n"+want(3) {
		t.Fatalf("second and third intervals\n got %s\nwant %s", got, want(2)+"\n"+want(3))
	}
	e.Commit()

	// Gauges: a typed layout's plain number sets the gauge deltas add to;
	// other layouts keep <bucket>_<field>.
	g := func(layout bool, ms []engine.Metric, want ...string) {
		t.Helper()
		e = Encoder{TypedLayout: layout}
		if got := request(ms); got != strings.Join(want, "\n") {
			t.Fatalf("typed layout %v\n got %s\nwant %s", layout, got, strings.Join(want, "\n"))
		}
	}
	gauges := []engine.Metric{
		typedMetric("g", engine.Value{Kind: engine.KindGaugeDelta, Num: 2}, 1),
		typedMetric("g", engine.Number(10), 2),
		typedMetric("g", engine.Value{Kind: engine.KindGaugeDelta, Num: -3}, 3),
	}
	g(true, gauges, `g{__name__} 2@1`, `g{__name__} 10@2`, `g{__name__} 7@3`)
	g(false, gauges, `g{__name__} 2@1`, `g_value{__name__} 10@2`, `g{__name__} -1@3`)
	// A new type or new bounds start the series again from zero.
	g(true, []engine.Metric{
		typedMetric("x", engine.CounterIncrease(5), 1),
		typedMetric("x", hist(1, 2, 0, 1, 0, 0), 2),
		typedMetric("x", engine.Value{Kind: engine.KindHistogram, Dist: &engine.Distribution{Count: 1, Sum: 3, Bounds: []float64{10}, Counts: []uint64{1, 0}}}, 3),
		typedMetric("x", engine.Value{Kind: engine.KindHistogram, Dist: &engine.Distribution{Count: 2, Sum: 4, Native: &engine.NativeBuckets{}}}, 4),
	},
		`x{__name__} 5@1`,
		`x_bucket{__name__,le="0.005"} 0@2`, `x_bucket{__name__,le="0.5"} 1@2`, `x_bucket{__name__,le="1"} 1@2`, `x_bucket{__name__,le="+Inf"} 1@2`,
		`x_sum{__name__} 2@2`, `x_count{__name__} 1@2`,
		`x_bucket{__name__,le="10"} 1@3`, `x_bucket{__name__,le="+Inf"} 1@3`, `x_sum{__name__} 3@3`, `x_count{__name__} 1@3`,
		`x_sum{__name__} 7@4`, `x_count{__name__} 3@4`)

	// Series with ttl are forgotten once idle past it.
	e = Encoder{}
	m := typedMetric("c", engine.Value{Kind: engine.KindCounter, Num: 1, Meta: &engine.TypeMeta{TTL: time.Minute}}, nowMs)
	request([]engine.Metric{m})
	e.Commit()
	e.Expire(nowMs + 30_000)
	e.Expire(nowMs + 3*60_000)
	if e.TypedSeries() != 0 {
		t.Fatalf("TypedSeries() = %d after the ttl, want 0", e.TypedSeries())
	}
}

func TestClient_ReceiversTyped(t *testing.T) {
	for _, rc := range remoteWriteReceivers {
		t.Run(rc.name, func(t *testing.T) {
			t.Parallel()
			r := rc.start(t)
			o := fastOptions(r.WriteURL)
			o.Layout = LayoutTyped
			o.MaxSamplesPerSend = 5 // typed metrics over several requests
			in, stats, stop := run(t, o)
			now := time.Now().UnixMilli()
			host := tag("host", "h")
			in <- &engine.Batch{Metrics: append(typedInterval(now-2000, host), typedMetric("g", engine.Number(10), now-2000, host))}
			in <- &engine.Batch{Metrics: append(typedInterval(now-1000, host), typedMetric("g", engine.Value{Kind: engine.KindGaugeDelta, Num: -3}, now-1000, host))}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			enginetest.CheckDelivery(t, stats, map[string]uint64{"metrics_received": 14, "metrics_sent": 10, "metrics_dropped": 4,
				"metrics_dropped_no_fields": 4, "metrics_dropped_rejected": 0, "fields_skipped": 4, "metrics_dropped_memory_limit": 0})
			if got := stats.Gauge("typed_series").Load(); got != 5 {
				t.Errorf("typed_series = %d, want 5", got)
			}
			for expr, want := range map[string]float64{
				`api_hits{host="h"}`:                         6,
				`level{host="h"}`:                            -5,
				`g{host="h"}`:                                7,
				`rt_bucket{host="h",le="0.005"}`:             2,
				`rt_bucket{host="h",le="0.5"}`:               4,
				`rt_bucket{host="h",le="+Inf"}`:              8,
				`rt_count{host="h"}`:                         8,
				`rt_sum{host="h"}`:                           3.5,
				`size{host="h",quantile="0.99"}`:             5,
				`size_count{host="h"}`:                       10,
				`size_sum{host="h"}`:                         30,
				`histogram_quantile(1, rt_bucket{host="h"})`: 1,
			} {
				wantValue(t, r, expr, want)
			}
		})
	}
}
