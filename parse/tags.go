package parse

import (
	"bytes"
	"unicode/utf8"
)

// tagSectionEnd returns the length of the tag section at the start of b
// (the text after "|#"). A '|' ends it only when it starts another
// DogStatsD field, so tag values may hold '|' and '#'; an escaped '|'
// never ends it.
func tagSectionEnd(b []byte) int {
	for off := 0; ; {
		i := bytes.IndexByte(b[off:], '|')
		if i < 0 {
			return len(b)
		}
		i += off
		off = i + 1
		if escapedAt(b, i) {
			continue
		}
		if f := b[i+1:]; len(f) > 1 && f[0] == 'T' && isDigit(f[1]) ||
			hasPrefix(f, "c:") || hasPrefix(f, "e:") || hasPrefix(f, "card:") {
			return i
		}
	}
}

// escapedAt reports whether b[i] is escaped: escapes pair up from the
// left, so it is when an odd run of backslashes precedes it.
func escapedAt(b []byte, i int) bool {
	n := 0
	for i > 0 && b[i-1] == '\\' {
		n++
		i--
	}
	return n%2 == 1
}

// parseTags appends the tags of section (the text between "|#" and the
// next field) to p.tags, unescaping values into p.scratch. The timestamp
// tag sets s.Timestamp instead; bare tags are counted and dropped.
func (p *StatsD) parseTags(section []byte, nowMs int64, s *Sample) error {
	n := 0
	for len(section) > 0 {
		end, escaped := tagEnd(section)
		if end == 0 {
			return ErrBadTag // only one trailing comma is allowed
		}
		if err := p.addTag(section[:end], escaped, nowMs, s, &n); err != nil {
			return err
		}
		if end == len(section) {
			return nil
		}
		section = section[end+1:]
	}
	return nil
}

// tagEnd returns the index of the comma ending the first tag of section,
// or len(section), and whether the tag holds a backslash. A plain loop:
// tags are too short for bytes.IndexByte's setup to pay off (profiled).
func tagEnd(section []byte) (end int, escaped bool) {
	for i := 0; i < len(section); i++ {
		switch section[i] {
		case '\\':
			escaped = true
			i++
		case ',':
			return i, escaped
		}
	}
	return len(section), escaped
}

// addTag adds one non-empty tag; escaped says whether it holds a
// backslash. n counts the tags of the line.
func (p *StatsD) addTag(tag []byte, escaped bool, nowMs int64, s *Sample, n *int) error {
	// The separator is the first '=' or ':'; a well-formed key ends on it.
	valid := nameLen(tag)
	sep := valid
	for ; sep < len(tag) && tag[sep] != '=' && tag[sep] != ':'; sep++ {
		if tag[sep] == '\\' {
			sep++
		}
	}
	if sep >= len(tag) {
		p.BareTags++
		return nil
	}
	if *n++; *n > p.maxTags() {
		return ErrTooManyTags
	}
	key, err := p.checkName(tag[:sep], valid, ErrBadTag)
	if err != nil {
		return err
	}
	value := tag[sep+1:]
	if escaped {
		off := len(p.scratch)
		p.scratch = appendUnescaped(p.scratch, value)
		value = p.scratch[off:]
	}
	value = value[:len(value):len(value)]
	if !utf8.Valid(value) {
		return ErrBadUTF8
	}
	switch string(key) {
	case "timestamp":
		v, ok := parseFloat(value)
		if !ok {
			return ErrBadTimestamp
		}
		s.Timestamp, err = timestampMs(v, nowMs, p.window())
		return err
	case "bucket":
		if value, err = p.checkName(value, nameLen(value), ErrBadBucket); err != nil {
			return err
		}
	}
	p.tags = append(p.tags, Tag{Key: key, Value: value})
	return nil
}

// appendUnescaped appends v to dst with the tag escapes resolved: \n \r \t
// are control characters, a backslash before anything else yields that
// character, and a trailing lone backslash is kept.
func appendUnescaped(dst, v []byte) []byte {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '\\' && i+1 < len(v) {
			i++
			switch c = v[i]; c {
			case 'n':
				c = '\n'
			case 'r':
				c = '\r'
			case 't':
				c = '\t'
			}
		}
		dst = append(dst, c)
	}
	return dst
}

// canonicalTags sorts tags by key in place and drops repeated keys, the
// last occurrence winning, and returns the shortened slice. Tag lists are
// short (MaxTags bounds them) and usually sorted already, which insertion
// sort handles in one pass; it is stable, so the last duplicate stays last.
func canonicalTags(tags []Tag) []Tag {
	for i := 1; i < len(tags); i++ {
		for j := i; j > 0 && bytes.Compare(tags[j-1].Key, tags[j].Key) > 0; j-- {
			tags[j-1], tags[j] = tags[j], tags[j-1]
		}
	}
	out := tags[:0]
	for i := range tags {
		if i+1 < len(tags) && bytes.Equal(tags[i].Key, tags[i+1].Key) {
			continue
		}
		out = append(out, tags[i])
	}
	return out
}
