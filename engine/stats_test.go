package engine_test

import (
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/bucky3/bucky3/engine"
)

func TestStats_Values(t *testing.T) {
	s := engine.NewStats()
	s.Counter("lines_received").Add(3)
	s.Gauge("series").Set(-2)
	want := []engine.StatValue{
		{Name: "flush_errors", Value: 0},
		{Name: "lines_received", Value: 3},
		{Name: "series", Gauge: true, Value: -2},
	}
	if got := s.Values(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Values() = %+v, want %+v", got, want)
	}
}

func TestModule_AllStats(t *testing.T) {
	var all func() []engine.ModuleStats
	var own *engine.Stats
	agentOf(t, "[out]\nmodule_type = \"rec\"\n[src]\nmodule_type = \"fsrc\"\n",
		sourceType("fsrc", func(m engine.Module) funcSource { own = m.Stats; return nil }),
		destinationType("rec", func(m engine.Module) *recorder { all = m.AllStats; return &recorder{} }))
	got := all()
	if len(got) != 2 || got[0].Name != "src" || got[0].Kind != engine.ModuleSource || got[0].Stats != own ||
		got[1].Name != "out" || got[1].Kind != engine.ModuleDestination {
		t.Fatalf("AllStats() = %+v", got)
	}
}

func TestHistogram(t *testing.T) {
	s := engine.NewStats()
	h := s.Histogram("gap_seconds", engine.ExponentialBounds(0.001, 10, 3)) // 1 ms, 10 ms, 100 ms
	if again := s.Histogram("gap_seconds", nil); again != h {
		t.Fatal("Histogram of an existing name returned another histogram")
	}
	for _, v := range []float64{0, 0.001, 0.0011, 0.05, 0.1, 3} {
		h.Observe(v)
	}
	got := h.Load()
	// A bound holds the observations equal to it, as Prometheus' le does.
	if want := []uint64{2, 1, 2, 1}; !reflect.DeepEqual(got.Counts, want) {
		t.Errorf("Counts = %v, want %v", got.Counts, want)
	}
	if got.Count != 6 || math.Abs(got.Sum-3.1521) > 1e-12 || got.Max != 3 {
		t.Errorf("Count, Sum, Max = %d, %v, %v, want 6, 3.1521, 3", got.Count, got.Sum, got.Max)
	}
	if len(got.Bounds) != 3 || math.Abs(got.Bounds[2]-0.1) > 1e-15 {
		t.Errorf("Bounds = %v", got.Bounds)
	}
	hs := s.Histograms()
	if len(hs) != 1 || hs[0].Name != "gap_seconds" || hs[0].Count != 6 {
		t.Errorf("Histograms() = %+v", hs)
	}
	for _, v := range s.Values() {
		if strings.HasPrefix(v.Name, "gap_seconds") {
			t.Errorf("Values() holds %q: histograms are not single values", v.Name)
		}
	}
	fields := map[string]float64{}
	for _, f := range s.Snapshot() {
		fields[f.Name] = f.Value.Num
	}
	if fields["gap_seconds_count"] != 6 || fields["gap_seconds_max"] != 3 || math.Abs(fields["gap_seconds_sum"]-3.1521) > 1e-12 {
		t.Errorf("Snapshot() = %v", fields)
	}
	if allocs := testing.AllocsPerRun(100, func() { h.Observe(0.002) }); allocs != 0 {
		t.Errorf("Observe: %v allocs, want 0", allocs)
	}
}

func TestHistogram_Concurrent(t *testing.T) {
	h := engine.NewHistogram([]float64{1, 2})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 1000 {
				h.Observe(float64(i%3) + float64(g)/10)
			}
		})
	}
	wg.Wait()
	got := h.Load()
	if got.Count != 4000 || got.Max != 2.3 {
		t.Fatalf("Count %d, Max %v; want 4000, 2.3", got.Count, got.Max)
	}
	// Each goroutine adds 333×1 + 333×2 + 1000×g/10: no addition lost.
	if math.Abs(got.Sum-4596) > 1e-6 {
		t.Fatalf("Sum %v, want 4596", got.Sum)
	}
}
