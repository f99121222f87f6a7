package parse

import (
	"strconv"
	"strings"
	"testing"
)

// formatObject renders an object as key=value pairs, strings quoted, then
// @<timestamp ms> when it has one.
func formatObject(o Object) string {
	var parts []string
	for _, f := range o.Fields {
		v := "null"
		switch f.Kind {
		case KindNumber:
			v = strconv.FormatFloat(f.Num, 'g', -1, 64)
		case KindString:
			v = strconv.Quote(string(f.Str))
		case KindBool:
			v = strconv.FormatBool(f.Bool)
		}
		parts = append(parts, string(f.Key)+"="+v)
	}
	if o.Timestamp != 0 {
		parts = append(parts, "@"+strconv.FormatInt(o.Timestamp, 10))
	}
	return strings.Join(parts, " ")
}

func TestJSON_Success(t *testing.T) {
	var j JSON
	f := func(packet string, want ...string) {
		t.Helper()
		for range 2 { // the second Parse proves reuse
			var got []string
			for _, o := range j.Parse([]byte(packet), now) {
				got = append(got, formatObject(o))
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("Parse(%q):\ngot  %q\nwant %q", packet, got, want)
			}
			if n := rejected(j.Rejected); n != 0 {
				t.Fatalf("Parse(%q): %d lines rejected: %v", packet, n, j.Rejected)
			}
		}
	}
	f(`{"a":1,"b":"x","c":true,"d":false,"e":null}`, `a=1 b="x" c=true d=false e=null`)
	f(`{"b":1,"a":-2.5e3}`, `a=-2500 b=1`)
	f(`{"a":1,"a":"last"}`, `a="last"`)
	f(`{"msg":"he said \"hi\"\n\u00e9","k\u0065y":""}`, `key="" msg="he said \"hi\"\né"`)
	f(`  { "a" : 1 }  `, `a=1`)
	f(`{"a":1,"timestamp":1700000000}`, `a=1 @1700000000000`)
	f(`{"timestamp":1700000000123,"a":1}`, `a=1 @1700000000123`)
	f(`{"timestamp":1700000000.25,"a":1}`, `a=1 @1700000000250`)
	f("{\"a\":1}\r\n\n{\"b\":2}\n{\"c\":\"x\"}", `a=1`, `b=2`, `c="x"`)
	f("\n \n")
}

func TestJSON_Failure(t *testing.T) {
	var j JSON
	seen := map[Reason]bool{}
	f := func(line string, want Reason) {
		t.Helper()
		seen[want] = true
		for range 2 {
			objects := j.Parse([]byte(line+"\n{\"ok\":1}"), now)
			if len(objects) != 1 || formatObject(objects[0]) != "ok=1" {
				t.Fatalf("Parse(%q) = %d objects, want only ok=1", line, len(objects))
			}
			if j.Rejected[want] != 1 || rejected(j.Rejected) != 1 || j.Lines != 2 {
				t.Fatalf("Parse(%q) rejected %v, want one %s", line, j.Rejected, want)
			}
		}
	}
	f(`not json`, ReasonBadJSON)
	f(`{"a":1`, ReasonBadJSON)
	f(`{"a":1}{"b":2}`, ReasonBadJSON)
	f(`{"a":1},`, ReasonBadJSON)
	f(`{a:1}`, ReasonBadJSON)
	f(`[1]`, ReasonNotObject)
	f(`1`, ReasonNotObject)
	f(`"x"`, ReasonNotObject)
	f(`null`, ReasonNotObject)
	f(`{"a":{}}`, ReasonNested)
	f(`{"a":{"b":1}}`, ReasonNested)
	f(`{"a":[1]}`, ReasonNested)
	f(`{}`, ReasonEmpty)
	f(`{"timestamp":1700000000}`, ReasonEmpty)
	f(`{"a":NaN}`, ReasonBadValue)
	f(`{"a":-Inf}`, ReasonBadValue)
	f(`{"a":1e400}`, ReasonBadValue)
	f(`{"a":1,"timestamp":"1700000000"}`, ReasonBadTimestamp)
	f(`{"a":1,"timestamp":null}`, ReasonBadTimestamp)
	f(`{"a":1,"timestamp":1000}`, ReasonTimestampOutOfWindow)
	f(`{"a":1,"timestamp":1700000601}`, ReasonTimestampOutOfWindow)
	f("{\"a\":\"\xff\"}", ReasonBadUTF8)
	f("{\"\xff\":1}", ReasonBadUTF8)
	f(`{"`+strings.Repeat("k", 257)+`":1}`, ReasonKeyTooLong)
	f(manyFields(257), ReasonTooManyFields)
	f(manyFields(10_000), ReasonTooManyFields)

	// JSONReasons lists exactly the reasons seen above.
	for _, r := range JSONReasons() {
		if !seen[r] {
			t.Errorf("JSONReasons lists %s, which no case above gives", r)
		}
		delete(seen, r)
	}
	for r := range seen {
		t.Errorf("JSONReasons misses %s", r)
	}
}

// manyFields returns an object of n distinct numeric fields.
func manyFields(n int) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"f` + strconv.Itoa(i) + `":1`)
	}
	b.WriteByte('}')
	return b.String()
}

// The limits are inclusive; the timestamp key is not a field, repeated
// keys are each a field as sent.
func TestJSON_Limits(t *testing.T) {
	f := func(j *JSON, line string, ok bool, reason Reason) {
		t.Helper()
		for range 2 {
			objects := j.Parse([]byte(line), now)
			if got := len(objects) == 1; got != ok || !ok && j.Rejected[reason] != 1 {
				t.Fatalf("Parse(%.40q…) accepted=%v, want %v (%v)", line, got, ok, j.Rejected)
			}
		}
	}
	def := &JSON{}
	f(def, manyFields(256), true, 0)
	f(def, manyFields(257), false, ReasonTooManyFields)
	f(def, `{"`+strings.Repeat("k", 256)+`":1}`, true, 0)
	few := &JSON{MaxFields: 2, MaxKeyLength: 3}
	f(few, `{"a":1,"b":2,"timestamp":1700000000}`, true, 0)
	f(few, `{"a":1,"b":2,"c":3}`, false, ReasonTooManyFields)
	f(few, `{"a":1,"a":2,"a":3}`, false, ReasonTooManyFields)
	f(few, `{"abc":1}`, true, 0)
	f(few, `{"abcd":1}`, false, ReasonKeyTooLong)
	f(few, `{"aé":1}`, true, 0) // 3 bytes unescaped
	half := &JSON{TimestampWindow: 0.5}
	f(half, `{"a":1,"timestamp":1700000000499}`, true, 0)
	f(half, `{"a":1,"timestamp":1700000000501}`, false, ReasonTimestampOutOfWindow)
}

func TestJSON_Window(t *testing.T) {
	j := JSON{TimestampWindow: 10}
	for _, c := range []struct {
		line string
		ok   bool
	}{
		{`{"a":1,"timestamp":1700000010}`, true},
		{`{"a":1,"timestamp":1700000011}`, false},
		{`{"a":1,"timestamp":1699999990000}`, true},
		{`{"a":1,"timestamp":1699999989999}`, false},
	} {
		got := len(j.Parse([]byte(c.line), now)) == 1
		if got != c.ok || (!got && j.Rejected[ReasonTimestampOutOfWindow] != 1) {
			t.Fatalf("Parse(%q) accepted=%v, want %v (%v)", c.line, got, c.ok, j.Rejected)
		}
	}
}

// Views of one line must survive the parsing of the next ones, although
// fastjson reuses its buffer per line.
func TestJSON_ViewsSurviveLines(t *testing.T) {
	var j JSON
	packet := `{"key":"` + strings.Repeat("x", 100) + `"}` + "\n" + strings.Repeat(`{"other":"`+strings.Repeat("y", 1000)+`"}`+"\n", 50)
	objects := j.Parse([]byte(packet), now)
	if len(objects) != 51 {
		t.Fatalf("got %d objects", len(objects))
	}
	if got := formatObject(objects[0]); got != `key="`+strings.Repeat("x", 100)+`"` {
		t.Fatalf("first object clobbered: %q", got)
	}
}
