package remotewrite

import "unicode/utf8"

// reservedPrefix is prepended to tag keys that would start with "__",
// the namespace Prometheus reserves (__name__ among others).
const reservedPrefix = "tag_"

// AppendMetricName appends bucket + "_" + field sanitised as a Prometheus
// metric name ([a-zA-Z_:][a-zA-Z0-9_:]*): every other byte becomes '_',
// and a name starting with a digit gets a leading '_'.
func AppendMetricName(dst []byte, bucket, field string) []byte {
	if bucket == "" || isDigit(bucket[0]) {
		dst = append(dst, '_')
	}
	for i := 0; i < len(bucket); i++ {
		dst = append(dst, nameByte(bucket[i]))
	}
	dst = append(dst, '_')
	for i := 0; i < len(field); i++ {
		dst = append(dst, nameByte(field[i]))
	}
	return dst
}

// AppendTypedName appends the metric name of a typed metric's field:
// bucket alone for the field "value" (a typed metric's only field), else
// bucket + "_" + field, sanitised as AppendMetricName sanitises.
func AppendTypedName(dst []byte, bucket, field string) []byte {
	if field != "value" {
		return AppendMetricName(dst, bucket, field)
	}
	if bucket == "" || isDigit(bucket[0]) {
		dst = append(dst, '_')
	}
	for i := 0; i < len(bucket); i++ {
		dst = append(dst, nameByte(bucket[i]))
	}
	return dst
}

// AppendLabelName appends the label name a tag key becomes
// ([a-zA-Z_][a-zA-Z0-9_]*): every other byte becomes '_', an empty key or
// one starting with a digit gets a leading '_', and a key that would start
// with "__" gets the prefix "tag_" (`__name__` → `tag___name__`).
func AppendLabelName(dst []byte, key string) []byte {
	switch {
	case key == "" || isDigit(key[0]):
		dst = append(dst, '_')
	case len(key) >= 2 && labelByte(key[0]) == '_' && labelByte(key[1]) == '_':
		dst = append(dst, reservedPrefix...)
	}
	for i := 0; i < len(key); i++ {
		dst = append(dst, labelByte(key[i]))
	}
	return dst
}

// AppendLabelValue appends v with each byte that is not valid UTF-8
// replaced by U+FFFD: protobuf strings must be UTF-8.
func AppendLabelValue(dst []byte, v string) []byte {
	start := 0
	for i := 0; i < len(v); {
		if v[i] < utf8.RuneSelf {
			i++
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

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isLabelByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || isDigit(c) || c == '_'
}

func labelByte(c byte) byte {
	if isLabelByte(c) {
		return c
	}
	return '_'
}

func nameByte(c byte) byte {
	if isLabelByte(c) || c == ':' {
		return c
	}
	return '_'
}
