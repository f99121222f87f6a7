package parse

import (
	"bytes"
	"math"
	"strconv"
	"testing"
	"unicode/utf8"
)

func FuzzStatsD(f *testing.F) {
	f.Add([]byte("gorm:1.5|c\ngurm:1|c|@0.1"), false)
	f.Add([]byte(`foo:1|ms|#a:1,b=x\,y|T1700000000|c:abc|card:high`), true)
	// Around the limits of p below.
	f.Add([]byte("abcdefghijklmnop:1|c\nabcdefghijklmnopq:1|c\na.b.c.d.e.f.g.h.i:1|c"), true)
	f.Add([]byte(`t:1:2:3:4|ms`+"\n"+`t:1:2:3:4:5|ms`+"\n"+`g:+1:+2:+3:+4:+5|g`), false)
	f.Add([]byte(`x:1|c|#k=abcdefghijklmnopqrstuv,l=abcdefghijklmnopqrstuvw`+"\n"+`x:1|c|#k=\,\,\,\,\,\,\,\,\,\,\,\,`), false)
	f.Add([]byte(`x:1|c|c:0123456789ab`+"\n"+`x:1|c|c:0123456789abc`), false)
	p := StatsD{MaxTags: 8, MaxNameLength: 16, MaxTagLength: 24, MaxValuesPerLine: 4}
	q := StatsD{MaxTags: 10} // room for container_id and timestamp
	var buf, line []byte
	f.Fuzz(func(t *testing.T, packet []byte, sanitize bool) {
		// sanitize picks RuleSanitize; otherwise both other rules run.
		rules := []NameRule{RuleStatsD, RuleBucky3}
		if sanitize {
			rules = []NameRule{RuleSanitize}
		}
		for _, rule := range rules {
			p.NameRule = rule
			buf = append(buf[:0], packet...) // Parse may sanitize in place; the input is not ours
			samples := p.Parse(buf, now)
			if got := uint32(len(samples)) + rejected(p.Rejected) + p.Skipped; got != p.Lines {
				t.Fatalf("%d lines, but %d samples + %v rejected + %d skipped", p.Lines, len(samples), p.Rejected, p.Skipped)
			}
			for _, s := range samples {
				checkSample(t, s, p.MaxTags+1, rule)
				checkLimits(t, &p, s)
				// encode→parse round trip under RuleStatsD, which
				// accepts every name and key the other rules accept.
				line = appendLine(line[:0], s)
				var again Sample
				q.Reset()
				if err := q.ParseLine(line, now, &again); err != nil || !sameSample(s, again) {
					t.Fatalf("round trip of %q through %q: %v\n%q\n%q", packet, line, err, format(s), format(again))
				}
			}
		}
	})
}

// appendLine encodes s as a StatsD line that parses back to s.
func appendLine(dst []byte, s Sample) []byte {
	dst = append(dst, s.Name...)
	dst = append(dst, ':')
	dst = append(dst, s.SetMember...)
	for i, v := range s.Values {
		if i > 0 {
			dst = append(dst, ':')
		}
		if s.Delta && v >= 0 && !math.Signbit(v) {
			dst = append(dst, '+')
		}
		dst = strconv.AppendFloat(dst, v, 'g', -1, 64)
	}
	dst = append(dst, '|')
	dst = append(dst, s.Type.String()...)
	dst = append(dst, "|@"...)
	dst = strconv.AppendFloat(dst, s.Rate, 'g', -1, 64)
	dst = append(dst, "|#"...)
	for _, tag := range s.Tags {
		dst = append(dst, tag.Key...)
		dst = append(dst, '=')
		for _, c := range tag.Value {
			switch c {
			case '\n':
				dst = append(dst, `\n`...)
			case '\r':
				dst = append(dst, `\r`...)
			case '\t':
				dst = append(dst, `\t`...)
			case '\\', ',', '|', ' ', '\v', '\f':
				dst = append(dst, '\\', c)
			default:
				dst = append(dst, c)
			}
		}
		dst = append(dst, ',')
	}
	if s.Timestamp != 0 {
		dst = append(dst, "timestamp="...)
		dst = strconv.AppendInt(dst, s.Timestamp, 10)
	}
	return dst
}

func sameSample(a, b Sample) bool {
	if !bytes.Equal(a.Name, b.Name) || a.Type != b.Type || !bytes.Equal(a.SetMember, b.SetMember) ||
		a.Delta != b.Delta || a.Rate != b.Rate || a.Timestamp != b.Timestamp ||
		len(a.Values) != len(b.Values) || len(a.Tags) != len(b.Tags) {
		return false
	}
	for i := range a.Values {
		if math.Float64bits(a.Values[i]) != math.Float64bits(b.Values[i]) {
			return false
		}
	}
	for i := range a.Tags {
		if !bytes.Equal(a.Tags[i].Key, b.Tags[i].Key) || !bytes.Equal(a.Tags[i].Value, b.Tags[i].Value) {
			return false
		}
	}
	return true
}

func checkSample(t *testing.T, s Sample, maxTags int, rule NameRule) {
	t.Helper()
	validName := func(b []byte, key bool) bool {
		if rule == RuleStatsD {
			return validStatsDName(b, key)
		}
		return ValidName(b)
	}
	if !validName(s.Name, false) {
		t.Fatalf("bad name %q", s.Name)
	}
	if s.Type < Counter || s.Type > Distribution {
		t.Fatalf("%q: bad type %d", s.Name, s.Type)
	}
	if s.Type == Set {
		if len(s.Values) != 0 || len(s.SetMember) == 0 || !utf8.Valid(s.SetMember) {
			t.Fatalf("%q: bad set sample %v %q", s.Name, s.Values, s.SetMember)
		}
	} else {
		if len(s.Values) == 0 || cap(s.Values) != len(s.Values) || s.SetMember != nil {
			t.Fatalf("%q: bad values %v %q", s.Name, s.Values, s.SetMember)
		}
		for _, v := range s.Values {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("%q: non-finite value %v", s.Name, v)
			}
		}
	}
	if s.Delta && s.Type != Gauge {
		t.Fatalf("%q: delta %v", s.Name, s.Type)
	}
	if !(s.Rate > 0 && s.Rate <= 1) {
		t.Fatalf("%q: rate %v", s.Name, s.Rate)
	}
	if s.Timestamp != 0 && (s.Timestamp < now-600_000 || s.Timestamp > now+600_000) {
		t.Fatalf("%q: timestamp %d out of window", s.Name, s.Timestamp)
	}
	if len(s.Tags) > maxTags || cap(s.Tags) != len(s.Tags) {
		t.Fatalf("%q: %d tags, cap %d", s.Name, len(s.Tags), cap(s.Tags))
	}
	checkTags(t, s.Tags)
	for _, tag := range s.Tags {
		if !validName(tag.Key, true) || !utf8.Valid(tag.Value) || string(tag.Key) == "timestamp" {
			t.Fatalf("%q: bad tag %q=%q", s.Name, tag.Key, tag.Value)
		}
		if string(tag.Key) == "bucket" && !ValidName(tag.Value) {
			t.Fatalf("%q: bad bucket %q", s.Name, tag.Value)
		}
	}
}

// checkLimits fails unless s is within p's length limits. They count
// bytes as sent, which sanitizing and unescaping only shorten.
func checkLimits(t *testing.T, p *StatsD, s Sample) {
	t.Helper()
	if len(s.Name) > p.MaxNameLength || len(s.Values) > p.MaxValuesPerLine {
		t.Fatalf("%q: name of %d bytes, %d values", s.Name, len(s.Name), len(s.Values))
	}
	for _, tag := range s.Tags {
		if len(tag.Key)+len(tag.Value) > p.MaxTagLength {
			t.Fatalf("%q: tag %q=%q longer than %d", s.Name, tag.Key, tag.Value, p.MaxTagLength)
		}
	}
}

// checkTags fails unless tags are sorted by key with unique keys.
func checkTags(t *testing.T, tags []Tag) {
	t.Helper()
	for i := 1; i < len(tags); i++ {
		if bytes.Compare(tags[i-1].Key, tags[i].Key) >= 0 {
			t.Fatalf("tags not sorted and unique: %q before %q", tags[i-1].Key, tags[i].Key)
		}
	}
}

// FuzzCanonicalTags checks the sort and deduplication against a map: each
// input byte is a tag whose key is one of eight letters and whose value is
// its position, so the surviving value of a key must be its last position.
func FuzzCanonicalTags(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("abcabc"))
	f.Add([]byte("hgfedcba"))
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 64 {
			in = in[:64] // MaxTags bounds real lists
		}
		tags := make([]Tag, len(in))
		last := map[byte]byte{}
		for i, c := range in {
			k := 'a' + c%8
			tags[i] = Tag{Key: []byte{k}, Value: []byte{byte(i)}}
			last[k] = byte(i)
		}
		out := canonicalTags(tags)
		checkTags(t, out)
		if len(out) != len(last) {
			t.Fatalf("%d tags, want %d", len(out), len(last))
		}
		for _, tag := range out {
			if tag.Value[0] != last[tag.Key[0]] {
				t.Fatalf("key %q kept position %d, want the last, %d", tag.Key, tag.Value[0], last[tag.Key[0]])
			}
		}
	})
}

func FuzzJSON(f *testing.F) {
	f.Add([]byte(`{"a":1,"b":"x","c":true,"d":false,"e":null,"timestamp":1700000000}`))
	f.Add([]byte(`{"abcd":1,"b":2,"c":3,"d":4}` + "\n" + `{"a":1,"b":2,"c":3,"d":4,"e":5}` + "\n" + `{"a":1,"a":2,"a":3,"a":4,"a":5}`))
	f.Add([]byte(`{"abcde":1}` + "\n" + `{"\u00e9\u00e9":1,"timestamp":1700000000}`))
	j := JSON{MaxFields: 4, MaxKeyLength: 4}
	f.Fuzz(func(t *testing.T, packet []byte) {
		objects := j.Parse(packet, now)
		if got := uint32(len(objects)) + rejected(j.Rejected); got != j.Lines {
			t.Fatalf("%d lines, but %d objects + %v rejected", j.Lines, len(objects), j.Rejected)
		}
		for _, o := range objects {
			if len(o.Fields) == 0 || len(o.Fields) > j.MaxFields || cap(o.Fields) != len(o.Fields) {
				t.Fatalf("%d fields, cap %d", len(o.Fields), cap(o.Fields))
			}
			if o.Timestamp != 0 && (o.Timestamp < now-600_000 || o.Timestamp > now+600_000) {
				t.Fatalf("timestamp %d out of window", o.Timestamp)
			}
			for i, fl := range o.Fields {
				if i > 0 && bytes.Compare(o.Fields[i-1].Key, fl.Key) >= 0 {
					t.Fatalf("fields not sorted and unique: %q before %q", o.Fields[i-1].Key, fl.Key)
				}
				if string(fl.Key) == "timestamp" || len(fl.Key) > j.MaxKeyLength || !utf8.Valid(fl.Key) || !utf8.Valid(fl.Str) {
					t.Fatalf("bad field %q=%q", fl.Key, fl.Str)
				}
				if fl.Kind > KindBool || fl.Kind == KindNumber && (math.IsNaN(fl.Num) || math.IsInf(fl.Num, 0)) {
					t.Fatalf("bad field %q: kind %d num %v", fl.Key, fl.Kind, fl.Num)
				}
			}
		}
	})
}
