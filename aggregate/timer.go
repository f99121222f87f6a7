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
// bin that received samples. It reorders ser.samples in place: a
// percentile needs only its prefix of smallest samples, which selection
// finds in linear time, and a bin needs no order at all.
func (f *flusher) timer(ser *series) {
	if len(f.t.thresholds) == 0 && ser.rule == nil {
		return
	}
	x := ser.samples
	if ser.over != nil {
		f.sampledTimer(ser, x)
		return
	}
	uppers := f.order(x, false)

	// Thresholds ascend, so each k extends the previous one's summary;
	// the prefixes hold the global lower.
	var sum summary
	lower := math.Inf(1)
	i := 0
	for p, t100 := range f.t.thresholds {
		k := max(t100*len(x)/10000, 1)
		lower = min(lower, f.addRun(&sum, x[i:k]))
		i = max(i, k)
		f.emit(f.t.o.TimersBucket, "percentile", f.t.percentiles[p], f.timerFields(sum.n, &sum, lower, uppers[p]))
	}
	if ser.rule != nil {
		f.bins(ser.rule, x)
	}
}

// bins emits the histogram bins of the samples x of a timer with rule r,
// in one pass: each sample goes to the first bin whose upper exceeds it.
func (f *flusher) bins(r *histRule, x []float64) {
	f.binSums = append(f.binSums[:0], make([]binSum, len(r.bins))...)
	for j, v := range x {
		if j&(flushYieldSamples-1) == flushYieldSamples-1 {
			f.yield()
		}
		if v < r.lower {
			continue
		}
		for b := range r.bins {
			if v < r.bins[b].upper {
				f.binSums[b].add(v)
				break
			}
		}
	}
	for b := range r.bins {
		if s := &f.binSums[b]; s.n > 0 {
			f.emit(f.t.o.HistogramsBucket, "histogram", r.bins[b].name, f.timerFields(s.n, &s.summary, s.lower, s.upper))
		}
	}
}

// binSum is the summary of one histogram bin's samples and their bounds.
type binSum struct {
	summary
	lower, upper float64
}

func (b *binSum) add(v float64) {
	if b.n == 0 {
		b.lower, b.upper = v, v
	}
	b.summary.add(v)
	b.lower, b.upper = min(b.lower, v), max(b.upper, v)
}

// sampledTimer is timer for a series past MaxTimerSamples, whose reservoir
// is x. What does not depend on the order of samples is exact: the 100th
// percentile and the bins whole, and of every other percentile its count
// and lower. Its upper, mean and stdev come from the reservoir's same
// share of samples.
func (f *flusher) sampledTimer(ser *series, x []float64) {
	o := ser.over
	uppers := f.order(x, true)
	var sum summary
	i := 0
	for p, t100 := range f.t.thresholds {
		var fs []engine.Field
		if t100 == 10000 {
			all := o.all.summary()
			fs = f.timerFields(all.n, &all, o.all.lower, o.all.upper)
		} else {
			k := max(t100*len(x)/10000, 1)
			f.addRun(&sum, x[i:k])
			i = max(i, k)
			n := max(t100*int(o.all.n)/10000, 1)
			fs = f.timerFields(n, &sum, o.all.lower, uppers[p])
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

// order reorders x so that, for each threshold's k, x[:k] holds the k
// smallest samples, and returns the k-th smallest of each threshold (its
// upper), in a slice reused by the next call. Selection runs from the
// largest k down, each on the prefix the previous one left, which keeps
// x[k-1] in place. With exact100 the 100th percentile is taken from the
// exact statistics, so it is not looked for.
//
// Short runs and runs with many thresholds are sorted instead, when
// sorting costs little; a long sort would hold the CPU without a yield.
func (f *flusher) order(x []float64, exact100 bool) []float64 {
	th := f.t.thresholds
	f.uppers = append(f.uppers[:0], make([]float64, len(th))...)
	if len(th) == 0 {
		return f.uppers
	}
	if len(x) <= sortBelow || len(th) > selectThresholds && len(x) <= sortUpTo {
		slices.Sort(x)
		for p, t100 := range th {
			f.uppers[p] = x[max(t100*len(x)/10000, 1)-1]
		}
		return f.uppers
	}
	hi, last := len(x), -1 // x[:hi] is still unordered; last is the previous k
	for p := len(th) - 1; p >= 0; p-- {
		if exact100 && th[p] == 10000 {
			continue
		}
		k := max(th[p]*len(x)/10000, 1)
		if k == last {
			f.uppers[p] = f.uppers[p+1]
			continue
		}
		if k == hi {
			f.maxLast(x[:hi])
		} else {
			f.selectK(x[:hi], k)
		}
		f.uppers[p], hi, last = x[k-1], k-1, k
	}
	return f.uppers
}

// sortBelow: runs this short are sorted, which costs less than selection.
// selectThresholds: with more thresholds than this below 100, runs up to
// sortUpTo samples (a sort of about a millisecond) are sorted too.
const (
	sortBelow        = 32
	selectThresholds = 4
	sortUpTo         = 1 << 14
)

// maxLast moves the largest element of x to its end.
func (f *flusher) maxLast(x []float64) {
	m := 0
	for j := range x {
		if j&(flushYieldSamples-1) == flushYieldSamples-1 {
			f.yield()
		}
		if x[j] > x[m] {
			m = j
		}
	}
	x[m], x[len(x)-1] = x[len(x)-1], x[m]
}

// selectK reorders x so that x[k-1] is its k-th smallest element, with
// x[:k-1] no larger and x[k:] no smaller (quickselect with a three-way
// partition, so runs of equal samples end it early). Past a depth that
// only adversarial inputs reach, the rest is sorted.
func (f *flusher) selectK(x []float64, k int) {
	lo, hi, t := 0, len(x), k-1 // the target index lies in x[lo:hi]
	for depth := 2 * bits.Len(uint(len(x))); hi-lo > sortBelow; depth-- {
		if depth == 0 {
			slices.Sort(x[lo:hi])
			return
		}
		pivot := median3(x[lo], x[lo+(hi-lo)/2], x[hi-1])
		// x[lo:lt] < pivot, x[lt:i] == pivot, x[gt:hi] > pivot.
		lt, i, gt := lo, lo, hi
		for steps := 1; i < gt; steps++ {
			if steps&(flushYieldSamples-1) == 0 {
				f.yield()
			}
			switch v := x[i]; {
			case v < pivot:
				x[lt], x[i] = v, x[lt]
				lt++
				i++
			case v > pivot:
				gt--
				x[gt], x[i] = v, x[gt]
			default:
				i++
			}
		}
		switch {
		case t < lt:
			hi = lt
		case t >= gt:
			lo = gt
		default:
			return
		}
	}
	slices.Sort(x[lo:hi])
}

func median3(a, b, c float64) float64 {
	if a > b {
		a, b = b, a
	}
	if b > c {
		b = c
	}
	return max(a, b)
}

// addRun adds the samples x to sum, yielding between slices of a long
// run, and returns their smallest (+Inf for none).
func (f *flusher) addRun(sum *summary, x []float64) float64 {
	lower := math.Inf(1)
	for len(x) > 0 {
		n := min(len(x), flushYieldSamples)
		for _, v := range x[:n] {
			sum.add(v)
			lower = min(lower, v)
		}
		if x = x[n:]; len(x) > 0 {
			f.yield()
		}
	}
	return lower
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
