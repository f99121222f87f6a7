package aggregate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/bucky3/bucky3/engine"
)

// timerBySort is the flush of a timer as it was before selection: a full
// sort, then the percentiles as prefixes and the bins as runs of the
// sorted samples. TestTimer_SelectionMatchesSort checks timer against it.
func (f *flusher) timerBySort(ser *series) {
	x := slices.Clone(ser.samples)
	slices.Sort(x)
	if o := ser.over; o != nil {
		var sum summary
		i := 0
		for p, t100 := range f.t.thresholds {
			var fs []engine.Field
			if t100 == 10000 {
				all := o.all.summary()
				fs = f.timerFields(all.n, &all, o.all.lower, o.all.upper)
			} else {
				k := max(t100*len(x)/10000, 1)
				for ; i < k; i++ {
					sum.add(x[i])
				}
				fs = f.timerFields(max(t100*int(o.all.n)/10000, 1), &sum, o.all.lower, x[k-1])
			}
			f.emit("timers", "percentile", f.t.percentiles[p], fs)
		}
		if ser.rule != nil {
			for j, b := range ser.rule.bins {
				if m := &o.bins[j]; m.n > 0 {
					s := m.summary()
					f.emit("histograms", "histogram", b.name, f.timerFields(s.n, &s, m.lower, m.upper))
				}
			}
		}
		return
	}
	var sum summary
	i := 0
	for p, t100 := range f.t.thresholds {
		k := max(t100*len(x)/10000, 1)
		for ; i < k; i++ {
			sum.add(x[i])
		}
		f.emit("timers", "percentile", f.t.percentiles[p], f.timerFields(sum.n, &sum, x[0], x[k-1]))
	}
	r := ser.rule
	if r == nil {
		return
	}
	i, _ = slices.BinarySearch(x, r.lower)
	for _, b := range r.bins {
		sum = summary{}
		j := i
		for ; j < len(x) && x[j] < b.upper; j++ {
			sum.add(x[j])
		}
		if j > i {
			f.emit("histograms", "histogram", b.name, f.timerFields(sum.n, &sum, x[i], x[j-1]))
		}
		i = j
	}
}

// TestTimer_SelectionMatchesSort compares the flush of random timers with
// the sort's: the same metrics, counts and bounds, and means and
// deviations equal but for the rounding of a different summation order.
// Inputs cover runs short enough to be sorted and long ones that are
// selected, many duplicates, and reservoirs past MaxTimerSamples.
func TestTimer_SelectionMatchesSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	thresholdSets := [][]float64{
		{100}, {50}, {90, 100}, {50, 90, 99, 100}, {1, 10, 25, 50, 75, 90, 99, 99.9},
		{0.1, 0.5, 99.99}, {10, 20, 30, 40, 50, 60, 70, 80, 90, 100},
	}
	lengths := []int{1, 2, 3, 31, 33, 100, 1000, 5000, 20_000, 70_000}
	values := []struct {
		name string
		gen  func() float64
	}{
		{"uniform", func() float64 { return rng.Float64()*2000 - 1000 }},
		{"few distinct", func() float64 { return float64(rng.IntN(5)) }},
		{"one value", func() float64 { return 7.5 }},
		{"latency", func() float64 { return float64(int(rng.ExpFloat64()*200)) / 10 }},
	}
	for _, ths := range thresholdSets {
		for _, n := range lengths {
			for _, vs := range values {
				for _, order := range []string{"random", "ascending", "descending"} {
					for _, capped := range []bool{false, true} {
						name := fmt.Sprintf("%v/%d/%s/%s/capped=%v", ths, n, vs.name, order, capped)
						x := make([]float64, n)
						for i := range x {
							x[i] = vs.gen()
						}
						switch order {
						case "ascending":
							slices.Sort(x)
						case "descending":
							slices.Sort(x)
							slices.Reverse(x)
						}
						checkTimer(t, name, ths, x, capped)
					}
				}
			}
		}
	}
}

func checkTimer(t *testing.T, name string, thresholds []float64, x []float64, capped bool) {
	t.Helper()
	o := DefaultOptions()
	o.PercentileThresholds = thresholds
	o.Histograms = []HistogramRule{{Match: "t", Lower: ptr(-10), Bins: []Bin{
		{Name: "a", Upper: ptr(0)}, {Name: "b", Upper: ptr(1)}, {Name: "c", Upper: ptr(2.5)}, {Name: "d", Upper: ptr(100)}}}}
	if capped {
		o.MaxTimerSamples = max(len(x)/3, 1)
	}
	tbl, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ser := &series{kind: kindTimer, rule: tbl.rules[0]}
	if len(x) > tbl.o.MaxTimerSamples {
		tbl.addSampled(ser, x)
	} else {
		ser.samples = slices.Clone(x)
	}
	ref := flusher{t: tbl, interval: 10}
	ref.timerBySort(ser)
	got := flusher{t: tbl, interval: 10}
	got.timer(ser)
	if len(got.metrics) != len(ref.metrics) {
		t.Fatalf("%s: %d metrics, want %d", name, len(got.metrics), len(ref.metrics))
	}
	for i, m := range got.metrics {
		w := ref.metrics[i]
		if !slices.Equal(m.Tags, w.Tags) || len(m.Fields) != len(w.Fields) {
			t.Fatalf("%s: metric %d is %v %v, want %v %v", name, i, m.Tags, m.Fields, w.Tags, w.Fields)
		}
		for j, fd := range m.Fields {
			g, e := fd.Value.Num, w.Fields[j].Value.Num
			exact := fd.Name != "mean" && fd.Name != "stdev"
			if fd.Name != w.Fields[j].Name || exact && g != e || !exact && math.Abs(g-e) > 1e-9*max(1, math.Abs(e)) {
				t.Fatalf("%s: metric %v field %s = %v, want %v", name, m.Tags, fd.Name, g, e)
			}
		}
	}
}

// TestTimer_HugeSeriesYields checks that one timer of 1M samples is no
// single stall: its flush yields at least once per flushYieldSamples
// samples it reads, whatever the thresholds and bins.
func TestTimer_HugeSeriesYields(t *testing.T) {
	const n = 1 << 20
	rng := rand.New(rand.NewPCG(3, 5))
	for _, ths := range [][]float64{{100}, {50, 90, 99, 100}, {1, 10, 25, 50, 75, 90, 99, 99.9}} {
		o := DefaultOptions()
		o.PercentileThresholds = ths
		o.MaxTimerSamples = n
		o.Histograms = []HistogramRule{{Match: "t", Bins: []Bin{{Name: "a", Upper: ptr(1)}, {Name: "b"}}}}
		tbl, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		x := make([]float64, n)
		for i := range x {
			x[i] = rng.Float64()
		}
		f := flusher{t: tbl, interval: 10}
		f.timer(&series{kind: kindTimer, samples: x, rule: tbl.rules[0]})
		if want := n / flushYieldSamples; f.yields < want {
			t.Errorf("%v: %d yields in a flush of %d samples, want at least %d", ths, f.yields, n, want)
		}
	}
}

// TestSelectAll_Depth: whatever depth the selection gets before it falls
// back to a sort, every target ends where a sort would put it, with
// nothing larger before it and nothing smaller after.
func TestSelectAll_Depth(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 9))
	for _, n := range []int{33, 200, 5000} {
		for depth := range 6 {
			x := make([]float64, n)
			for i := range x {
				x[i] = float64(rng.IntN(n / 3))
			}
			sorted := slices.Sorted(slices.Values(x))
			targets := []int{0, n / 10, n / 2, n / 2, n - 2}
			targets = slices.Compact(targets)
			var f flusher
			f.selectAll(x, 0, n, targets, 0, false, depth)
			for _, tg := range targets {
				if x[tg] != sorted[tg] || slices.Max(x[:tg+1]) != x[tg] || slices.Min(x[tg:]) != x[tg] {
					t.Fatalf("n %d depth %d: x[%d] = %v, want %v with no larger before and no smaller after", n, depth, tg, x[tg], sorted[tg])
				}
			}
		}
	}
}

// A run of equal samples has their value for mean and no deviation,
// however the run splits between thresholds, as adding them one by one
// gave.
func TestTimer_EqualSamples(t *testing.T) {
	for _, v := range []float64{0.1, 0.3, 1e9 + 0.7, 123.456, -2.2} {
		x := make([]float64, 1000)
		for i := range x {
			x[i] = v
		}
		var f flusher
		var s summary
		f.extend(&s, x[:300])
		f.extend(&s, x[300:990])
		f.extend(&s, x[990:])
		if s.n != 1000 || s.mean != v || s.stdev() != 0 {
			t.Errorf("%v: n %d, mean %v, stdev %v; want 1000, %v, 0", v, s.n, s.mean, s.stdev(), v)
		}
	}
}

// The batch is allocated once, for every metric the timers may emit.
func TestFlush_BatchSized(t *testing.T) {
	o := DefaultOptions()
	o.PercentileThresholds = []float64{50, 90, 100}
	o.Histograms = []HistogramRule{{Match: "h_.*", Lower: ptr(0), Bins: []Bin{{Name: "low", Upper: ptr(10)}, {Name: "high"}}}}
	tbl, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	w := tbl.NewWriter()
	for _, line := range []string{"c:1|c", "g:1|g", "s:a|s", "t:1:2:3|ms", "h_x:1:20|ms", "h_y:5|ms"} {
		w.Add(sampleOf(t, line))
	}
	ms := tbl.Flush(time.Now())
	// 3 + 3 percentiles a timer + 2 bins of h_x + 1 of h_y (room for 2).
	if len(ms) != 15 || cap(ms) != 16 {
		t.Fatalf("%d metrics in a batch of capacity %d, want 15 in 16", len(ms), cap(ms))
	}
}
