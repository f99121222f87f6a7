package parse

import "bytes"

// NextLine splits the first non-empty line off packet, trimmed of ASCII
// whitespace. line is empty only when packet holds no more lines.
func NextLine(packet []byte) (line, rest []byte) {
	for len(packet) > 0 {
		line = packet
		if i := bytes.IndexByte(packet, '\n'); i >= 0 {
			line, packet = packet[:i], packet[i+1:]
		} else {
			packet = nil
		}
		if line = trimSpace(line); len(line) > 0 {
			return line, packet
		}
	}
	return nil, nil
}

// AppendShape appends the shape of a trimmed line to dst: the line with
// its values cut out ("name:|type|@rate|#tags…"). Everything but the
// values decides how the parser treats a line, apart from a timestamp
// checked against the clock, so for lines of one shape that ParseLine
// accepted without a Timestamp, ParseLine gives the same Sample but for
// the fields ParseValues sets, and rejects a line only when ParseValues
// does. That lets a reader remember what a shape maps to and parse only
// the values of the lines it has seen before.
//
// ok is false when line cannot be a StatsD line (no ':' before a '|').
// values aliases line; shape aliases dst's array.
func AppendShape(dst, line []byte) (shape, values []byte, ok bool) {
	colon := bytes.IndexByte(line, ':')
	if colon < 0 {
		return dst, nil, false
	}
	bar := colon + 1
	for bar < len(line) && line[bar] != '|' {
		bar++
	}
	if bar == len(line) {
		return dst, nil, false
	}
	dst = append(dst, line[:colon+1]...)
	return append(dst, line[bar:]...), line[colon+1 : bar], true
}

// ParseValues parses the values of a line of type t, cut out by
// AppendShape, into s.Values (and s.Delta) or s.SetMember, as ParseLine
// does. Like ParseLine it only appends to p: s.Values aliases p until its
// next Parse or Reset.
func (p *StatsD) ParseValues(t Type, values []byte, s *Sample) error {
	s.Type, s.Values, s.SetMember, s.Delta = t, nil, nil, false
	return p.parseValues(values, s)
}
