package mapping

import "unicode/utf8"

// AppendEscaped appends name escaped as statsd_exporter escapes metric and
// tag names for Prometheus: every character outside [a-zA-Z0-9_] becomes
// one `_` (a multi-byte character too), a `-` right after a `-` is dropped,
// and a leading digit gets a `_` prefix. statsd_exporter rejects lines
// that are not valid UTF-8; here each invalid byte becomes one `_`.
func AppendEscaped(dst []byte, name string) []byte {
	if name != "" && name[0] >= '0' && name[0] <= '9' {
		dst = append(dst, '_')
	}
	prevDash := false
	for i := 0; i < len(name); {
		c := name[i]
		if c < utf8.RuneSelf {
			i++
			switch {
			case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_':
				dst = append(dst, c)
			case c == '-' && prevDash:
				continue // prevDash stays set: a run of dashes is one `_`
			default:
				dst = append(dst, '_')
			}
			prevDash = c == '-'
			continue
		}
		_, n := utf8.DecodeRuneInString(name[i:])
		i += n
		dst = append(dst, '_')
		prevDash = false
	}
	return dst
}
