package engine_test

import (
	"math"
	"testing"

	"github.com/bucky3/bucky3/engine"
)

func TestFlattener(t *testing.T) {
	var fl engine.Flattener
	f := func(field engine.Field, want ...engine.FlatField) {
		t.Helper()
		for range 2 { // the second call reuses the scratch and name caches
			got := fl.Flatten(field)
			if len(got) != len(want) {
				t.Fatalf("Flatten(%v) = %v, want %v", field, got, want)
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("Flatten(%v) = %v, want %v", field, got, want)
				}
			}
		}
	}
	f(engine.Field{Name: "value", Value: engine.Number(1.5)}, engine.FlatField{Name: "value", Num: 1.5})
	f(engine.Field{Name: "value", Value: engine.CounterIncrease(3)}, engine.FlatField{Name: "value", Num: 3})
	f(engine.Field{Name: "value", Value: engine.Value{Kind: engine.KindGaugeDelta, Num: -2}}, engine.FlatField{Name: "value", Num: -2})
	f(engine.Field{Name: "value", Value: engine.CounterIncrease(math.NaN())})
	f(engine.Field{Name: "value", Value: engine.String("x")})
	hist := &engine.Distribution{Count: 4, Sum: 2.5, Bounds: []float64{0.005, 2.5, 1e-05, 1e21}, Counts: []uint64{1, 2, 0, 0, 1}}
	f(engine.Field{Name: "value", Value: engine.Value{Kind: engine.KindHistogram, Dist: hist}},
		engine.FlatField{Name: "count", Num: 4}, engine.FlatField{Name: "sum", Num: 2.5},
		engine.FlatField{Name: "le_0_005", Num: 1}, engine.FlatField{Name: "le_2_5", Num: 3},
		engine.FlatField{Name: "le_1e-05", Num: 3}, engine.FlatField{Name: "le_1e21", Num: 3},
		engine.FlatField{Name: "le_inf", Num: 4})
	native := &engine.Distribution{Count: 2, Sum: 3, Native: &engine.NativeBuckets{Positive: []engine.NativeBucket{{Index: 1, Count: 2}}}}
	f(engine.Field{Name: "rt", Value: engine.Value{Kind: engine.KindHistogram, Dist: native}},
		engine.FlatField{Name: "rt_count", Num: 2}, engine.FlatField{Name: "rt_sum", Num: 3})
	samples := make([]float64, 1000)
	for i := range samples {
		samples[len(samples)-1-i] = float64(i + 1)
	}
	sum := &engine.Distribution{Count: 2000, Sum: 1e6, Samples: samples}
	f(engine.Field{Name: "value", Value: engine.Value{Kind: engine.KindSummary, Dist: sum}},
		engine.FlatField{Name: "count", Num: 2000}, engine.FlatField{Name: "sum", Num: 1e6},
		engine.FlatField{Name: "p50", Num: 500}, engine.FlatField{Name: "p90", Num: 900}, engine.FlatField{Name: "p99", Num: 990})
	meta := &engine.TypeMeta{Quantiles: []engine.Quantile{{Q: 0.999}, {Q: 0.25}, {Q: 0.25}}}
	f(engine.Field{Name: "value", Value: engine.Value{Kind: engine.KindSummary, Dist: sum, Meta: meta}},
		engine.FlatField{Name: "count", Num: 2000}, engine.FlatField{Name: "sum", Num: 1e6},
		engine.FlatField{Name: "p25", Num: 250}, engine.FlatField{Name: "p99_9", Num: 999})
	if samples[0] != 1000 {
		t.Fatal("Flatten sorted the batch's samples in place")
	}
	f(engine.Field{Name: "value", Value: engine.Value{Kind: engine.KindSummary, Dist: &engine.Distribution{}}},
		engine.FlatField{Name: "count", Num: 0}, engine.FlatField{Name: "sum", Num: 0})
}

func TestSampleQuantile(t *testing.T) {
	if q := engine.SampleQuantile(nil, 0.5); !math.IsNaN(q) {
		t.Fatalf("no samples: got %v, want NaN", q)
	}
	s := []float64{1, 2, 3, 4}
	for _, c := range []struct{ q, want float64 }{{0, 1}, {0.25, 1}, {0.5, 2}, {0.51, 3}, {1, 4}} {
		if got := engine.SampleQuantile(s, c.q); got != c.want {
			t.Errorf("SampleQuantile(%v, %v) = %v, want %v", s, c.q, got, c.want)
		}
	}
}
