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
	uppers := f.order(x)

	// Thresholds ascend, so each k extends the previous one's summary;
	// every prefix holds the smallest sample, and the 100th percentile's
	// upper is the largest of all.
	var sum summary
	lower, upper := math.Inf(1), math.Inf(-1)
	i := 0
	for p, t100 := range f.t.thresholds {
		k := max(t100*len(x)/10000, 1)
		if k > i {
			lo, up := f.extend(&sum, x[i:k])
			lower, upper = min(lower, lo), max(upper, up)
			i = k
		}
		if k == len(x) {
			uppers[p] = upper
		}
		f.emit(f.t.o.TimersBucket, "percentile", f.t.percentiles[p], f.timerFields(sum.n, &sum, lower, uppers[p]))
	}
	if ser.rule != nil {
		f.bins(ser.rule, x)
	}
}

// sampledTimer is timer for a series past MaxTimerSamples, whose reservoir
// is x. What does not depend on the order of samples is exact: the 100th
// percentile and the bins whole, and of every other percentile its count
// and lower. Its upper, mean and stdev come from the reservoir's same
// share of samples.
func (f *flusher) sampledTimer(ser *series, x []float64) {
	o := ser.over
	uppers := f.order(x)
	var sum summary
	i := 0
	for p, t100 := range f.t.thresholds {
		var fs []engine.Field
		if t100 == 10000 {
			all := o.all.summary()
			fs = f.timerFields(all.n, &all, o.all.lower, o.all.upper)
		} else {
			if k := max(t100*len(x)/10000, 1); k > i {
				f.extend(&sum, x[i:k])
				i = k
			}
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

// bins emits the histogram bins of the samples x of a timer with rule r,
// in one pass: each sample goes to the first bin whose upper exceeds it.
func (f *flusher) bins(r *histRule, x []float64) {
	f.binSums = append(f.binSums[:0], make([]binSum, len(r.bins))...)
	for start := 0; start < len(x); start += flushYieldSamples {
		run := x[start:min(start+flushYieldSamples, len(x))]
		for _, v := range run {
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
		f.did(len(run))
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

// extend adds the run x to sum and returns its smallest and largest
// samples (+Inf and -Inf for none). The run's mean and squared
// deviations take two passes without a division per sample, then merge
// into sum (Chan, Golub and LeVeque): as accurate as adding the samples
// one by one, and more so.
func (f *flusher) extend(sum *summary, x []float64) (lower, upper float64) {
	lower, upper = math.Inf(1), math.Inf(-1)
	if len(x) == 0 {
		return lower, upper
	}
	var total, m2 float64
	for start := 0; start < len(x); start += flushYieldSamples {
		run := x[start:min(start+flushYieldSamples, len(x))]
		for _, v := range run {
			total += v
			if v < lower {
				lower = v
			}
			if v > upper {
				upper = v
			}
		}
		f.did(len(run))
	}
	n := len(x)
	mean := total / float64(n)
	// The deviations' sum corrects the rounding of the mean: a run of
	// equal samples gets their value and no deviation.
	var dsum float64
	for start := 0; start < len(x); start += flushYieldSamples {
		run := x[start:min(start+flushYieldSamples, len(x))]
		for _, v := range run {
			d := v - mean
			dsum += d
			m2 += d * d
		}
		f.did(len(run))
	}
	mean += dsum / float64(n)
	m2 -= dsum * dsum / float64(n)
	if sum.n == 0 {
		*sum = summary{n: n, mean: mean, m2: m2}
		return lower, upper
	}
	all := sum.n + n
	d := mean - sum.mean
	sum.mean += d * float64(n) / float64(all)
	sum.m2 += m2 + d*d*float64(sum.n)*float64(n)/float64(all)
	sum.n = all
	return lower, upper
}

// order reorders x so that, for each threshold's k, x[:k] holds the k
// smallest samples and x[k-1] the largest of them, and returns each
// threshold's x[k-1] (its upper) in a slice reused by the next call;
// short runs are sorted, which costs less. The 100th percentile needs no
// order: its upper is the largest sample, which timer finds as it sums,
// and sampledTimer takes from the exact statistics; its upper is left
// unset unless the run was sorted.
func (f *flusher) order(x []float64) []float64 {
	th := f.t.thresholds
	f.uppers = append(f.uppers[:0], make([]float64, len(th))...)
	if len(th) == 0 {
		return f.uppers
	}
	if len(x) <= sortBelow {
		slices.Sort(x)
	} else {
		// The indexes k-1, ascending and distinct.
		f.targets = f.targets[:0]
		for _, t100 := range th {
			if t := max(t100*len(x)/10000, 1) - 1; t < len(x)-1 && (len(f.targets) == 0 || f.targets[len(f.targets)-1] != t) {
				f.targets = append(f.targets, t)
			}
		}
		f.selectAll(x, 0, len(x), f.targets, 0, false, 2*bits.Len(uint(len(x))))
	}
	for p, t100 := range th {
		if k := max(t100*len(x)/10000, 1); k < len(x) || len(x) <= sortBelow {
			f.uppers[p] = x[k-1]
		}
	}
	return f.uppers
}

// sortBelow: runs this short are sorted, which costs less than selection.
const sortBelow = 32

// selectAll reorders x[lo:hi] so that each index in targets (ascending,
// in [lo, hi)) holds what a sort would put there, with nothing larger
// before it and nothing smaller after: a quickselect that follows every
// target at once. With hasFloor, no element of x[lo:hi] is below floor:
// a pivot equal to it gathers the elements equal to it, which then need
// no more order, so runs of equal samples end it early. Past depth
// levels, which only adversarial inputs reach, the rest is sorted.
func (f *flusher) selectAll(x []float64, lo, hi int, targets []int, floor float64, hasFloor bool, depth int) {
	for len(targets) > 0 {
		if hi-lo <= sortBelow || depth == 0 {
			slices.Sort(x[lo:hi])
			f.did(hi - lo)
			return
		}
		depth--
		pi := pivotIndex(x, lo, hi)
		pv := x[pi]
		if hasFloor && pv == floor {
			lo += f.partition(x[lo:hi], pv, true)
			targets = targets[lowerBound(targets, lo):]
			continue
		}
		last := hi - 1
		x[pi], x[last] = x[last], pv
		j := lo + f.partition(x[lo:last], pv, false)
		x[last], x[j] = x[j], pv
		// x[lo:j] < pv == x[j] <= x[j+1:hi]
		m := lowerBound(targets, j)
		if m > 0 {
			f.selectAll(x, lo, j, targets[:m], floor, hasFloor, depth)
		}
		if targets = targets[m:]; len(targets) > 0 && targets[0] == j {
			targets = targets[1:]
		}
		lo, floor, hasFloor = j+1, pv, true
	}
}

// lowerBound returns the first index of ascending s holding v or more.
func lowerBound(s []int, v int) int {
	i, _ := slices.BinarySearch(s, v)
	return i
}

// partition moves the elements of x below pv (or equal to it, with
// orEqual) to the front and returns how many there are: a Lomuto
// partition that swaps every element, so that the only step that depends
// on the data is the count.
func (f *flusher) partition(x []float64, pv float64, orEqual bool) int {
	j := 0
	for start := 0; start < len(x); start += flushYieldSamples {
		end := min(start+flushYieldSamples, len(x))
		if orEqual {
			for i := start; i < end; i++ {
				v := x[i]
				x[i] = x[j]
				x[j] = v
				if v <= pv {
					j++
				}
			}
		} else {
			for i := start; i < end; i++ {
				v := x[i]
				x[i] = x[j]
				x[j] = v
				if v < pv {
					j++
				}
			}
		}
		f.did(end - start)
	}
	return j
}

// pivotIndex returns the index of a pivot for x[lo:hi]: the median of
// three samples, or of three medians of three in a long run (Tukey's
// ninther), which keeps sorted and reversed runs fast.
func pivotIndex(x []float64, lo, hi int) int {
	n := hi - lo
	a, b, c := lo+n/4, lo+n/2, lo+3*n/4
	if n >= 128 {
		s := n / 8
		a, b, c = median3(x, a-s, a, a+s), median3(x, b-s, b, b+s), median3(x, c-s, c, c+s)
	}
	return median3(x, a, b, c)
}

// median3 returns the index of the median of x[a], x[b] and x[c].
func median3(x []float64, a, b, c int) int {
	if x[a] > x[b] {
		a, b = b, a
	}
	if x[b] > x[c] {
		if x[a] > x[c] {
			return a
		}
		return c
	}
	return b
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
