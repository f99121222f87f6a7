package engine

import (
	"math"
	"slices"
	"strconv"
	"strings"
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
)

// Value is a field value: a small tagged struct rather than an interface so
// that a numeric field costs no allocation.
type Value struct {
	Kind Kind
	Num  float64
	Str  string
	Bool bool
}

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
	case KindNumber:
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
	case KindNumber:
		return strconv.FormatFloat(v.Num, 'g', -1, 64)
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
