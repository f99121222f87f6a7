package influxdb

import (
	"math"
	"strconv"

	"github.com/bucky3/bucky3/engine"
)

// Characters escaped with a backslash, per the line-protocol element.
const (
	measurementSpecials = ", "
	tagSpecials         = ",= "
	// A quote in a field key would open a string to InfluxDB's line
	// scanner once a field value has been seen: escaped, it stays literal.
	fieldKeySpecials = ",= \""
)

// AppendLine appends m as one line of line protocol, terminated by '\n':
//
//	<bucket>[,<tag>=<value>…] <field>=<value>[,…] [<timestamp ns>]
//
// Tags are written in m's order (sorted), skipping empty keys and values.
// Numbers are written as floats, booleans as true/false, strings quoted;
// null and non-finite fields are skipped. When nothing is left to write
// (no field, or an empty bucket) AppendLine returns dst unchanged, which is
// how the caller learns the metric cannot be sent. It does not allocate
// when dst has room.
//
// Typed values are written as engine.Flattener flattens them: a counter's
// or gauge delta's number as a float, a histogram or summary as several
// float fields (count, sum, le_… or p…).
func AppendLine(dst []byte, m *engine.Metric) []byte {
	return AppendLineFlat(dst, m, nil)
}

// AppendLineFlat is AppendLine with the Flattener that renders typed
// histograms and summaries; nil uses a new one. A client keeps one so
// that typed metrics reuse its buffers.
func AppendLineFlat(dst []byte, m *engine.Metric, fl *engine.Flattener) []byte {
	if m.Bucket == "" {
		return dst
	}
	start := len(dst)
	dst = appendEscaped(dst, m.Bucket, measurementSpecials)
	for _, t := range m.Tags {
		if t.Key == "" || t.Value == "" || t.Key == "time" {
			continue
		}
		dst = append(dst, ',')
		dst = appendEscaped(dst, t.Key, tagSpecials)
		dst = append(dst, '=')
		dst = appendEscaped(dst, t.Value, tagSpecials)
	}
	sep := byte(' ')
	fieldsStart := len(dst)
	for _, f := range m.Fields {
		if f.Name == "" || f.Name == "time" {
			continue
		}
		v := f.Value
		if v.Kind == engine.KindHistogram || v.Kind == engine.KindSummary {
			if fl == nil {
				fl = new(engine.Flattener)
			}
			for _, ff := range fl.Flatten(f) {
				if ff.Name == "time" {
					continue
				}
				dst = append(dst, sep)
				sep = ','
				dst = appendEscaped(dst, ff.Name, fieldKeySpecials)
				dst = append(dst, '=')
				dst = appendFloat(dst, ff.Num)
			}
			continue
		}
		numeric := v.Kind == engine.KindNumber || v.Kind == engine.KindCounter || v.Kind == engine.KindGaugeDelta
		if v.Kind == engine.KindNull || numeric && (math.IsNaN(v.Num) || math.IsInf(v.Num, 0)) {
			continue
		}
		dst = append(dst, sep)
		sep = ','
		dst = appendEscaped(dst, f.Name, fieldKeySpecials)
		dst = append(dst, '=')
		switch v.Kind {
		case engine.KindNumber, engine.KindCounter, engine.KindGaugeDelta:
			dst = appendFloat(dst, v.Num)
		case engine.KindBool:
			dst = strconv.AppendBool(dst, v.Bool)
		case engine.KindString:
			dst = appendStringField(dst, v.Str)
		}
	}
	if len(dst) == fieldsStart {
		return dst[:start]
	}
	if m.Timestamp != 0 {
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, m.Timestamp*1e6, 10)
	}
	return append(dst, '\n')
}

// appendEscaped writes s with the characters in specials escaped. InfluxDB
// has no escape for a newline, so '\n' and '\r' become the two characters
// `\n` and `\r`: stored as written, but never splitting the line. A
// backslash is a plain character to InfluxDB unless it precedes a special
// one (or ends the element, where it would escape the separator), so only
// then is it doubled.
func appendEscaped(dst []byte, s, specials string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\n':
			dst = append(dst, `\n`...)
		case c == '\r':
			dst = append(dst, `\r`...)
		case c == '\\':
			if i+1 == len(s) || isSpecial(s[i+1], specials) || s[i+1] == '\\' || s[i+1] == '\n' || s[i+1] == '\r' {
				dst = append(dst, `\\`...)
				if i+1 < len(s) && s[i+1] == '\\' {
					i++
				}
			} else {
				dst = append(dst, c)
			}
		case isSpecial(c, specials):
			dst = append(dst, '\\', c)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

func isSpecial(c byte, specials string) bool {
	for i := 0; i < len(specials); i++ {
		if specials[i] == c {
			return true
		}
	}
	return false
}

// appendStringField writes s as a quoted string field value.
func appendStringField(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, `\n`...)
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

// appendFloat writes f the way encoding/json does: plain decimals, with an
// exponent only for very large or very small magnitudes.
func appendFloat(dst []byte, f float64) []byte {
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		return strconv.AppendFloat(dst, f, 'e', -1, 64)
	}
	return strconv.AppendFloat(dst, f, 'f', -1, 64)
}
