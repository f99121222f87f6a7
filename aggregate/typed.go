package aggregate

import (
	"fmt"
	"math"
	"slices"

	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/parse"
)

// Observer is how a typed timer, histogram or distribution series keeps
// its observations.
type Observer uint8

const (
	// ObserverHistogram counts observations in buckets (classic, native or
	// both) and keeps no samples. It is the zero value.
	ObserverHistogram Observer = iota
	// ObserverSummary keeps samples (a reservoir past MaxTimerSamples) for
	// a destination to estimate quantiles from.
	ObserverSummary
)

// SeriesType is how a series of a typed table (Options.Typed) aggregates
// and what its metric carries. A source builds one per mapping rule and
// shares it between series: it must not change once used.
type SeriesType struct {
	// Observer applies to timers, histograms and distributions.
	Observer Observer
	// Buckets are the ascending classic upper bounds of a histogram; a
	// trailing +Inf is implied and may be given. Nil means none.
	Buckets []float64
	// NativeFactor above 1 adds native buckets at the schema client_golang
	// picks for that bucket factor (the largest growth per bucket not
	// above it).
	NativeFactor float64
	// NativeZeroThreshold is the width of the native zero bucket: 0 means
	// client_golang's default 2^-128, a negative value an exact zero.
	NativeZeroThreshold float64
	// Scale multiplies observed values (statsd_exporter's milliseconds to
	// seconds is 0.001); 0 means 1. A Scale that is the reciprocal of an
	// integer divides by that integer instead, as statsd_exporter does, so
	// that values land in the same buckets as there.
	Scale float64
	// Meta is handed to destinations with the series' value.
	Meta *engine.TypeMeta
}

// Validate checks st; its errors start with the field name.
func (st *SeriesType) Validate() error {
	if st.Observer > ObserverSummary {
		return fmt.Errorf("observer: unknown observer %d", st.Observer)
	}
	b := classicBounds(st.Buckets)
	for i, v := range b {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("buckets: %v is not finite", v)
		}
		if i > 0 && v <= b[i-1] {
			return fmt.Errorf("buckets: %v is not above the previous bound %v", v, b[i-1])
		}
	}
	if math.IsNaN(st.NativeFactor) || math.IsInf(st.NativeFactor, 0) {
		return fmt.Errorf("native_factor: must be finite, got %v", st.NativeFactor)
	}
	if math.IsNaN(st.NativeZeroThreshold) || math.IsInf(st.NativeZeroThreshold, 0) {
		return fmt.Errorf("native_zero_threshold: must be finite, got %v", st.NativeZeroThreshold)
	}
	if math.IsNaN(st.Scale) || math.IsInf(st.Scale, 0) || st.Scale < 0 {
		return fmt.Errorf("scale: must be finite and not negative, got %v", st.Scale)
	}
	return nil
}

// classicBounds returns buckets without a trailing +Inf, which every
// histogram has anyway. The result is clipped: batches share it, and an
// append must not write over the caller's +Inf.
func classicBounds(buckets []float64) []float64 {
	if n := len(buckets); n > 0 && math.IsInf(buckets[n-1], 1) {
		return buckets[: n-1 : n-1]
	}
	return slices.Clip(buckets)
}

// AddTyped is AddRef for a series of type st, which the series keeps for
// the rest of the interval (a series started by another sample keeps the
// type it started with) and through ref after a Flush. A nil st is the
// table's default for s.Type; on a table that is not Typed, st is ignored.
// st should have passed Validate: an invalid one cannot make an add fail
// or panic, but its buckets then mean nothing.
func (w *Writer) AddTyped(s *parse.Sample, st *SeriesType, ref *Ref) bool {
	if !w.t.o.Typed {
		st = nil
	} else if st == nil {
		st = w.t.defaultType(s.Type)
	}
	return w.addRef(s, st, ref)
}

// defaultType is the SeriesType of samples added to a typed table without
// one: histograms with DefaultBuckets, ms timers converted to seconds as
// statsd_exporter does. Nil when the table is not typed.
func (t *Table) defaultType(typ parse.Type) *SeriesType {
	if !t.o.Typed {
		return nil
	}
	if typ == parse.Timer {
		return &t.defaults[1]
	}
	return &t.defaults[0]
}

// observations are the interval's observations of a typed timer: exact
// count and sum, then classic and native bucket counts for a histogram,
// or the series' samples for a summary. A recycled series keeps them for
// their buffers; start resets them.
type observations struct {
	count uint64
	sum   float64
	// scale multiplies values, or divides them when divide is set.
	scale  float64
	divide bool

	bounds []float64 // classic bounds, shared with the SeriesType
	counts []uint64  // len(bounds)+1 counts, +Inf last; empty without bounds

	native    bool
	schema    int32
	zero      float64 // zero bucket threshold
	zeroCount uint64
	// pos and neg are the populated native buckets, ascending by index.
	pos, neg []engine.NativeBucket
}

// start prepares o for a new series of type st.
func (o *observations) start(st *SeriesType) {
	*o = observations{counts: o.counts[:0], pos: o.pos[:0], neg: o.neg[:0], scale: 1}
	if st.Scale != 0 && st.Scale != 1 {
		o.scale = st.Scale
		if d := 1 / st.Scale; d > 1 && d == math.Trunc(d) && 1/d == st.Scale {
			o.scale, o.divide = d, true
		}
	}
	if st.Observer == ObserverSummary {
		return
	}
	o.bounds = classicBounds(st.Buckets)
	if len(o.bounds) > 0 {
		o.counts = slices.Grow(o.counts, len(o.bounds)+1)[:len(o.bounds)+1]
		clear(o.counts)
	}
	if st.NativeFactor > 1 {
		o.native = true
		o.schema = pickSchema(st.NativeFactor)
		switch z := st.NativeZeroThreshold; {
		case z == 0:
			o.zero = defaultZeroThreshold
		case z > 0:
			o.zero = z
		}
	}
}

// multiplicity is how many observations a value with sample rate rate
// stands for: int(1/rate), as statsd_exporter replicates it, bounded so
// that an absurd rate cannot overflow the counts.
func multiplicity(rate float64) uint64 {
	if rate >= 1 {
		return 1
	}
	return uint64(min(1/rate, maxMultiplicity))
}

const maxMultiplicity = 1 << 32

// observe adds the values of s to the typed timer ser, a series of t.
func (ser *series) observe(t *Table, s *parse.Sample) {
	o := ser.obs
	n := multiplicity(s.Rate)
	for _, v := range s.Values {
		if o.divide {
			v /= o.scale
		} else {
			v *= o.scale
		}
		o.count += n
		o.sum += v * float64(n)
		if ser.typ.Observer == ObserverSummary {
			// One sample stands for its n observations: the samples stay
			// a uniform sample of them when a series' rate is steady.
			if len(ser.samples) < t.o.MaxTimerSamples {
				ser.samples = append(ser.samples, v)
			} else {
				one := [1]float64{v}
				t.addSampled(ser, one[:])
			}
			continue
		}
		if len(o.counts) > 0 {
			o.counts[classicBucket(o.bounds, v)] += n
		}
		if o.native {
			o.observeNative(v, n)
		}
	}
}

// classicBucket returns the index of the first bound v is not above
// (Prometheus' le), len(bounds) for none.
func classicBucket(bounds []float64, v float64) int {
	if len(bounds) <= 16 {
		for i, b := range bounds {
			if v <= b {
				return i
			}
		}
		return len(bounds)
	}
	i, _ := slices.BinarySearch(bounds, v)
	return i
}

// defaultZeroThreshold is client_golang's: 2^-128, a bucket boundary at
// every schema.
const defaultZeroThreshold = 0x1p-128

// Native schemas span client_golang's range: at schema s a bucket's upper
// bound is 2^(2^-s) times the previous one.
const (
	minSchema = -4
	maxSchema = 8
)

// pickSchema returns the schema client_golang picks for a bucket factor
// above 1: the highest resolution whose growth per bucket is at most f.
func pickSchema(f float64) int32 {
	floor := math.Floor(math.Log2(math.Log2(f)))
	switch {
	case floor <= -maxSchema:
		return maxSchema
	case floor >= -minSchema:
		return minSchema
	}
	return -int32(floor)
}

// nativeBounds[s] for schema s > 0 holds the upper bounds of the 2^s
// buckets of one power of two, scaled into [0.5, 1) as math.Frexp returns
// fractions. They are computed as client_golang documents its table: each
// schema takes every other bound from the one below it, so that bucket
// boundaries agree across schemas to the last bit. Read-only.
var nativeBounds = func() [maxSchema + 1][]float64 {
	var nb [maxSchema + 1][]float64
	n := 1
	for s := range nb {
		b := []float64{0.5}
		factor := math.Exp2(math.Exp2(float64(-s)))
		for j := 0; j < n-1; j++ {
			if (j+1)%2 == 0 {
				b = append(b, nb[s-1][j/2+1])
			} else {
				b = append(b, b[j]*factor)
			}
		}
		nb[s] = b
		n *= 2
	}
	return nb
}()

// nativeIndex returns the index of the native bucket of schema holding
// the magnitude a > 0: the i with base^(i-1) < a <= base^i. It follows
// client_golang's arithmetic, so that both put a value on a boundary in
// the same bucket.
func nativeIndex(a float64, schema int32) int32 {
	inf := math.IsInf(a, 1)
	if inf {
		a = math.MaxFloat64
	}
	frac, exp := math.Frexp(a)
	var i int
	if schema > 0 {
		// The first bound not below frac, by halving steps over the 2^s
		// bounds: frac above them all is the next power's first bucket.
		b := nativeBounds[schema]
		j := 0
		for step := len(b) >> 1; step > 0; step >>= 1 {
			if b[j+step-1] < frac {
				j += step
			}
		}
		if b[j] < frac {
			j++
		}
		i = j + (exp-1)*len(b)
	} else {
		i = exp
		if frac == 0.5 {
			i--
		}
		i = (i + 1<<-schema - 1) >> -schema
	}
	if inf {
		i++
	}
	return int32(i)
}

// maxNativeBuckets bounds the populated native buckets of one series in
// one interval; past it the series halves its resolution, as client_golang
// does past its bucket limit. At the lowest schema every float64 fits in
// far fewer buckets.
const maxNativeBuckets = 2048

// observeNative counts n observations of v in the native buckets.
func (o *observations) observeNative(v float64, n uint64) {
	switch {
	case v > o.zero:
		o.pos = addNative(o.pos, nativeIndex(v, o.schema), n)
	case v < -o.zero:
		o.neg = addNative(o.neg, nativeIndex(-v, o.schema), n)
	default:
		o.zeroCount += n
		return
	}
	for len(o.pos)+len(o.neg) > maxNativeBuckets && o.schema > minSchema {
		o.schema--
		o.pos = halveNative(o.pos)
		o.neg = halveNative(o.neg)
	}
}

// addNative adds n to bucket i of the sorted buckets b, inserting it when
// it is not populated yet.
func addNative(b []engine.NativeBucket, i int32, n uint64) []engine.NativeBucket {
	lo, hi := 0, len(b)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if b[m].Index < i {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(b) && b[lo].Index == i {
		b[lo].Count += n
		return b
	}
	return slices.Insert(b, lo, engine.NativeBucket{Index: i, Count: n})
}

// halveNative merges pairs of buckets into the buckets of the schema one
// below: bucket i goes to ceil(i/2), in place.
func halveNative(b []engine.NativeBucket) []engine.NativeBucket {
	out := b[:0]
	for _, x := range b {
		x.Index = (x.Index + 1) >> 1
		if k := len(out); k > 0 && out[k-1].Index == x.Index {
			out[k-1].Count += x.Count
			continue
		}
		out = append(out, x)
	}
	return out
}

// typed emits the one metric of ser, a series of a typed table: named as
// the series, every tag a label, one field "value" of its typed kind.
func (f *flusher) typed(ser *series) {
	name, rest := cutField(ser.key[1:])
	tags := f.raw[:0]
	for rest != "" {
		var key, value string
		key, rest = cutField(rest)
		value, rest = cutField(rest)
		tags = append(tags, engine.Tag{Key: key, Value: value})
	}
	f.raw = tags

	v := engine.Value{Meta: ser.typ.Meta}
	switch ser.kind {
	case kindCounter:
		v.Kind, v.Num = engine.KindCounter, ser.value
	case kindGauge:
		v.Kind, v.Num = engine.KindGaugeDelta, ser.value
		if ser.abs {
			v.Kind = engine.KindNumber
		}
	case kindSet:
		v.Kind, v.Num = engine.KindNumber, f.setCount(ser)
	case kindTimer:
		v.Kind, v.Dist = engine.KindHistogram, f.distribution(ser)
		if ser.typ.Observer == ObserverSummary {
			v.Kind = engine.KindSummary
		}
	}
	fs := f.fields.carve(1)
	fs[0] = engine.Field{Name: "value", Value: v}
	var ts []engine.Tag
	if len(tags) > 0 {
		ts = append(f.tags.carve(len(tags))[:0], tags...)
	}
	f.metrics = append(f.metrics, engine.Metric{Bucket: name, Fields: fs, Timestamp: f.ts, Tags: ts})
}

// distribution copies the observations of the typed timer ser into the
// flush's arenas: the batch outlives the series' buffers, which the next
// interval reuses.
func (f *flusher) distribution(ser *series) *engine.Distribution {
	o := ser.obs
	d := &f.dists.carve(1)[0]
	d.Count, d.Sum = o.count, o.sum
	if ser.typ.Observer == ObserverSummary {
		d.Samples = append(f.floats.carve(len(ser.samples))[:0], ser.samples...)
		return d
	}
	if len(o.counts) > 0 {
		d.Bounds = o.bounds
		d.Counts = append(f.counts.carve(len(o.counts))[:0], o.counts...)
	}
	if o.native {
		nb := &f.natives.carve(1)[0]
		nb.Schema, nb.ZeroThreshold, nb.ZeroCount = o.schema, o.zero, o.zeroCount
		if len(o.pos) > 0 {
			nb.Positive = append(f.buckets.carve(len(o.pos))[:0], o.pos...)
		}
		if len(o.neg) > 0 {
			nb.Negative = append(f.buckets.carve(len(o.neg))[:0], o.neg...)
		}
		d.Native = nb
	}
	return d
}
