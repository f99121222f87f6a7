package prometheus

import (
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/bucky3/bucky3/engine"
)

// fieldLabel is the label that carries a sample's field name.
const fieldLabel = "value"

// reservedPrefix is prepended to tag keys that would otherwise collide
// with the field label or use Prometheus' reserved "__" namespace.
const reservedPrefix = "tag_"

// AppendMetricName appends name sanitised as a Prometheus metric name
// ([a-zA-Z_:][a-zA-Z0-9_:]*): every other byte becomes '_', and a name that
// is empty or starts with a digit gets a leading '_'.
func AppendMetricName(dst []byte, name string) []byte {
	if name == "" || isDigit(name[0]) {
		dst = append(dst, '_')
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !isNameByte(c) {
			c = '_'
		}
		dst = append(dst, c)
	}
	return dst
}

// AppendLabelName appends the label name a tag key becomes: like a metric
// name but without ':' ([a-zA-Z_][a-zA-Z0-9_]*), and prefixed with "tag_"
// when it would be "value" (the field label) or start with "__" (reserved
// by Prometheus).
func AppendLabelName(dst []byte, key string) []byte {
	dst = append(dst, labelPrefix(key)...)
	for i := 0; i < len(key); i++ {
		dst = append(dst, labelByte(key[i]))
	}
	return dst
}

// labelPrefix returns what AppendLabelName puts in front of the mapped
// bytes of key. Mapping is byte for byte, so the prefix alone decides
// every difference between a key and its label name's length.
func labelPrefix(key string) string {
	switch {
	case key == "":
		return "_"
	case isDigit(key[0]):
		return "_"
	case key == fieldLabel:
		return reservedPrefix
	case len(key) >= 2 && labelByte(key[0]) == '_' && labelByte(key[1]) == '_':
		return reservedPrefix
	}
	return ""
}

// compareLabelNames compares the label names keys a and b become, without
// building them: the encoders must not allocate.
func compareLabelNames(a, b string) int {
	return compareMapped(labelPrefix(a), a, labelPrefix(b), b)
}

// compareMapped compares prefix pa + mapped a with prefix pb + mapped b.
func compareMapped(pa, a, pb, b string) int {
	na, nb := len(pa)+len(a), len(pb)+len(b)
	for i := 0; i < na && i < nb; i++ {
		ca, cb := labelNameByte(pa, a, i), labelNameByte(pb, b, i)
		if ca != cb {
			return int(ca) - int(cb)
		}
	}
	return na - nb
}

func labelNameByte(prefix, key string, i int) byte {
	if i < len(prefix) {
		return prefix[i]
	}
	return labelByte(key[i-len(prefix)])
}

// AppendLabelValue appends v escaped for a label value, without the
// quotes: backslash, double quote and newline are escaped, and bytes that
// are not valid UTF-8 become U+FFFD so the page stays parseable.
func AppendLabelValue(dst []byte, v string) []byte {
	start := 0
	for i := 0; i < len(v); {
		c := v[i]
		if c < utf8.RuneSelf {
			var esc string
			switch c {
			case '\\':
				esc = `\\`
			case '"':
				esc = `\"`
			case '\n':
				esc = `\n`
			default:
				i++
				continue
			}
			dst = append(dst, v[start:i]...)
			dst = append(dst, esc...)
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(v[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, v[start:i]...)
			dst = utf8.AppendRune(dst, utf8.RuneError)
			start = i + 1
		}
		i += size
	}
	return append(dst, v[start:]...)
}

// AppendSeries appends the series identity of one field of a metric:
// the sanitised bucket, then the tags and value="<field>" as labels sorted
// by name. Tags whose keys sanitise to the same label name keep only the
// first of them in tags, so a series never has a duplicate label.
func AppendSeries(dst []byte, bucket string, tags []engine.Tag, field string) []byte {
	dst = AppendMetricName(dst, bucket)
	dst = append(dst, '{')
	if tagsAreLabels(tags) {
		// The common case: keys are already valid, sorted and unique, so
		// only the field label has to be slotted in.
		fieldDone := false
		for _, t := range tags {
			if !fieldDone && t.Key > fieldLabel {
				dst = appendLabel(dst, fieldLabel, field)
				fieldDone = true
			}
			dst = appendLabel(dst, t.Key, t.Value)
		}
		if !fieldDone {
			dst = appendLabel(dst, fieldLabel, field)
		}
	} else {
		dst = appendSanitisedLabels(dst, tags, field)
	}
	dst[len(dst)-1] = '}'
	return dst
}

// appendSanitisedLabels emits labels by repeated selection of the
// smallest label name above the last one emitted: quadratic in the number
// of tags, which are few, and needing no scratch space to sort into.
func appendSanitisedLabels(dst []byte, tags []engine.Tag, field string) []byte {
	fieldDone := false
	last := -1
	for {
		next := -1
		for i := range tags {
			if last >= 0 && compareLabelNames(tags[i].Key, tags[last].Key) <= 0 {
				continue
			}
			if next < 0 || compareLabelNames(tags[i].Key, tags[next].Key) < 0 {
				next = i
			}
		}
		if next < 0 {
			break
		}
		// No tag key maps to "value", so the field label never ties.
		if !fieldDone && compareMapped("", fieldLabel, labelPrefix(tags[next].Key), tags[next].Key) < 0 {
			dst = appendLabel(dst, fieldLabel, field)
			fieldDone = true
		}
		dst = AppendLabelName(dst, tags[next].Key)
		dst = appendQuotedValue(dst, tags[next].Value)
		last = next
	}
	if !fieldDone {
		dst = appendLabel(dst, fieldLabel, field)
	}
	return dst
}

// appendLabel appends name="value", for a name known to be valid.
func appendLabel(dst []byte, name, value string) []byte {
	dst = append(dst, name...)
	return appendQuotedValue(dst, value)
}

func appendQuotedValue(dst []byte, value string) []byte {
	dst = append(dst, '=', '"')
	dst = AppendLabelValue(dst, value)
	return append(dst, '"', ',')
}

// tagsAreLabels reports whether every key is its own label name and the
// keys are strictly increasing, as engine.Metric promises.
func tagsAreLabels(tags []engine.Tag) bool {
	for i, t := range tags {
		if labelPrefix(t.Key) != "" {
			return false
		}
		for j := 0; j < len(t.Key); j++ {
			if labelByte(t.Key[j]) != t.Key[j] {
				return false
			}
		}
		if i > 0 && tags[i-1].Key >= t.Key {
			return false
		}
	}
	return true
}

// AppendValue appends ' ', f, and, when ts is not 0, ' ' and ts (ms),
// then the line's '\n': everything of a sample line after the series.
// Non-finite values are spelled +Inf, -Inf and NaN as Prometheus does.
func AppendValue(dst []byte, f float64, ts int64) []byte {
	dst = append(dst, ' ')
	switch {
	case math.IsInf(f, 1):
		dst = append(dst, "+Inf"...)
	case math.IsInf(f, -1):
		dst = append(dst, "-Inf"...)
	case math.IsNaN(f):
		dst = append(dst, "NaN"...)
	default:
		dst = strconv.AppendFloat(dst, f, 'g', -1, 64)
	}
	if ts != 0 {
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, ts, 10)
	}
	return append(dst, '\n')
}

// AppendSample appends one complete sample line: AppendSeries followed by
// AppendValue.
func AppendSample(dst []byte, bucket string, tags []engine.Tag, field string, f float64, ts int64) []byte {
	dst = AppendSeries(dst, bucket, tags, field)
	return AppendValue(dst, f, ts)
}

// AppendFamilyHeader appends the HELP and TYPE lines of the family name,
// which must already be sanitised (AppendMetricName).
func AppendFamilyHeader(dst []byte, name string) []byte {
	dst = append(dst, "# HELP "...)
	dst = append(dst, name...)
	dst = append(dst, " bucky3 bucket "...)
	dst = append(dst, name...)
	dst = append(dst, "\n# TYPE "...)
	dst = append(dst, name...)
	return append(dst, " untyped\n"...)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isLabelByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || isDigit(c) || c == '_'
}

func isNameByte(c byte) bool { return isLabelByte(c) || c == ':' }

func labelByte(c byte) byte {
	if isLabelByte(c) {
		return c
	}
	return '_'
}
