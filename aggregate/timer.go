package aggregate

import (
	"math"
	"math/bits"
	"slices"

	"github.com/axiomhq/hyperloglog"

	"github.com/bucky3/bucky3/engine"
)

// overflow is the state of a series past its per-interval cap. A timer's
// samples become a uniform reservoir (Algorithm R) while all, bins and the
// count stay exact; a set's members become a sketch (set.go).
type overflow struct {
	all    moments   // every sample of the interval
	bins   []moments // every sample of each bin of the series' rule
	rng    uint64    // the reservoir's random stream (splitmix64)
	sketch *hyperloglog.Sketch
}

// addSampled adds values to the timer ser when they would take it past
// MaxTimerSamples: the first time, it fills the samples up to the cap and
// starts the exact statistics from them; then each value updates those and
// replaces a random sample with probability cap/seen. Nothing allocates
// after the first time.
func (t *Table) addSampled(ser *series, values []float64) {
	o := ser.over
	if o == nil {
		room := t.o.MaxTimerSamples - len(ser.samples)
		ser.samples = append(ser.samples, values[:room]...)
		values = values[room:]
		o = &overflow{rng: t.seed.Add(1) * 0x9e3779b97f4a7c15}
		if ser.rule != nil {
			o.bins = make([]moments, len(ser.rule.bins))
		}
		for _, v := range ser.samples {
			o.add(ser.rule, v)
		}
		ser.over = o
		t.sampled.Add(1)
	}
	keep := uint64(len(ser.samples))
	for _, v := range values {
		o.add(ser.rule, v)
		// A uniform j in [0, seen), by Lemire's multiply-shift.
		if j, _ := bits.Mul64(o.next(), o.all.n); j < keep {
			ser.samples[j] = v
		}
	}
}

// add records v in the exact statistics.
func (o *overflow) add(r *histRule, v float64) {
	o.all.add(v)
	if r == nil || v < r.lower {
		return
	}
	for i := range r.bins {
		if v < r.bins[i].upper {
			o.bins[i].add(v)
			return
		}
	}
}

// next steps the splitmix64 generator: a few cycles, no state shared
// between series, which are each guarded by their stripe's lock.
func (o *overflow) next() uint64 {
	o.rng += 0x9e3779b97f4a7c15
	z := o.rng
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// moments are the exact count, bounds, mean and deviation of a stream.
// Sums are of x minus the first sample, which keeps their precision when
// the values are far from 0 but close to each other.
type moments struct {
	n            uint64
	shift        float64
	sum, sumSq   float64
	lower, upper float64
}

func (m *moments) add(x float64) {
	if m.n == 0 {
		m.shift, m.lower, m.upper = x, x, x
	}
	m.n++
	d := x - m.shift
	m.sum += d
	m.sumSq += d * d
	m.lower = min(m.lower, x)
	m.upper = max(m.upper, x)
}

// summary returns m as the summary timerFields reads.
func (m *moments) summary() summary {
	n := float64(m.n)
	return summary{n: int(m.n), mean: m.shift + m.sum/n, m2: m.sumSq - m.sum*m.sum/n}
}

// timer emits one metric per percentile threshold and one per histogram
// bin that received samples. It sorts ser.samples in place.
func (f *flusher) timer(ser *series) {
	if len(f.t.thresholds) == 0 && ser.rule == nil {
		return
	}
	x := ser.samples
	slices.Sort(x)
	if ser.over != nil {
		f.sampledTimer(ser, x)
		return
	}

	// Thresholds ascend, so each k extends the previous one's summary.
	var sum summary
	i := 0
	for p, t100 := range f.t.thresholds {
		k := max(t100*len(x)/10000, 1)
		for ; i < k; i++ {
			sum.add(x[i])
		}
		f.emit(f.t.o.TimersBucket, "percentile", f.t.percentiles[p], f.timerFields(sum.n, &sum, x[0], x[k-1]))
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
			f.emit(f.t.o.HistogramsBucket, "histogram", b.name, f.timerFields(sum.n, &sum, x[i], x[j-1]))
		}
		i = j
	}
}

// sampledTimer is timer for a series past MaxTimerSamples, whose sorted
// reservoir is x. What does not depend on the order of samples is exact:
// the 100th percentile and the bins whole, and of every other percentile
// its count and lower. Its upper, mean and stdev come from the reservoir's
// same share of samples.
func (f *flusher) sampledTimer(ser *series, x []float64) {
	o := ser.over
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
			n := max(t100*int(o.all.n)/10000, 1)
			fs = f.timerFields(n, &sum, o.all.lower, x[k-1])
		}
		f.emit(f.t.o.TimersBucket, "percentile", f.t.percentiles[p], fs)
	}
	if ser.rule == nil {
		return
	}
	for j, b := range ser.rule.bins {
		if m := &o.bins[j]; m.n > 0 {
			s := m.summary()
			f.emit(f.t.o.HistogramsBucket, "histogram", b.name, f.timerFields(s.n, &s, m.lower, m.upper))
		}
	}
}

// timerFields returns the fields of a run of n samples from lower to
// upper whose mean and deviation are sum's.
func (f *flusher) timerFields(n int, sum *summary, lower, upper float64) []engine.Field {
	size := 5
	if n > 1 {
		size = 6
	}
	fs := f.fields.carve(size)
	fs[0] = engine.Field{Name: "count", Value: engine.Number(float64(n))}
	fs[1] = engine.Field{Name: "count_ps", Value: engine.Number(float64(n) / f.interval)}
	fs[2] = engine.Field{Name: "lower", Value: engine.Number(lower)}
	fs[3] = engine.Field{Name: "upper", Value: engine.Number(upper)}
	fs[4] = engine.Field{Name: "mean", Value: engine.Number(sum.mean)}
	if n > 1 {
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
