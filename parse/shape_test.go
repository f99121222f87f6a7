package parse

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestNextLine(t *testing.T) {
	f := func(packet string, want ...string) {
		t.Helper()
		var got []string
		rest := []byte(packet)
		for {
			var line []byte
			if line, rest = NextLine(rest); len(line) == 0 {
				break
			}
			got = append(got, string(line))
		}
		if strings.Join(got, "|") != strings.Join(want, "|") || len(got) != len(want) {
			t.Fatalf("NextLine over %q: %q, want %q", packet, got, want)
		}
	}
	f("")
	f("\n\n \r\n")
	f("a:1|c", "a:1|c")
	f("a:1|c\nb:2|g\n", "a:1|c", "b:2|g")
	f(" a:1|c \r\n\n\tb:2|g", "a:1|c", "b:2|g")
}

func TestAppendShape(t *testing.T) {
	f := func(line, wantShape, wantValues string) {
		t.Helper()
		shape, values, ok := AppendShape([]byte("x"), []byte(line))
		if wantShape == "" {
			if ok {
				t.Fatalf("AppendShape(%q) = %q, %q; want no shape", line, shape, values)
			}
			return
		}
		if !ok || string(shape) != "x"+wantShape || string(values) != wantValues {
			t.Fatalf("AppendShape(%q) = %q, %q, %v; want %q, %q", line, shape, values, ok, "x"+wantShape, wantValues)
		}
	}
	f("a:1|c", "a:|c", "1")
	f("a:1:2.5|ms|@0.5|#k:v,bare|T1700000000", "a:|ms|@0.5|#k:v,bare|T1700000000", "1:2.5")
	f("set:a:b|s", "set:|s", "a:b")
	f("a:|c", "a:|c", "")
	f("a:1", "", "")
	f("a|c", "", "")
	f("_sc|name|0", "", "")
}

// FuzzShape checks what AppendShape promises: a line with the shape of a
// line ParseLine accepted without a timestamp parses as that line with its
// own values, and is rejected exactly when ParseValues rejects them.
func FuzzShape(f *testing.F) {
	f.Add([]byte("a:1|c|@0.5|#k:v,bare,bucket=b"), []byte("2:3"), false)
	f.Add([]byte("g:-1|g|#k=v|c:abc"), []byte("+2"), false)
	f.Add([]byte("s:x|s|#a:1"), []byte("y\xff"), false)
	f.Add([]byte("a.b:1|ms|#k.x:v"), []byte("1e400"), true)
	f.Add([]byte("a:1|c|T1700000000"), []byte("1"), false)
	f.Add([]byte("api.req-x/é:1|c|#k.y=v"), []byte("2"), false)
	f.Add([]byte("abcdefghijklmnop:1|c|#k=abcdefghijklmnopqrstuv"), []byte("1:2:3:4:5"), false)
	p := StatsD{MaxTags: 8, MaxNameLength: 16, MaxTagLength: 24, MaxValuesPerLine: 4}
	f.Fuzz(func(t *testing.T, line, values []byte, sanitize bool) {
		// sanitize picks RuleSanitize; otherwise both other rules run.
		rules := []NameRule{RuleStatsD, RuleBucky3}
		if sanitize {
			rules = []NameRule{RuleSanitize}
		}
		for _, rule := range rules {
			p.NameRule = rule
			checkShape(t, &p, line, values)
		}
	})
}

// checkShape is FuzzShape's check of one line with p's rule.
func checkShape(t *testing.T, p *StatsD, line, values []byte) {
	t.Helper()
	var first, second []byte
	shape, _, ok := AppendShape(nil, line)
	if !ok {
		return
	}
	colon := bytes.IndexByte(line, ':')
	bar := colon + 1 + bytes.IndexByte(line[colon+1:], '|')
	second = append(append(append(second[:0], line[:colon+1]...), values...), line[bar:]...)
	if again, _, _ := AppendShape(nil, second); !bytes.Equal(again, shape) {
		return // values with a '|' make another shape
	}
	// ParseLine may sanitize in place, and its samples alias p.
	first = append(first[:0], line...)
	var s Sample
	p.Reset()
	if p.ParseLine(first, now, &s) != nil || s.Timestamp != 0 {
		return
	}
	known, bare := clone(s), p.BareTags

	var fast Sample
	q := StatsD{MaxValuesPerLine: p.MaxValuesPerLine}
	fastErr := q.ParseValues(known.Type, values, &fast)
	p.Reset()
	secondErr := p.ParseLine(second, now, &s)
	switch {
	case (fastErr == nil) != (secondErr == nil):
		t.Fatalf("%q then %q: ParseValues: %v, ParseLine: %v", line, second, fastErr, secondErr)
	case secondErr != nil:
		if !errors.Is(secondErr, ErrBadValue) && !errors.Is(secondErr, ErrBadUTF8) && !errors.Is(secondErr, ErrTooManyValues) {
			t.Fatalf("%q: rejected with %v, not for its values", second, secondErr)
		}
		return
	}
	want := known
	want.Values, want.SetMember, want.Delta = fast.Values, fast.SetMember, fast.Delta
	if !sameSample(s, want) || p.BareTags != bare {
		t.Fatalf("%q then %q:\n%q, %d bare tags\nwant %q, %d", line, second, format(s), p.BareTags, format(want), bare)
	}
}

// clone returns a copy of s that aliases nothing.
func clone(s Sample) Sample {
	c := s
	c.Name = bytes.Clone(s.Name)
	c.Values = append([]float64(nil), s.Values...)
	c.SetMember = bytes.Clone(s.SetMember)
	c.Tags = nil
	for _, tag := range s.Tags {
		c.Tags = append(c.Tags, Tag{Key: bytes.Clone(tag.Key), Value: bytes.Clone(tag.Value)})
	}
	return c
}
