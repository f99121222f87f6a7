package parse

import (
	"bytes"
	"encoding/binary"
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
	var t tagSpan
	keys := p.keyTable()
	for len(section) > 0 {
		t.scan(section, keys)
		if t.end == 0 {
			return ErrBadTag // only one trailing comma is allowed
		}
		if t.sep == t.end {
			p.BareTags++
		} else if err := p.addTag(section[:t.end], &t, keys, nowMs, s, &n); err != nil {
			return err
		}
		if t.end == len(section) {
			return nil
		}
		section = section[t.end+1:]
	}
	return nil
}

// tagSpan locates the parts of a tag. It is filled and read field by
// field through a pointer: returned or assigned whole, it went through the
// stack in wide copies that stalled on the narrow stores before them (see
// bench/RESULTS.md, "Design notes: statsd_server reader path").
type tagSpan struct {
	valid int // length of the key's prefix made of bytes of the key table
	sep   int // index of the separator, the first unescaped '=' or ':'; end for a bare tag
	end   int // index of the unescaped comma ending the tag, or the section's length
	// escaped says the value holds a backslash, ascii that it holds only
	// ASCII bytes, escaped or not, so that it is valid UTF-8 unescaped.
	escaped, ascii bool
}

// scan locates the first tag of section in one pass instead of a scan
// each for the tag's end, the key's end, the separator and the value's
// UTF-8 (see bench/RESULTS.md, "Design notes: statsd_server reader path"). A backslash escapes the byte after it
// everywhere in the tag, so an escaped comma, '=' or ':' ends nothing.
// keys is the key table of the name rule, which holds no separator.
func (t *tagSpan) scan(section []byte, keys *[256]bool) {
	i := 0
	for i < len(section) && keys[section[i]] {
		i++
	}
	t.valid = i
	// Only a malformed (or to be sanitized) key gets here with bytes left
	// before the separator.
	for ; i < len(section); i++ {
		c := section[i]
		if c == '=' || c == ':' || c == ',' {
			break
		}
		if c == '\\' {
			i++
		}
	}
	if i >= len(section) || section[i] == ',' {
		i = min(i, len(section))
		t.sep, t.end, t.escaped, t.ascii = i, i, false, false
		return
	}
	t.sep = i
	escaped, ascii := false, true
	for i++; ; {
		i += plainLen(section[i:])
		if i == len(section) || section[i] == ',' {
			break
		}
		if section[i] == '\\' {
			escaped = true
			if i+1 < len(section) && section[i+1] >= utf8.RuneSelf {
				ascii = false
			}
			i = min(i+2, len(section))
		} else {
			ascii = false
			i++
		}
	}
	t.end, t.escaped, t.ascii = i, escaped, ascii
}

// plainLen returns the length of the prefix of b without a comma, a
// backslash or a byte above 0x7f. Tag values are most of a tagged line's
// bytes, so it looks at 8 bytes at a time; see hasByte.
func plainLen(b []byte) int {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		if hasByte(w, ',')|hasByte(w, '\\')|w&0x8080808080808080 != 0 {
			break
		}
	}
	for i < len(b) && b[i] != ',' && b[i] != '\\' && b[i] < utf8.RuneSelf {
		i++
	}
	return i
}

// hasByte is not zero when one of the 8 bytes of w is c: the classic
// "has zero byte" test applied to w^c. It never misses a c, and may flag
// bytes after the first c, which plainLen rescans one at a time anyway.
func hasByte(w uint64, c byte) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	x := w ^ ones*uint64(c)
	return (x - ones) &^ x & highs
}

// addTag adds tag, located by t with the key table keys, which has a
// separator. n counts the tags of the line.
func (p *StatsD) addTag(tag []byte, t *tagSpan, keys *[256]bool, nowMs int64, s *Sample, n *int) error {
	if *n++; *n > p.maxTags() {
		return ErrTooManyTags
	}
	if len(tag)-1 > p.maxTagLength() { // tag is key, separator and value
		return ErrTagTooLong
	}
	key, err := p.checkName(tag[:t.sep], t.valid, keys, ErrBadTag)
	if err != nil {
		return err
	}
	value := tag[t.sep+1:]
	if t.escaped {
		off := len(p.scratch)
		p.scratch = appendUnescaped(p.scratch, value)
		value = p.scratch[off:]
	}
	value = value[:len(value):len(value)]
	if !t.ascii && !utf8.Valid(value) {
		return ErrBadUTF8
	}
	switch string(key) {
	case "timestamp":
		v, ok := parseFloat(value)
		if !ok {
			return ErrBadTimestamp
		}
		s.Timestamp, err = timestampMs(v, nowMs, p.windowMs())
		return err
	case "bucket":
		if value, err = p.checkName(value, nameLen(value, &nameByte), &nameByte, ErrBadBucket); err != nil {
			return err
		}
	}
	// Field by field, as parseLine fills a Sample: appending a Tag literal
	// copies it through the stack like tagSpan (see there).
	p.tags = append(p.tags, Tag{})
	tg := &p.tags[len(p.tags)-1]
	tg.Key, tg.Value = key, value
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
// Keys are never empty.
func canonicalTags(tags []Tag) []Tag {
	dup := false
	for i := 1; i < len(tags); i++ {
		for j := i; j > 0; j-- {
			c := compareKeys(tags[j-1].Key, tags[j].Key)
			dup = dup || c == 0
			if c <= 0 {
				break
			}
			tags[j-1], tags[j] = tags[j], tags[j-1]
		}
	}
	if !dup {
		return tags
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

// compareKeys is bytes.Compare for non-empty keys, which usually differ
// in their first byte: comparing it first saves most calls.
func compareKeys(a, b []byte) int {
	if a[0] != b[0] {
		return int(a[0]) - int(b[0])
	}
	return bytes.Compare(a, b)
}
