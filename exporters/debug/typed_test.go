package debug

import (
	"testing"

	"github.com/bucky3/bucky3/engine"
)

func TestAppendMetric_Typed(t *testing.T) {
	f := func(v engine.Value, want string) {
		t.Helper()
		m := engine.Metric{Bucket: "m", Fields: []engine.Field{{Name: "value", Value: v}}}
		want = "m -\n  fields: value=" + want + "\n  tags:   -\n"
		if got := string(AppendMetric(nil, "", &m)); got != want {
			t.Errorf("AppendMetric =\n%s\nwant\n%s", got, want)
		}
	}
	f(engine.CounterIncrease(3), "counter:3")
	f(engine.Value{Kind: engine.KindGaugeDelta, Num: -2.5}, "gauge_delta:-2.5")
	f(engine.Value{Kind: engine.KindHistogram, Dist: &engine.Distribution{
		Count: 4, Sum: 1.75, Bounds: []float64{0.005, 0.5, 1}, Counts: []uint64{1, 1, 0, 2}}},
		"histogram{count=4 sum=1.75 le_0_005=1 le_0_5=2 le_1=2 le_inf=4}")
	f(engine.Value{Kind: engine.KindHistogram, Dist: &engine.Distribution{Count: 3, Sum: 7, Native: &engine.NativeBuckets{
		Schema: 3, ZeroCount: 1, Positive: []engine.NativeBucket{{Index: 8, Count: 2}}}}},
		"histogram{count=3 sum=7 native_schema=3 zero_count=1 positive_buckets=1 negative_buckets=0}")
	f(engine.Value{Kind: engine.KindSummary, Dist: &engine.Distribution{Count: 5, Sum: 15, Samples: []float64{5, 1, 4, 2, 3}}},
		"summary{count=5 sum=15 p50=3 p90=5 p99=5}")
}
