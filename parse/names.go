package parse

import (
	"unicode"
	"unicode/utf8"
)

// NameRule is the rule a StatsD line's name and tag keys must follow.
type NameRule uint8

// The name rules. RuleStatsD is the zero value.
const (
	// RuleStatsD accepts, as classic StatsD servers and statsd_exporter
	// do, any valid UTF-8 except ':', '|', '@', '#', whitespace and
	// control characters; tag keys may hold neither '=', ',' nor '\'
	// (their separators and escape). Names such as "api.requests" or
	// "http-5xx" pass unchanged: destinations escape them their own way.
	RuleStatsD NameRule = iota
	// RuleBucky3 accepts a letter, then letters, digits and '_'.
	RuleBucky3
	// RuleSanitize is RuleBucky3 with every character outside it mapped
	// to '_' instead of rejecting the line; the result must still start
	// with a letter.
	RuleSanitize
)

// ParseNameRule returns the rule named s: "statsd", "bucky3" or
// "sanitize".
func ParseNameRule(s string) (NameRule, bool) {
	switch s {
	case "statsd":
		return RuleStatsD, true
	case "bucky3":
		return RuleBucky3, true
	case "sanitize":
		return RuleSanitize, true
	}
	return 0, false
}

// String returns the rule's option value.
func (r NameRule) String() string {
	switch r {
	case RuleStatsD:
		return "statsd"
	case RuleBucky3:
		return "bucky3"
	case RuleSanitize:
		return "sanitize"
	}
	return "invalid"
}

// nameByte marks the bytes allowed after the first letter of a name or tag
// key by RuleBucky3: letters, digits and '_'.
var nameByte = func() (t [256]bool) {
	for c := range 256 {
		t[c] = isLetter(byte(c)) || isDigit(byte(c)) || c == '_'
	}
	return t
}()

// statsdNameByte and statsdKeyByte mark the ASCII bytes RuleStatsD allows
// in a name and a tag key. Bytes above 0x7f are left out, so the scan
// stops at them and only non-ASCII names pay for the UTF-8 check.
var (
	statsdNameByte = func() (t [256]bool) {
		for c := range 256 {
			t[c] = c > ' ' && c < 0x7f && c != ':' && c != '|' && c != '@' && c != '#'
		}
		return t
	}()
	statsdKeyByte = func() (t [256]bool) {
		t = statsdNameByte
		t['='], t[','], t['\\'] = false, false, false
		return t
	}()
)

// nameTable and keyTable return the byte tables of p's rule for names and
// tag keys.
func (p *StatsD) nameTable() *[256]bool {
	if p.NameRule == RuleStatsD {
		return &statsdNameByte
	}
	return &nameByte
}

func (p *StatsD) keyTable() *[256]bool {
	if p.NameRule == RuleStatsD {
		return &statsdKeyByte
	}
	return &nameByte
}

// checkName applies the rule of table (p's nameTable or keyTable, or
// nameByte for a bucket) to b, whose first valid bytes are in table: it
// returns b capped, or sanitized in place under RuleSanitize, or errBad.
// Invalid UTF-8 is ErrBadUTF8 under every rule.
func (p *StatsD) checkName(b []byte, valid int, table *[256]bool, errBad error) ([]byte, error) {
	strict := table == &nameByte
	if valid < len(b) {
		if !strict {
			return checkStatsDName(b, valid, table, errBad)
		}
		return p.sanitize(b, valid, errBad)
	}
	if len(b) == 0 || strict && !isLetter(b[0]) {
		return nil, errBad
	}
	return b[:len(b):len(b)], nil
}

// checkStatsDName checks the bytes of b from i on by RuleStatsD: ASCII
// ones by table, the others as runes, which must be neither spaces nor
// control characters (U+0085 and U+00A0 included).
func checkStatsDName(b []byte, i int, table *[256]bool, errBad error) ([]byte, error) {
	if !utf8.Valid(b[i:]) {
		return nil, ErrBadUTF8
	}
	for i < len(b) {
		c := b[i]
		if c < utf8.RuneSelf {
			if !table[c] {
				return nil, errBad
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return nil, errBad
		}
		i += size
	}
	return b[:len(b):len(b)], nil
}

// sanitize handles a name whose byte i is outside RuleBucky3: it
// rejects it, or under RuleSanitize maps each character (not byte)
// outside the rule to one '_', so b can only shrink.
func (p *StatsD) sanitize(b []byte, i int, errBad error) ([]byte, error) {
	if !utf8.Valid(b[i:]) {
		return nil, ErrBadUTF8
	}
	if p.NameRule != RuleSanitize {
		return nil, errBad
	}
	w := i
	for r := i; r < len(b); w++ {
		c := b[r]
		if nameByte[c] {
			b[w] = c
			r++
			continue
		}
		size := 1
		if c >= utf8.RuneSelf {
			_, size = utf8.DecodeRune(b[r:])
		}
		b[w] = '_'
		r += size
	}
	b = b[:w:w]
	if !isLetter(b[0]) {
		return nil, errBad
	}
	return b, nil
}

// nameLen returns the length of the longest prefix of b made of bytes of
// table.
func nameLen(b []byte, table *[256]bool) int {
	i := 0
	for i < len(b) && table[b[i]] {
		i++
	}
	return i
}

// ValidName reports whether name follows RuleBucky3: a letter, then
// letters, digits and '_'. Bucket names follow it under every rule.
func ValidName(name []byte) bool {
	return len(name) > 0 && isLetter(name[0]) && nameLen(name, &nameByte) == len(name)
}

// ValidTagKey reports whether key is a tag key that rule lets through
// unchanged.
func ValidTagKey(key []byte, rule NameRule) bool {
	if rule == RuleStatsD {
		return validStatsDName(key, true)
	}
	return ValidName(key)
}

// validStatsDName reports whether name follows RuleStatsD for names, or
// for tag keys when key is true.
func validStatsDName(name []byte, key bool) bool {
	table := &statsdNameByte
	if key {
		table = &statsdKeyByte
	}
	if len(name) == 0 {
		return false
	}
	_, err := checkStatsDName(name, nameLen(name, table), table, ErrBadName)
	return err == nil
}
