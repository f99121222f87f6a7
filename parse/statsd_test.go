package parse

import (
	"bytes"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// now is the receive time of every test packet: 2023-11-14T22:13:20Z.
const now = 1700000000000

// format renders a sample in a canonical wire-like form so that tests
// compare one string per sample: name:values|type[|@rate][|#k=v,…][|T<ms>][ delta].
func format(s Sample) string {
	var b strings.Builder
	b.Write(s.Name)
	b.WriteByte(':')
	if s.Type == Set {
		b.Write(s.SetMember)
	}
	for i, v := range s.Values {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
	}
	b.WriteString("|" + s.Type.String())
	if s.Rate != 1 {
		b.WriteString("|@" + strconv.FormatFloat(s.Rate, 'g', -1, 64))
	}
	if len(s.Tags) > 0 {
		b.WriteString("|#")
		for i, t := range s.Tags {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(string(t.Key) + "=" + string(t.Value))
		}
	}
	if s.Timestamp != 0 {
		b.WriteString("|T" + strconv.FormatInt(s.Timestamp, 10))
	}
	if s.Delta {
		b.WriteString(" delta")
	}
	return b.String()
}

func formatAll(samples []Sample) []string {
	out := []string{}
	for _, s := range samples {
		out = append(out, format(s))
	}
	return out
}

func rejected(counts [NumReasons]uint32) uint32 {
	var n uint32
	for _, c := range counts {
		n += c
	}
	return n
}

func TestStatsD_Success(t *testing.T) {
	var p StatsD
	f := func(packet string, want ...string) {
		t.Helper()
		for range 2 { // the second Parse proves reuse
			got := formatAll(p.Parse([]byte(packet), now))
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("Parse(%q):\ngot  %q\nwant %q", packet, got, want)
			}
			if n := rejected(p.Rejected); n != 0 {
				t.Fatalf("Parse(%q): %d lines rejected: %v", packet, n, p.Rejected)
			}
		}
		// A reader that knows a line's shape parses only its values: they
		// must come out as the full parse's.
		samples := p.Parse([]byte(packet), now)
		var q StatsD
		var shape []byte
		i := 0
		for line, rest := NextLine([]byte(packet)); len(line) > 0; line, rest = NextLine(rest) {
			_, values, ok := AppendShape(shape[:0], line)
			var s Sample
			if !ok || q.ParseValues(samples[i].Type, values, &s) != nil ||
				!slices.Equal(s.Values, samples[i].Values) || !bytes.Equal(s.SetMember, samples[i].SetMember) || s.Delta != samples[i].Delta {
				t.Fatalf("%q: ParseValues(%q) = %v %q, want %q", packet, values, s.Values, s.SetMember, format(samples[i]))
			}
			i++
		}
	}
	// Reference lines and types.
	f("gorm:1.5|c", "gorm:1.5|c")
	f("gurm:1|c|@0.1", "gurm:1|c|@0.1")
	f("t:1e3|ms", "t:1000|ms")
	f("h:.5|h", "h:0.5|h")
	f("d:5.|d", "d:5|d")
	f("n:-2.5|c", "n:-2.5|c")
	f("n:+2|c", "n:2|c")
	f("big:123456789012345678901234567890|c", "big:1.2345678901234568e+29|c")
	f("tiny:0.000000000000000000000000000001|ms", "tiny:1e-30|ms")
	f("Az09_:1|c", "Az09_:1|c")

	// Gauges: a sign makes a delta.
	f("g:3|g", "g:3|g")
	f("g:+3|g", "g:3|g delta")
	f("g:-3|g", "g:-3|g delta")
	f("g:+1:-2|g", "g:1:-2|g delta")

	// Value packing, not for sets.
	f("a:1:2:3|c", "a:1:2:3|c")
	f("a:1:2|ms|@0.5", "a:1:2|ms|@0.5")
	f("s:alice|s", "s:alice|s")
	f("s:a:b|s", "s:a:b|s")
	f("s:é|s", "s:é|s")

	// Rates are accepted for every type.
	f("g:1|g|@0.5", "g:1|g|@0.5")
	f("c:1|c|@1", "c:1|c")
	f("c:1|c|@0.000001", "c:1|c|@1e-06")

	// Lines, whitespace, CRLF.
	f("x:1|c\r\ny:2|c\n\n  z:3|g  \n", "x:1|c", "y:2|c", "z:3|g")
	f("\n\n")

	// DogStatsD tags.
	f("page_views:1|c|#env:prod,host:a", "page_views:1|c|#env=prod,host=a")
	f(`foo:1|ms|#a:1,b=x\,y|T1700000000|c:abc|card:high`, "foo:1|ms|#a=1,b=x,y,container_id=abc|T1700000000000")
	f("foo:1|c|#b=2,a=1,b=3", "foo:1|c|#a=1,b=3")
	f("foo:1|c|#a=,b=1,", "foo:1|c|#a=,b=1")
	f("foo:1|c|#", "foo:1|c")
	f("foo:1|c|#a:b:c,d=e=f", "foo:1|c|#a=b:c,d=e=f")
	f("foo:1|c|#a=x|y#z", "foo:1|c|#a=x|y#z")
	f("foo:1|c|#a=x|@0.5", "foo:1|c|#a=x|@0.5")
	f("foo:1|c|#a=1|#b=2", "foo:1|c|#a=1|#b=2")
	f("foo:1|c|#a=x|Tabc", "foo:1|c|#a=x|Tabc")
	f("foo:1|c|#a=1|e:x|c:cid", "foo:1|c|#a=1,container_id=cid")
	f("foo:1|c|#a=1|card:low|x", "foo:1|c|#a=1")
	f("foo:1|c|#container_id=mine|c:cid", "foo:1|c|#container_id=mine")
	f("foo:1|c|c:cid", "foo:1|c|#container_id=cid")
	f(`foo:1|c|#a=\n\t\r\\\q\`, "foo:1|c|#a=\n\t\r\\q\\")
	f(`foo:1|c|#a=x\|T123`, "foo:1|c|#a=x|T123")
	f("foo:1|c|#a=é✓", "foo:1|c|#a=é✓")
	f("foo:1|c|#bucket=my_bucket,x=1", "foo:1|c|#bucket=my_bucket,x=1")
	f("foo:1|c|#"+strings.Repeat("a=1,", 64), "foo:1|c|#a=1")

	// Timestamps: seconds or millis, tag or field, never kept as a tag.
	f("foo:1|c|#timestamp=1700000100", "foo:1|c|T1700000100000")
	f("foo:1|c|#timestamp=1699999900123,a=1", "foo:1|c|#a=1|T1699999900123")
	f("foo:1|c|#timestamp=1700000000.5", "foo:1|c|T1700000000500")
	f("foo:1|c|T1700000600", "foo:1|c|T1700000600000")
	f("foo:1|c|#timestamp=1700000100|T1700000000", "foo:1|c|T1700000000000")

	// Other fields are ignored.
	f("foo:1|c|xyz|@0.5", "foo:1|c|@0.5")
	f("foo:1|c|Tabc|", "foo:1|c")
}

func TestStatsD_Counters(t *testing.T) {
	p := StatsD{NameRule: RuleBucky3}
	packet := "_e{5,4}:title|text\n_sc|name|0\nsc|svc|1\nfoo:1|c|#bare,a=1,other\nbad\n\nx.y:1|c"
	for range 2 {
		got := formatAll(p.Parse([]byte(packet), now))
		if len(got) != 1 || got[0] != "foo:1|c|#a=1" {
			t.Fatalf("got %q", got)
		}
		if p.Lines != 6 || p.Skipped != 3 || p.BareTags != 2 || p.Rejected[ReasonBadLine] != 1 || p.Rejected[ReasonBadName] != 1 || rejected(p.Rejected) != 2 {
			t.Fatalf("counters: lines %d skipped %d bare %d rejected %v", p.Lines, p.Skipped, p.BareTags, p.Rejected)
		}
	}
	p.Reset()
	if p.Lines != 0 || p.Skipped != 0 || p.BareTags != 0 || rejected(p.Rejected) != 0 {
		t.Fatal("Reset kept counters")
	}
	var s Sample
	for _, line := range []string{"_e{1,1}:a|b", "_sc|x|0", "sc|x|0", "  "} {
		if err := p.ParseLine([]byte(line), now, &s); err != ErrSkipped {
			t.Fatalf("ParseLine(%q) = %v, want ErrSkipped", line, err)
		}
	}
}

func TestStatsD_Failure(t *testing.T) {
	// Every case holds under RuleBucky3; fs cases under RuleStatsD too.
	strict, def := StatsD{NameRule: RuleBucky3}, StatsD{}
	seen := map[Reason]bool{}
	check := func(p *StatsD, line string, want error) {
		t.Helper()
		r, ok := ReasonOf(want)
		if !ok {
			t.Fatalf("%v has no reason", want)
		}
		seen[r] = true
		for range 2 {
			// The bad line must not take the good one down with it.
			got := formatAll(p.Parse([]byte(line+"\nok:1|c"), now))
			if len(got) != 1 || got[0] != "ok:1|c" {
				t.Fatalf("%s: Parse(%q) = %q, want only ok:1|c", p.NameRule, line, got)
			}
			if p.Rejected[r] != 1 || rejected(p.Rejected) != 1 {
				t.Fatalf("%s: Parse(%q) rejected %v, want one %s", p.NameRule, line, p.Rejected, r)
			}
			var s Sample
			if err := p.ParseLine([]byte(line), now, &s); err != want {
				t.Fatalf("%s: ParseLine(%q) = %v, want %v", p.NameRule, line, err, want)
			}
		}
	}
	f := func(line string, want error) {
		t.Helper()
		check(&strict, line, want)
		check(&def, line, want)
	}
	fb := func(line string, want error) {
		t.Helper()
		check(&strict, line, want)
	}
	f("foo", ErrBadLine)
	f("foo|c", ErrBadLine)

	fb("page.views:1|c|#env:prod,host:a", ErrBadName)
	fb("api-requests:1|c", ErrBadName)
	fb("_foo:1|c", ErrBadName)
	fb("1foo:1|c", ErrBadName)
	f(":1|c", ErrBadName)
	fb("fé:1|c", ErrBadName)

	f("foo:1", ErrBadType)
	f("foo:1|", ErrBadType)
	f("foo:1|x", ErrBadType)
	f("foo:1|cc", ErrBadType)
	f("foo:1|m", ErrBadType)
	f("foo:1|C", ErrBadType)
	f("foo:1|@0.5", ErrBadType)

	f("foo:abc|c", ErrBadValue)
	f("foo:|c", ErrBadValue)
	f("foo:NaN|c", ErrBadValue)
	f("foo:nan|g", ErrBadValue)
	f("foo:Inf|g", ErrBadValue)
	f("foo:-inf|ms", ErrBadValue)
	f("foo:1e400|c", ErrBadValue)
	f("foo:-1e309|c", ErrBadValue)
	f("foo:0x10|c", ErrBadValue)
	f("foo:1_000|c", ErrBadValue)
	f("foo:.|c", ErrBadValue)
	f("foo:1e|c", ErrBadValue)
	f("foo:1e+|c", ErrBadValue)
	f("foo:+|c", ErrBadValue)
	f("foo:1.2.3|c", ErrBadValue)
	f("foo: 1|c", ErrBadValue)
	f("foo:1:|c", ErrBadValue)
	f("foo:1::2|c", ErrBadValue)
	f("g:+1:2|g", ErrBadValue)
	f("g:1:-2|g", ErrBadValue)
	f("s:|s", ErrBadValue)

	f("foo:1|c|@0", ErrBadRate)
	f("foo:1|c|@1.5", ErrBadRate)
	f("foo:1|c|@-0.5", ErrBadRate)
	f("foo:1|c|@abc", ErrBadRate)
	f("foo:1|c|@", ErrBadRate)
	f("foo:1|c|@NaN", ErrBadRate)
	f("foo:1|ms|@2", ErrBadRate)

	f("foo:1|c|#a=1,,b=2", ErrBadTag)
	f("foo:1|c|#,", ErrBadTag)
	f("foo:1|c|#,a=1", ErrBadTag)
	f("foo:1|c|#a=1,,", ErrBadTag)
	f("foo:1|c|#=v", ErrBadTag)
	fb("foo:1|c|#a.b=1", ErrBadTag)
	fb("foo:1|c|#1a=1", ErrBadTag)
	fb("foo:1|c|#_a=1", ErrBadTag)

	f("foo:1|c|#"+strings.Repeat("a=1,", 65), ErrTooManyTags)

	f("foo:1|c|#bucket=a.b", ErrBadBucket)
	f("foo:1|c|#bucket=", ErrBadBucket)
	f("foo:1|c|#bucket=9a", ErrBadBucket)

	f("foo:1|c|#timestamp=abc", ErrBadTimestamp)
	f("foo:1|c|#timestamp=", ErrBadTimestamp)
	f("foo:1|c|T17000x", ErrBadTimestamp)
	f("foo:1|c|#timestamp=1000", ErrTimestampOutOfWindow)
	f("foo:1|c|#timestamp=1700000601", ErrTimestampOutOfWindow)
	f("foo:1|c|#timestamp=1699999398999", ErrTimestampOutOfWindow)
	f("foo:1|c|T1000", ErrTimestampOutOfWindow)
	f("foo:1|c|T99999999999999999999999", ErrTimestampOutOfWindow)

	f("f\xff:1|c", ErrBadUTF8)
	f("s:\xff|s", ErrBadUTF8)
	f("s:a\xc3|s", ErrBadUTF8)
	f("foo:1|c|#a=\xff", ErrBadUTF8)
	f("foo:1|c|#a=\\\xff", ErrBadUTF8)
	f("foo:1|c|#\xff=1", ErrBadUTF8)
	f("foo:1|c|c:\xff", ErrBadUTF8)
	// The limits, at their defaults: 256-byte names, 1024-byte tags, 64
	// packed values.
	f(strings.Repeat("n", 257)+":1|c", ErrNameTooLong)
	f(strings.Repeat("n", 257)+":1|c|#"+strings.Repeat("v", 2000), ErrNameTooLong)
	f("foo:1|c|#k="+strings.Repeat("v", 1024), ErrTagTooLong)
	f("foo:1|c|#a=1,"+strings.Repeat("k", 1021)+":abcd", ErrTagTooLong)
	f("foo:1|c|c:"+strings.Repeat("c", 1013), ErrTagTooLong)
	f("foo:1"+strings.Repeat(":1", 64)+"|ms", ErrTooManyValues)
	f("foo:+1"+strings.Repeat(":+1", 64)+"|g", ErrTooManyValues)

	// StatsDReasons lists exactly the reasons seen above.
	for _, r := range StatsDReasons() {
		if !seen[r] {
			t.Errorf("StatsDReasons lists %s, which no case above gives", r)
		}
		delete(seen, r)
	}
	for r := range seen {
		t.Errorf("StatsDReasons misses %s", r)
	}
}

func TestStatsD_Options(t *testing.T) {
	f := func(p *StatsD, line string, want string, wantErr error) {
		t.Helper()
		var s Sample
		for range 2 {
			p.Reset()
			err := p.ParseLine([]byte(line), now, &s)
			if err != wantErr {
				t.Fatalf("ParseLine(%q) = %v, want %v", line, err, wantErr)
			}
			if err == nil && format(s) != want {
				t.Fatalf("ParseLine(%q) = %q, want %q", line, format(s), want)
			}
		}
	}
	few := &StatsD{MaxTags: 2}
	f(few, "foo:1|c|#a=1,b=2", "foo:1|c|#a=1,b=2", nil)
	f(few, "foo:1|c|#a=1,b=2,c=3", "", ErrTooManyTags)
	f(few, "foo:1|c|#a=1,a=2,a=3", "", ErrTooManyTags)

	// Limits are inclusive, count bytes as sent (escapes included) and
	// reject the line, not the datagram.
	limited := &StatsD{MaxNameLength: 4, MaxTagLength: 6, MaxValuesPerLine: 3}
	f(limited, "abcd:1:2:3|ms|#k=abcde", "abcd:1:2:3|ms|#k=abcde", nil)
	f(limited, "abcde:1|c", "", ErrNameTooLong)
	f(limited, "abcd:1|c|#k=abcdef", "", ErrTagTooLong)
	f(limited, `abcd:1|c|#kk=ab\,c`, "", ErrTagTooLong) // 6 bytes unescaped, 7 sent
	f(limited, "abcd:1|c|#kkkkkk", "abcd:1|c", nil)     // bare tags are dropped, not limited
	f(limited, "abcd:1:2:3:4|ms", "", ErrTooManyValues)
	f(limited, "abcd:member:with:colons|s", "abcd:member:with:colons|s", nil)
	def := &StatsD{}
	f(def, strings.Repeat("n", 256)+":1|c", strings.Repeat("n", 256)+":1|c", nil)
	f(def, "foo:1|c|#k="+strings.Repeat("v", 1023), "foo:1|c|#k="+strings.Repeat("v", 1023), nil)
	f(def, "foo:1"+strings.Repeat(":1", 63)+"|ms", "foo:1"+strings.Repeat(":1", 63)+"|ms", nil)
	sanitized := &StatsD{NameRule: RuleSanitize, MaxNameLength: 4}
	f(sanitized, "a.b.c:1|c", "", ErrNameTooLong) // checked as sent, before sanitizing

	narrow := &StatsD{TimestampWindow: 10}
	f(narrow, "foo:1|c|T1700000010", "foo:1|c|T1700000010000", nil)
	f(narrow, "foo:1|c|T1700000011", "", ErrTimestampOutOfWindow)
	f(narrow, "foo:1|c|T1699999990", "foo:1|c|T1699999990000", nil)
	f(narrow, "foo:1|c|T1699999989", "", ErrTimestampOutOfWindow)

	// Fractions of a second are kept: 0.5 s is not 0 (which means 600).
	half := &StatsD{TimestampWindow: 0.5}
	f(half, "foo:1|c|#timestamp=1700000000400", "foo:1|c|T1700000000400", nil)
	f(half, "foo:1|c|#timestamp=1699999999500", "foo:1|c|T1699999999500", nil)
	f(half, "foo:1|c|#timestamp=1700000000501", "", ErrTimestampOutOfWindow)
	f(half, "foo:1|c|T1700000001", "", ErrTimestampOutOfWindow)
}

func TestStatsD_Sanitize_Success(t *testing.T) {
	p := StatsD{NameRule: RuleSanitize}
	f := func(line, want string) {
		t.Helper()
		for range 2 {
			got := formatAll(p.Parse([]byte(line), now))
			if len(got) != 1 || got[0] != want {
				t.Fatalf("Parse(%q) = %q, want %q", line, got, want)
			}
		}
	}
	f("page.views:1|c|#env:prod,host:a", "page_views:1|c|#env=prod,host=a")
	f("api-requests.count:1|c|#my.key=v.1", "api_requests_count:1|c|#my_key=v.1")
	f("héllo✓:1|c", "h_llo_:1|c")
	f("foo:1|c|#bucket=a.b", "foo:1|c|#bucket=a_b")
	f(`foo:1|c|#bucket=a\,b`, "foo:1|c|#bucket=a_b")
	f("a b:1|c", "a_b:1|c")
	f("gorm:1.5|c", "gorm:1.5|c")
}

func TestStatsD_Sanitize_Failure(t *testing.T) {
	p := StatsD{NameRule: RuleSanitize}
	f := func(line string, want error) {
		t.Helper()
		var s Sample
		for range 2 {
			if err := p.ParseLine([]byte(line), now, &s); err != want {
				t.Fatalf("ParseLine(%q) = %v, want %v", line, err, want)
			}
		}
	}
	f("_foo:1|c", ErrBadName)
	f(".a:1|c", ErrBadName)
	f("é:1|c", ErrBadName)
	f("9.a:1|c", ErrBadName)
	f("a\xff:1|c", ErrBadUTF8)
	f("foo:1|c|#.a=1", ErrBadTag)
	f("foo:1|c|#bucket=.a", ErrBadBucket)
}

func TestStatsD_StatsDRule_Success(t *testing.T) {
	var p StatsD // RuleStatsD is the zero value
	f := func(line, want string) {
		t.Helper()
		for range 2 {
			got := formatAll(p.Parse([]byte(line), now))
			if len(got) != 1 || got[0] != want {
				t.Fatalf("Parse(%q) = %q, want %q", line, got, want)
			}
		}
	}
	f("page.views:1|c|#env:prod,host:a", "page.views:1|c|#env=prod,host=a")
	f("api-requests.count:1|c|#my.key=v.1", "api-requests.count:1|c|#my.key=v.1")
	f("1foo:1|c", "1foo:1|c")
	f("_foo:1|c", "_foo:1|c")
	f(".:1|c", ".:1|c")
	f(`a"b\c,d=e{f}/g!~:1|ms`, `a"b\c,d=e{f}/g!~:1|ms`)
	f("héllo✓:1|c", "héllo✓:1|c")
	f("x:1|c|#1k=1,_k=2,k-é/\"=3", "x:1|c|#1k=1,_k=2,k-é/\"=3")
	f("foo:1|c|#bucket=my_bucket", "foo:1|c|#bucket=my_bucket")
	f(strings.Repeat("é", 128)+":1|c", strings.Repeat("é", 128)+":1|c")
}

func TestStatsD_StatsDRule_Failure(t *testing.T) {
	var p StatsD
	f := func(line string, want error) {
		t.Helper()
		var s Sample
		for range 2 {
			if err := p.ParseLine([]byte(line), now, &s); err != want {
				t.Fatalf("ParseLine(%q) = %v, want %v", line, err, want)
			}
		}
	}
	for _, name := range []string{"a|b", "a@b", "a#b", "a b", "a\tb", "a\x00b", "a\x7fb", "a\u0085b", "a\u00a0b", "a\u2028b", "a\u3000b"} {
		f(name+":1|c", ErrBadName)
	}
	f("|:1|c", ErrBadName)
	f("a\xff:1|c", ErrBadUTF8)
	f("foo:1|c|#a\\b=1", ErrBadTag)
	f("foo:1|c|#a@b=1", ErrBadTag)
	f("foo:1|c|#a b=1", ErrBadTag)
	f("foo:1|c|#a\u00a0=1", ErrBadTag)
	f("foo:1|c|#é\xff=1", ErrBadUTF8)
	// Buckets name output buckets: RuleBucky3 under RuleStatsD too.
	f("foo:1|c|#bucket=a.b", ErrBadBucket)
	f("foo:1|c|#bucket=9a", ErrBadBucket)
	// The length limit counts bytes, not characters.
	f(strings.Repeat("é", 129)+":1|c", ErrNameTooLong)
}

func TestParseNameRule(t *testing.T) {
	for _, r := range []NameRule{RuleStatsD, RuleBucky3, RuleSanitize} {
		if got, ok := ParseNameRule(r.String()); !ok || got != r {
			t.Fatalf("ParseNameRule(%q) = %v, %v", r, got, ok)
		}
	}
	if _, ok := ParseNameRule("strict"); ok || NameRule(9).String() != "invalid" {
		t.Fatal("unknown rule accepted")
	}
}

// A consumer appending to a sample's slices must not clobber the next sample.
func TestStatsD_CappedSlices(t *testing.T) {
	var p StatsD
	samples := p.Parse([]byte("a:1:2|ms|#k=v,l=w\nb:3|ms|#m=x"), now)
	if len(samples) != 2 {
		t.Fatalf("got %d samples", len(samples))
	}
	_ = append(samples[0].Values, 99)
	_ = append(samples[0].Tags, Tag{Key: []byte("zz")})
	_ = append(samples[0].Name, 'X')
	_ = append(samples[0].Tags[0].Value, 'X')
	if got := format(samples[1]); got != "b:3|ms|#m=x" {
		t.Fatalf("second sample clobbered: %q", got)
	}
	if got := format(samples[0]); got != "a:1:2|ms|#k=v,l=w" {
		t.Fatalf("first sample changed: %q", got)
	}
}

func TestReason(t *testing.T) {
	seen := map[string]bool{}
	for r := range NumReasons {
		name := r.String()
		if name == "" || name == "unknown" || seen[name] || strings.ToLower(name) != name {
			t.Fatalf("reason %d has name %q", r, name)
		}
		seen[name] = true
		if got, ok := ReasonOf(r.Err()); !ok || got != r {
			t.Fatalf("ReasonOf(%v) = %v, %v", r.Err(), got, ok)
		}
	}
	if NumReasons.String() != "unknown" || NumReasons.Err() != nil {
		t.Fatal("out of range reason")
	}
	if _, ok := ReasonOf(ErrSkipped); ok {
		t.Fatal("ErrSkipped has a reason")
	}
	if _, ok := ReasonOf(errors.New("parse: bad rate")); ok {
		t.Fatal("a foreign error has a reason")
	}
	if ErrBadRate.Error() != "parse: bad sample rate" || ReasonBadRate.String() != "bad_rate" {
		t.Fatal("bad_rate")
	}
}

func TestValidTagKey(t *testing.T) {
	f := func(key string, rule NameRule, want bool) {
		t.Helper()
		if got := ValidTagKey([]byte(key), rule); got != want {
			t.Fatalf("ValidTagKey(%q, %s) = %v, want %v", key, rule, got, want)
		}
	}
	f("env", RuleStatsD, true)
	f("k.é-1/x", RuleStatsD, true)
	f("1k", RuleStatsD, true)
	f("", RuleStatsD, false)
	f("a=b", RuleStatsD, false)
	f("a,b", RuleStatsD, false)
	f(`a\b`, RuleStatsD, false)
	f("a b", RuleStatsD, false)
	f("a:b", RuleStatsD, false)
	f("a\xff", RuleStatsD, false)
	f("env_1", RuleBucky3, true)
	f("k.x", RuleBucky3, false)
	f("1k", RuleSanitize, false)
}
