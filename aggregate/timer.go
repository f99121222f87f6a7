package aggregate

import (
	"math"
	"slices"

	"github.com/bucky3/bucky3/engine"
)

// timer emits one metric per percentile threshold and one per histogram
// bin that received samples. It sorts ser.samples in place.
func (f *flusher) timer(ser *series) {
	if len(f.t.thresholds) == 0 && ser.rule == nil {
		return
	}
	x := ser.samples
	slices.Sort(x)

	// Thresholds ascend, so each k extends the previous one's summary.
	var sum summary
	i := 0
	for p, t100 := range f.t.thresholds {
		k := max(t100*len(x)/10000, 1)
		for ; i < k; i++ {
			sum.add(x[i])
		}
		f.emit(f.t.o.TimersBucket, "percentile", f.t.percentiles[p], f.timerFields(&sum, x[0], x[k-1]))
	}

	r := ser.rule
	if r == nil {
		return
	}
	// Sorted samples make every bin a contiguous run.
	i, _ = slices.BinarySearch(x, r.lower)
	for _, b := range r.bins {
		sum = summary{}
		j := i
		for ; j < len(x) && x[j] < b.upper; j++ {
			sum.add(x[j])
		}
		if j > i {
			f.emit(f.t.o.HistogramsBucket, "histogram", b.name, f.timerFields(&sum, x[i], x[j-1]))
		}
		i = j
	}
}

// timerFields returns the fields of a run of samples from lower to upper.
func (f *flusher) timerFields(sum *summary, lower, upper float64) []engine.Field {
	n := 5
	if sum.n > 1 {
		n = 6
	}
	fs := f.fields.carve(n)
	fs[0] = engine.Field{Name: "count", Value: engine.Number(float64(sum.n))}
	fs[1] = engine.Field{Name: "count_ps", Value: engine.Number(float64(sum.n) / f.interval)}
	fs[2] = engine.Field{Name: "lower", Value: engine.Number(lower)}
	fs[3] = engine.Field{Name: "upper", Value: engine.Number(upper)}
	fs[4] = engine.Field{Name: "mean", Value: engine.Number(sum.mean)}
	if sum.n > 1 {
		fs[5] = engine.Field{Name: "stdev", Value: engine.Number(sum.stdev())}
	}
	return fs
}

// summary accumulates a count, mean and sum of squared deviations with
// Welford's method, which stays accurate over the long runs of similar
// values that busy timers produce.
type summary struct {
	n        int
	mean, m2 float64
}

func (s *summary) add(x float64) {
	s.n++
	d := x - s.mean
	s.mean += d / float64(s.n)
	s.m2 += d * (x - s.mean)
}

// stdev is the sample standard deviation (n-1 denominator). Rounding can
// leave m2 slightly negative and extreme values can overflow it; neither
// may surface as a negative or NaN deviation.
func (s *summary) stdev() float64 {
	v := s.m2 / float64(s.n-1)
	if !(v > 0) {
		return 0
	}
	return math.Sqrt(v)
}
