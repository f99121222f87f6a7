package engine

import (
	"math"
	"slices"
	"strconv"
)

// DefaultObjectives are the summary quantiles a destination reports when
// a KindSummary's Meta names none: statsd_exporter's defaults.
var DefaultObjectives = []Quantile{{Q: 0.5, Error: 0.05}, {Q: 0.9, Error: 0.01}, {Q: 0.99, Error: 0.001}}

// Objectives returns the summary quantiles of meta, sorted by Q without
// repeats, or DefaultObjectives when meta names none. The result may be
// shared: read-only.
func Objectives(meta *TypeMeta) []Quantile {
	if meta == nil || len(meta.Quantiles) == 0 {
		return DefaultObjectives
	}
	if slices.IsSortedFunc(meta.Quantiles, compareQ) && !hasRepeatedQ(meta.Quantiles) {
		return meta.Quantiles
	}
	qs := slices.SortedFunc(slices.Values(meta.Quantiles), compareQ)
	return slices.CompactFunc(qs, func(a, b Quantile) bool { return a.Q == b.Q })
}

func compareQ(a, b Quantile) int {
	switch {
	case a.Q < b.Q:
		return -1
	case a.Q > b.Q:
		return 1
	}
	return 0
}

func hasRepeatedQ(qs []Quantile) bool {
	for i := 1; i < len(qs); i++ {
		if qs[i].Q == qs[i-1].Q {
			return true
		}
	}
	return false
}

// SortedSamples appends d's finite samples to dst[:0], sorted, for
// SampleQuantile. The distribution itself is read-only.
func SortedSamples(dst []float64, d *Distribution) []float64 {
	dst = dst[:0]
	for _, v := range d.Samples {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			dst = append(dst, v)
		}
	}
	slices.Sort(dst)
	return dst
}

// SampleQuantile returns the q-quantile (0..1) of the sorted samples by
// nearest rank: the smallest sample with at least q of them at or below
// it. It is NaN when there are no samples, as a Prometheus summary reports
// a quantile with no observations.
func SampleQuantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// FlatField is one number that stands for part of a typed value in a
// destination that only knows named numbers.
type FlatField struct {
	Name string
	Num  float64
}

// Flattener renders typed values as flat numeric fields, the one scheme
// the InfluxDB, Elasticsearch, Graphite and debug destinations share:
//
//   - KindNumber, KindCounter, KindGaugeDelta: the field itself (a
//     counter's or gauge delta's number is its change over the interval);
//   - KindHistogram: "count", "sum", and per classic bucket the cumulative
//     count "le_<bound>" up to "le_inf"; a histogram with native buckets
//     only gives count and sum;
//   - KindSummary: "count", "sum" and per objective "p<percent>" (p50,
//     p90, p99, p99_9), estimated from the interval's samples.
//
// Bounds and percents are written in the shortest decimal with '.' as '_'
// (le_0_005, le_2_5, le_1e-05), so the names are valid InfluxDB field keys,
// Elasticsearch field names (no dot, which would nest an object) and
// Graphite path components. A field named other than "value" prefixes its
// flat names with its own name and '_'. Non-finite numbers are left out.
//
// A Flattener keeps scratch buffers and the names it built, so it must
// not be shared between goroutines; the zero value is ready to use.
type Flattener struct {
	fields  []FlatField
	sorted  []float64
	buf     []byte
	bounds  map[float64]string
	objects map[float64]string
}

// Flatten returns the flat fields of f. The result is valid until the next
// call. Plain numbers come back as themselves; strings, booleans and null
// give none.
func (fl *Flattener) Flatten(f Field) []FlatField {
	fl.fields = fl.fields[:0]
	v := f.Value
	switch v.Kind {
	case KindNumber, KindCounter, KindGaugeDelta:
		fl.add(f.Name, "", v.Num)
	case KindHistogram, KindSummary:
		d := v.Dist
		if d == nil {
			break
		}
		fl.add(f.Name, "count", float64(d.Count))
		fl.add(f.Name, "sum", d.Sum)
		if v.Kind == KindHistogram {
			var cum uint64
			for i, c := range d.Counts {
				cum += c
				bound := math.Inf(1)
				if i < len(d.Bounds) {
					bound = d.Bounds[i]
				}
				fl.add(f.Name, fl.name(&fl.bounds, "le_", bound, 1), float64(cum))
			}
			break
		}
		fl.sorted = SortedSamples(fl.sorted, d)
		if len(fl.sorted) == 0 {
			break
		}
		for _, o := range Objectives(v.Meta) {
			fl.add(f.Name, fl.name(&fl.objects, "p", o.Q, 100), SampleQuantile(fl.sorted, o.Q))
		}
	}
	return fl.fields
}

// add appends a flat field, prefixing sub with field's name unless it is
// "value"; an empty sub is the field itself.
func (fl *Flattener) add(field, sub string, n float64) {
	if math.IsNaN(n) || math.IsInf(n, 0) {
		return
	}
	name := sub
	switch {
	case sub == "":
		name = field
	case field != "value" && field != "":
		name = field + "_" + sub
	}
	fl.fields = append(fl.fields, FlatField{Name: name, Num: n})
}

// name returns prefix + x*scale written as FlatField names write numbers,
// cached in *cache: bounds and objectives repeat from flush to flush.
func (fl *Flattener) name(cache *map[float64]string, prefix string, x, scale float64) string {
	if s, ok := (*cache)[x]; ok {
		return s
	}
	if *cache == nil || len(*cache) >= 4096 {
		*cache = make(map[float64]string)
	}
	b := append(fl.buf[:0], prefix...)
	if math.IsInf(x, 1) {
		b = append(b, "inf"...)
	} else {
		start := len(b)
		b = strconv.AppendFloat(b, x*scale, 'g', -1, 64)
		if scale != 1 {
			// 0.999*100 is 99.9 only after rounding off the binary error.
			b = strconv.AppendFloat(b[:start], roundDigits(x*scale), 'g', -1, 64)
		}
		// '.' would nest or split the name; an exponent's '+' says nothing.
		out := start
		for _, c := range b[start:] {
			switch c {
			case '+':
				continue
			case '.':
				c = '_'
			}
			b[out] = c
			out++
		}
		b = b[:out]
	}
	fl.buf = b
	s := string(b)
	(*cache)[x] = s
	return s
}

// roundDigits rounds f to 12 significant digits.
func roundDigits(f float64) float64 {
	r, err := strconv.ParseFloat(strconv.FormatFloat(f, 'g', 12, 64), 64)
	if err != nil {
		return f
	}
	return r
}
