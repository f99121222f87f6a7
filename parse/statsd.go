package parse

import (
	"bytes"
	"unicode/utf8"
)

// StatsD parses StatsD/DogStatsD datagrams (SPEC §3). The zero value is
// ready to use once its exported options are set. It must not be shared
// between goroutines: give each reader its own.
//
// A datagram is parsed line by line: Reset, then ParseLine for each line
// that NextLine splits off (or ParseValues for a line whose shape is
// known, see AppendShape). Parse is that loop, keeping every sample. The
// samples alias the packet and p's reused memory, so in steady state
// nothing allocates. StatsD never logs: rejections are returned as
// sentinel errors and counted below.
type StatsD struct {
	// NameRule is the rule of names and tag keys; bucket tag values
	// follow RuleBucky3 (they name output buckets) unless it is
	// RuleSanitize, which sanitizes them too. Under RuleSanitize the
	// parser rewrites those bytes in place in the packet.
	NameRule NameRule
	// MaxTags is the most tags a line may carry; 0 means 64.
	MaxTags int
	// MaxNameLength is the longest name a line may carry, in bytes as
	// sent; 0 means 256.
	MaxNameLength int
	// MaxTagLength is the longest tag, key and value in bytes as sent
	// (escapes included); 0 means 1024. The |c: field counts as the tag
	// container_id.
	MaxTagLength int
	// MaxValuesPerLine is the most packed values (t:1:2:3|ms) a line may
	// carry; 0 means 64.
	MaxValuesPerLine int
	// TimestampWindow is how far, in seconds, a sample's own timestamp may
	// be from now; 0 means 600.
	TimestampWindow float64

	// Counters since the last Parse or Reset. ParseLine counts BareTags;
	// Parse counts the others too.
	Lines    uint32             // non-empty lines
	Rejected [NumReasons]uint32 // invalid lines by reason
	BareTags uint32             // DogStatsD bare tags ignored in accepted or rejected lines
	Skipped  uint32             // events and service checks

	samples []Sample
	values  []float64
	tags    []Tag
	// scratch holds unescaped tag values and the container_id key.
	scratch []byte
}

// Reset forgets the samples parsed so far and zeroes the counters,
// keeping the memory for reuse.
func (p *StatsD) Reset() {
	p.Lines, p.Rejected, p.BareTags, p.Skipped = 0, [NumReasons]uint32{}, 0, 0
	p.samples = p.samples[:0]
	p.values = p.values[:0]
	p.tags = p.tags[:0]
	p.scratch = p.scratch[:0]
}

// Parse resets p and returns the samples of the valid lines of packet, in
// order: NextLine and ParseLine over the whole packet, with the invalid
// lines dropped and counted in p.Rejected and the skipped ones in
// p.Skipped. The samples are valid until the next Parse or Reset. Under
// RuleSanitize, Parse may modify packet.
func (p *StatsD) Parse(packet []byte, nowMs int64) []Sample {
	p.Reset()
	for line, rest := NextLine(packet); len(line) > 0; line, rest = NextLine(rest) {
		p.Lines++
		nv, nt, ns := len(p.values), len(p.tags), len(p.scratch)
		if len(p.samples) < cap(p.samples) {
			p.samples = p.samples[:len(p.samples)+1] // parseLine overwrites it
		} else {
			p.samples = append(p.samples, Sample{})
		}
		// ParseLine without its trim: NextLine trimmed the line already.
		err := p.parseLine(line, nowMs, &p.samples[len(p.samples)-1])
		if err == nil {
			continue
		}
		p.samples = p.samples[:len(p.samples)-1]
		p.values, p.tags, p.scratch = p.values[:nv], p.tags[:nt], p.scratch[:ns]
		if r, ok := ReasonOf(err); ok {
			p.Rejected[r]++
		} else {
			p.Skipped++
		}
	}
	return p.samples
}

// ParseLine parses one line into s and returns nil, ErrSkipped (an event,
// a service check or an empty line) or the sentinel error of the
// rejection. It appends to p's memory and does not reset it: s aliases
// line and p until the next Parse or Reset, so a caller that keeps no
// sample past its line calls Reset before each line to keep that memory
// small. Under RuleSanitize, ParseLine may modify line.
func (p *StatsD) ParseLine(line []byte, nowMs int64, s *Sample) error {
	line = trimSpace(line)
	if len(line) == 0 {
		return ErrSkipped
	}
	return p.parseLine(line, nowMs, s)
}

// parseLine parses a trimmed, non-empty line into s, appending to p's
// scratch slices.
func (p *StatsD) parseLine(line []byte, nowMs int64, s *Sample) error {
	if hasPrefix(line, "_e{") || hasPrefix(line, "_sc|") || hasPrefix(line, "sc|") {
		return ErrSkipped
	}
	table := p.nameTable()
	valid := nameLen(line, table)
	colon := valid
	if colon == len(line) || line[colon] != ':' {
		if colon = bytes.IndexByte(line, ':'); colon < 0 {
			return ErrBadLine
		}
	}
	// The limits are checks on lengths the scans found anyway: a line
	// over one is dropped alone, the rest of the datagram kept.
	if colon > p.maxNameLength() {
		return ErrNameTooLong
	}
	name, err := p.checkName(line[:colon], valid, table, ErrBadName)
	if err != nil {
		return err
	}
	// Values and fields are a few bytes long: plain loops find their end
	// faster than bytes.IndexByte, whose setup dominates at that length.
	rest := line[colon+1:]
	bar := 0
	for bar < len(rest) && rest[bar] != '|' {
		bar++
	}
	if bar == len(rest) {
		return ErrBadType
	}
	value, rest := rest[:bar], rest[bar+1:]
	typ, n := parseType(rest)
	if n == 0 {
		return ErrBadType
	}
	rest = rest[n:]
	// Field by field: a whole Sample literal assigned through the pointer
	// is a bulk copy with write barriers (see bench/RESULTS.md, "Design notes: statsd_server reader path").
	s.Name, s.Type, s.Values, s.SetMember = name, typ, nil, nil
	s.Delta, s.Rate, s.Tags, s.Timestamp = false, 1, nil, 0

	// Locate the optional fields first: the tags are built after the
	// container_id field so that a container_id tag of the line wins.
	var rate, tags, ts, container []byte
	hasRate, hasTags, hasTS := false, false, false
	for len(rest) > 0 {
		f := rest[1:] // rest starts with '|'
		if len(f) > 0 && f[0] == '#' && !hasTags {
			end := 1 + tagSectionEnd(f[1:])
			tags, hasTags, rest = f[1:end], true, f[end:]
			continue
		}
		end := 0
		for end < len(f) && f[end] != '|' {
			end++
		}
		field := f[:end]
		rest = f[end:]
		switch {
		case len(field) > 0 && field[0] == '@':
			rate, hasRate = field[1:], true
		case len(field) > 1 && field[0] == 'T' && isDigit(field[1]):
			ts, hasTS = field[1:], true
		case len(field) > 2 && field[0] == 'c' && field[1] == ':':
			container = field[2:]
		}
	}

	if hasRate {
		r, ok := parseFloat(rate)
		if !ok || !(r > 0 && r <= 1) {
			return ErrBadRate
		}
		s.Rate = r
	}
	if err := p.parseValues(value, s); err != nil {
		return err
	}

	start := len(p.tags)
	if len(container) > 0 {
		if len("container_id")+len(container) > p.maxTagLength() {
			return ErrTagTooLong
		}
		if !utf8.Valid(container) {
			return ErrBadUTF8
		}
		off := len(p.scratch)
		p.scratch = append(p.scratch, "container_id"...)
		p.tags = append(p.tags, Tag{Key: p.scratch[off:len(p.scratch):len(p.scratch)], Value: container[:len(container):len(container)]})
	}
	if hasTags {
		if err := p.parseTags(tags, nowMs, s); err != nil {
			return err
		}
	}
	if hasTS {
		for _, c := range ts {
			if !isDigit(c) {
				return ErrBadTimestamp
			}
		}
		v, _ := parseFloat(ts)
		if s.Timestamp, err = timestampMs(v, nowMs, p.windowMs()); err != nil {
			return err
		}
	}
	end := start + len(canonicalTags(p.tags[start:]))
	p.tags = p.tags[:end]
	s.Tags = p.tags[start:end:end]
	return nil
}

// parseValues sets the set member, or the values, Delta included, of s.
func (p *StatsD) parseValues(value []byte, s *Sample) error {
	if s.Type == Set {
		if len(value) == 0 {
			return ErrBadValue
		}
		if !utf8.Valid(value) {
			return ErrBadUTF8
		}
		s.SetMember = value[:len(value):len(value)]
		return nil
	}
	start, maxValues := len(p.values), p.maxValuesPerLine()
	for i := 0; ; i++ {
		if i == maxValues {
			return ErrTooManyValues
		}
		v := value
		end := 0 // values are short: see parseLine on bytes.IndexByte
		for end < len(value) && value[end] != ':' {
			end++
		}
		if end < len(value) {
			v, value = value[:end], value[end+1:]
		} else {
			end = -1
		}
		f, ok := parseFloat(v)
		if !ok {
			return ErrBadValue
		}
		if s.Type == Gauge {
			// One Delta covers every packed value, so they must agree.
			signed := v[0] == '+' || v[0] == '-'
			if i > 0 && signed != s.Delta {
				return ErrBadValue
			}
			s.Delta = signed
		}
		p.values = append(p.values, f)
		if end < 0 {
			break
		}
	}
	s.Values = p.values[start:len(p.values):len(p.values)]
	return nil
}

func (p *StatsD) maxTags() int {
	if p.MaxTags <= 0 {
		return 64
	}
	return p.MaxTags
}

func (p *StatsD) maxNameLength() int {
	if p.MaxNameLength <= 0 {
		return 256
	}
	return p.MaxNameLength
}

func (p *StatsD) maxTagLength() int {
	if p.MaxTagLength <= 0 {
		return 1024
	}
	return p.MaxTagLength
}

func (p *StatsD) maxValuesPerLine() int {
	if p.MaxValuesPerLine <= 0 {
		return 64
	}
	return p.MaxValuesPerLine
}

// windowMs returns TimestampWindow in milliseconds, fractions kept.
func (p *StatsD) windowMs() float64 {
	if !(p.TimestampWindow > 0) {
		return 600_000
	}
	return p.TimestampWindow * 1000
}

// parseType parses the type at the start of b, which must end there or
// at a '|'. It returns the type and its length, 0 when there is none.
func parseType(b []byte) (Type, int) {
	t, n := Type(0), 1
	switch {
	case len(b) == 0:
		return 0, 0
	case b[0] == 'c':
		t = Counter
	case b[0] == 'g':
		t = Gauge
	case b[0] == 'h':
		t = Histogram
	case b[0] == 's':
		t = Set
	case b[0] == 'd':
		t = Distribution
	case b[0] == 'm' && len(b) > 1 && b[1] == 's':
		t, n = Timer, 2
	default:
		return 0, 0
	}
	if n < len(b) && b[n] != '|' {
		return 0, 0
	}
	return t, n
}

func hasPrefix(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && string(b[:len(prefix)]) == prefix
}
