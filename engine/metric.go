package engine

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Kind says which member of a Value is meaningful.
type Kind uint8

// The kinds a field value can take. Numbers are what every source produces;
// the JSON and journal sources may also carry strings, booleans and null.
const (
	KindNull Kind = iota
	KindNumber
	KindString
	KindBool
	// KindCounter is a typed counter: Num is the increase since the
	// previous emission of the same series, which typed destinations add
	// to a cumulative total. Float reads it as a number.
	KindCounter
	// KindGaugeDelta is a typed gauge change: Num is added to the gauge's
	// current value (a StatsD "+3|g" with no absolute value in the
	// interval). Float reads it as a number.
	KindGaugeDelta
	// KindHistogram is a typed histogram: Dist holds the observations of
	// one interval in buckets (classic, native or both).
	KindHistogram
	// KindSummary is a typed summary: Dist holds the observations of one
	// interval as samples, from which a destination estimates quantiles.
	KindSummary
)

// Value is a field value: a small tagged struct rather than an interface so
// that a numeric field costs no allocation.
type Value struct {
	Kind Kind
	Bool bool
	Num  float64
	Str  string
	// Dist is the distribution of a KindHistogram or KindSummary value,
	// nil for every other kind. Like the rest of a batch it is read-only
	// once emitted.
	Dist *Distribution
	// Meta describes a typed series (help text, expiry), nil when the
	// source has nothing to say. Shared between series: read-only.
	Meta *TypeMeta
}

// TypeMeta is what a typed series carries besides its values, set by the
// source (from a statsd_exporter mapping, for one) and honoured by typed
// destinations.
type TypeMeta struct {
	// Help is the family's help text; empty for the destination's default.
	Help string
	// TTL expires the series after it has been idle this long; 0 leaves
	// it to the destination's default.
	TTL time.Duration
	// Quantiles are the summary objectives (quantile to allowed error) of
	// a KindSummary; empty for the destination's default.
	Quantiles []Quantile
	// MaxAge and AgeBuckets are the summary's sliding window; 0 for the
	// destination's default.
	MaxAge     time.Duration
	AgeBuckets int
	// NativeMaxBuckets caps the populated buckets of a cumulative native
	// histogram; past it the destination halves the resolution. 0 for the
	// destination's default.
	NativeMaxBuckets int
}

// Quantile is one summary objective: the quantile Q (0..1) estimated
// within ±Error.
type Quantile struct {
	Q, Error float64
}

// Distribution is one interval's observations of a typed histogram or
// summary. Count and Sum cover every observation, including those a
// bounded summary did not keep as samples.
type Distribution struct {
	Count uint64
	Sum   float64

	// Bounds are the ascending upper bounds of the classic buckets,
	// without +Inf; Counts[i] counts the observations v with
	// Bounds[i-1] < v <= Bounds[i] (not cumulative), and Counts[len(Bounds)]
	// those above the last bound. Both nil when there are no classic
	// buckets.
	Bounds []float64
	Counts []uint64

	// Native is the exponential (native) histogram, nil when the series
	// has none.
	Native *NativeBuckets

	// Samples are a summary's observations, at most a bounded number: when
	// Count exceeds len(Samples), they are a uniform sample of them.
	Samples []float64
}

// NativeBuckets is a sparse exponential histogram in Prometheus' native
// histogram model: bucket i of schema s has upper bound base^i with
// base = 2^(2^-s), and covers (base^(i-1), base^i].
type NativeBuckets struct {
	Schema        int32
	ZeroThreshold float64
	ZeroCount     uint64
	// Positive and Negative are the populated buckets, ascending by
	// index; a negative bucket's bounds are those of its index, negated.
	Positive []NativeBucket
	Negative []NativeBucket
}

// NativeBucket is one populated bucket of a native histogram.
type NativeBucket struct {
	Index int32
	Count uint64
}

// CounterIncrease returns a typed counter Value of increase n.
func CounterIncrease(n float64) Value { return Value{Kind: KindCounter, Num: n} }

// Typed reports whether v is one of the typed kinds, which only typed
// destinations render as such.
func (v Value) Typed() bool { return v.Kind >= KindCounter }

// Number returns a numeric Value.
func Number(f float64) Value { return Value{Kind: KindNumber, Num: f} }

// String returns a string Value.
func String(s string) Value { return Value{Kind: KindString, Str: s} }

// Bool returns a boolean Value.
func Bool(b bool) Value { return Value{Kind: KindBool, Bool: b} }

// Null returns the null Value.
func Null() Value { return Value{} }

// Float returns v as a number: numbers as they are, booleans as 0 or 1.
// ok is false for strings, null and non-finite numbers, which numeric
// backends cannot represent.
func (v Value) Float() (f float64, ok bool) {
	switch v.Kind {
	case KindNumber, KindCounter, KindGaugeDelta:
		if math.IsNaN(v.Num) || math.IsInf(v.Num, 0) {
			return 0, false
		}
		return v.Num, true
	case KindBool:
		if v.Bool {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

// String renders v for humans (debug output, log lines).
func (v Value) String() string {
	switch v.Kind {
	case KindNumber, KindCounter, KindGaugeDelta:
		return strconv.FormatFloat(v.Num, 'g', -1, 64)
	case KindHistogram, KindSummary:
		if v.Dist != nil {
			return "{count=" + strconv.FormatUint(v.Dist.Count, 10) + " sum=" + strconv.FormatFloat(v.Dist.Sum, 'g', -1, 64) + "}"
		}
	case KindString:
		return strconv.Quote(v.Str)
	case KindBool:
		return strconv.FormatBool(v.Bool)
	}
	return "null"
}

// Field is one named value of a metric.
type Field struct {
	Name  string
	Value Value
}

// Tag is one key/value pair of metadata.
type Tag struct {
	Key   string
	Value string
}

// Metric is one measurement: a bucket (the measurement name), one or more
// fields, an optional timestamp and tags sorted by key with unique keys.
type Metric struct {
	Bucket string
	Fields []Field
	// Timestamp is in milliseconds since the Unix epoch; 0 means "none",
	// which destinations read as "now" or leave off the wire.
	Timestamp int64
	Tags      []Tag
}

// Tag returns the value of the tag named key.
func (m *Metric) Tag(key string) (string, bool) {
	i, ok := slices.BinarySearchFunc(m.Tags, key, compareTagKey)
	if !ok {
		return "", false
	}
	return m.Tags[i].Value, true
}

// Field returns the value of the field named name.
func (m *Metric) Field(name string) (Value, bool) {
	for _, f := range m.Fields {
		if f.Name == name {
			return f.Value, true
		}
	}
	return Value{}, false
}

func compareTagKey(t Tag, key string) int { return strings.Compare(t.Key, key) }

// SetTag sets key to value, keeping Tags sorted and unique.
func (m *Metric) SetTag(key, value string) {
	i, ok := slices.BinarySearchFunc(m.Tags, key, compareTagKey)
	if ok {
		m.Tags[i].Value = value
		return
	}
	// Clip first: sources may carve the tags of a batch's metrics out of
	// one backing array, and an in-place insert would overwrite the next
	// metric's tags.
	m.Tags = slices.Insert(slices.Clip(m.Tags), i, Tag{Key: key, Value: value})
}

// DeleteTag removes the tag named key, if present.
func (m *Metric) DeleteTag(key string) {
	if i, ok := slices.BinarySearchFunc(m.Tags, key, compareTagKey); ok {
		m.Tags = slices.Delete(m.Tags, i, i+1)
	}
}

// SortTags sorts tags by key and removes duplicate keys, the last
// occurrence of a key winning. Sources that build tags in arbitrary order
// call it before emitting.
func SortTags(tags []Tag) []Tag {
	slices.SortStableFunc(tags, func(a, b Tag) int { return strings.Compare(a.Key, b.Key) })
	out := tags[:0]
	for i, t := range tags {
		if i+1 < len(tags) && tags[i+1].Key == t.Key {
			continue
		}
		out = append(out, t)
	}
	return out
}

// Batch is what a source hands to the router: the metrics of one flush.
// A batch is immutable once emitted, since several destinations read it
// concurrently.
type Batch struct {
	// Source names the module that produced the batch.
	Source  string
	Metrics []Metric
}
