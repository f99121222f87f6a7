package carbon

import (
	"math"
	"strconv"
	"strings"

	"github.com/bucky3/bucky3/engine"
)

// The pseudo-keys that name a metric's bucket and a field's name when a
// path is built; they win over tags of the same name.
const (
	bucketKey = "bucket"
	valueKey  = "value"
	nameKey   = "name"
)

// AppendLines appends one plaintext line per numeric field of m
// (booleans count as 0 and 1; strings, null and non-finite numbers are
// skipped):
//
//	<path> <value> <unix seconds>\n
//
// The path holds the values of the keys named in mapping, in that order,
// then of the metric's other keys in alphabetical order, joined by '.'. The
// keys are the tags plus "bucket" (m.Bucket) and "value" (the field name);
// keys missing from the metric and empty values are left out. In a value,
// '.', '/', '*', '[', ']' and whitespace become '_'.
//
// The timestamp is m's, in whole seconds, unless m has none or it is after
// now (Unix seconds): carbon silently drops future points, so those get now.
// AppendLines returns dst unchanged when m has no numeric field. It does not
// allocate when dst has room.
//
// Typed values are written as engine.Flattener flattens them: a counter's
// or gauge delta's number as it is, a histogram or summary as one line per
// flat field (count, sum, le_…, p…), each in the field's place in the path.
func AppendLines(dst []byte, m *engine.Metric, mapping []string, now int64) []byte {
	return AppendLinesFlat(dst, m, mapping, now, nil)
}

// AppendLinesFlat is AppendLines with the Flattener that renders typed
// histograms and summaries; nil uses a new one. A client keeps one so that
// typed metrics reuse its buffers.
func AppendLinesFlat(dst []byte, m *engine.Metric, mapping []string, now int64, fl *engine.Flattener) []byte {
	ts := now
	if m.Timestamp != 0 && m.Timestamp/1000 <= now {
		ts = m.Timestamp / 1000
	}
	// The fields' paths differ only in the field's component: the first
	// path is a template for the others, whose keys and tags it has
	// already looked up and escaped (half of a timer's encoding).
	tmpl := pathTemplate{start: -1}
	for _, f := range m.Fields {
		if k := f.Value.Kind; k == engine.KindHistogram || k == engine.KindSummary {
			if fl == nil {
				fl = new(engine.Flattener)
			}
			for _, ff := range fl.Flatten(f) {
				dst = appendLine(dst, m, ff.Name, mapping, ff.Num, ts)
			}
			continue
		}
		v, ok := f.Value.Float()
		if !ok {
			continue
		}
		start := len(dst)
		if tmpl.start >= 0 && f.Name != "" {
			dst = append(dst, dst[tmpl.start:tmpl.fieldAt]...)
			dst = appendComponent(dst, f.Name)
			dst = append(dst, dst[tmpl.fieldEnd:tmpl.end]...)
		} else {
			var fieldAt, fieldEnd int
			dst, fieldAt, fieldEnd = appendPath(dst, m, f.Name, mapping)
			if len(dst) == start {
				continue // every component empty: no path to write under
			}
			if fieldAt >= 0 {
				tmpl = pathTemplate{start: start, fieldAt: fieldAt, fieldEnd: fieldEnd, end: len(dst)}
			}
		}
		dst = append(dst, ' ')
		dst = appendFloat(dst, v)
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, ts, 10)
		dst = append(dst, '\n')
	}
	return dst
}

// appendLine appends one line for the number v under field's path.
func appendLine(dst []byte, m *engine.Metric, field string, mapping []string, v float64, ts int64) []byte {
	start := len(dst)
	dst, _, _ = appendPath(dst, m, field, mapping)
	if len(dst) == start {
		return dst
	}
	dst = append(dst, ' ')
	dst = appendFloat(dst, v)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, ts, 10)
	return append(dst, '\n')
}

// pathTemplate is where a path written into dst lies, dst[start:end], and
// its field's component in it, dst[fieldAt:fieldEnd]; start is -1 for none.
type pathTemplate struct{ start, fieldAt, fieldEnd, end int }

// appendPath appends the path of m's field and returns where the field's
// component went, dst[fieldAt:fieldEnd]. fieldAt is -1 unless the path has
// that component exactly once: not for an empty field, nor for one that
// name_mapping lists twice.
func appendPath(dst []byte, m *engine.Metric, field string, mapping []string) (out []byte, fieldAt, fieldEnd int) {
	start, added := len(dst), 0
	add := func(v string) {
		if v == "" {
			return
		}
		if len(dst) > start {
			dst = append(dst, '.')
		}
		dst = appendComponent(dst, v)
	}
	// A StatsD name (the name tag, a typed metric's bucket) keeps its dots
	// as path separators, as Graphite users of StatsD expect.
	addDotted := func(v string) {
		for part := range strings.SplitSeq(v, ".") {
			add(part)
		}
	}
	addField := func() {
		add(field)
		fieldAt, fieldEnd = len(dst)-len(field), len(dst)
		added++
	}
	for _, k := range mapping {
		switch k {
		case bucketKey:
			addDotted(m.Bucket)
		case valueKey:
			addField()
		default:
			if v, ok := m.Tag(k); ok && k == nameKey {
				addDotted(v)
			} else if ok {
				add(v)
			}
		}
	}
	// Merge the sorted tags with the two pseudo-keys, skipping mapped keys.
	special := [2]struct{ key, value string }{{bucketKey, m.Bucket}, {valueKey, field}}
	si := 0
	addSpecial := func() {
		if !contains(mapping, special[si].key) {
			if special[si].key == valueKey {
				addField()
			} else {
				addDotted(special[si].value)
			}
		}
		si++
	}
	for _, t := range m.Tags {
		for si < len(special) && special[si].key <= t.Key {
			addSpecial()
		}
		if t.Key == bucketKey || t.Key == valueKey || contains(mapping, t.Key) {
			continue
		}
		if t.Key == nameKey {
			addDotted(t.Value)
		} else {
			add(t.Value)
		}
	}
	for si < len(special) {
		addSpecial()
	}
	if added != 1 || field == "" {
		return dst, -1, -1
	}
	return dst, fieldAt, fieldEnd
}

// appendComponent writes one path component, replacing the characters that
// would split the path or that Graphite treats as wildcards.
func appendComponent(dst []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		// ';' starts carbon's tags, '{', '}' and ',' are Graphite globs.
		case '.', '/', '*', '[', ']', ' ', '\t', '\n', '\r', '\v', '\f', ';', '{', '}', ',':
			dst = append(dst, '_')
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

func contains(keys []string, k string) bool {
	for _, x := range keys {
		if x == k {
			return true
		}
	}
	return false
}

// appendFloat writes f the way encoding/json does: plain decimals, with an
// exponent only for very large or very small magnitudes.
func appendFloat(dst []byte, f float64) []byte {
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		return strconv.AppendFloat(dst, f, 'e', -1, 64)
	}
	return strconv.AppendFloat(dst, f, 'f', -1, 64)
}
