package influxdb

import (
	"bytes"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bucky3/bucky3/engine"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func num(name string, f float64) engine.Field {
	return engine.Field{Name: name, Value: engine.Number(f)}
}

func TestAppendLine_Success(t *testing.T) {
	var buf []byte
	f := func(m engine.Metric, want string) {
		t.Helper()
		// Encode twice into the same buffer to prove it is reused cleanly.
		for range 2 {
			buf = AppendLine(buf[:0], &m)
			if string(buf) != want+"\n" {
				t.Fatalf("AppendLine(%+v)\n got %q\nwant %q", m, buf, want+"\n")
			}
		}
	}
	f(engine.Metric{Bucket: "cpu", Fields: []engine.Field{num("user", 1.5)}}, "cpu user=1.5")
	f(engine.Metric{Bucket: "cpu", Fields: []engine.Field{num("n", 3)}, Timestamp: 1700000000123},
		"cpu n=3 1700000000123000000")
	f(engine.Metric{Bucket: "cpu", Tags: []engine.Tag{tag("cpu", "0"), tag("empty", ""), tag("host", "a")}, Fields: []engine.Field{num("v", -2)}},
		"cpu,cpu=0,host=a v=-2")
	f(engine.Metric{Bucket: "a b,c=d", Tags: []engine.Tag{tag("k ,=", "v ,=")}, Fields: []engine.Field{num("f ,=", 1)}},
		`a\ b\,c=d,k\ \,\==v\ \,\= f\ \,\==1`)
	f(engine.Metric{Bucket: "m", Fields: []engine.Field{{Name: "s", Value: engine.String(`say "hi" \o/`)}}},
		`m s="say \"hi\" \\o/"`)
	f(engine.Metric{Bucket: "m", Fields: []engine.Field{{Name: "s", Value: engine.String("two\nlines")}}},
		`m s="two\nlines"`)
	f(engine.Metric{Bucket: "m\n", Tags: []engine.Tag{tag("k", "a\nb")}, Fields: []engine.Field{num("v", 1)}},
		`m\n,k=a\nb v=1`)
	f(engine.Metric{Bucket: `m\`, Tags: []engine.Tag{tag(`k\`, `a\b\`)}, Fields: []engine.Field{num(`v\,`, 1)}},
		`m\\,k\\=a\b\\ v\\\,=1`)
	f(engine.Metric{Bucket: "m", Fields: []engine.Field{
		{Name: "t", Value: engine.Bool(true)}, {Name: "f", Value: engine.Bool(false)},
		{Name: "null", Value: engine.Null()}, num("nan", math.NaN()), num("inf", math.Inf(-1)), num("z", 0),
	}}, "m t=true,f=false,z=0")
	f(engine.Metric{Bucket: "m", Fields: []engine.Field{num("big", 1e21), num("small", 1e-7), num("mid", 1234567.25)}},
		"m big=1e+21,small=1e-07,mid=1234567.25")
	f(engine.Metric{Bucket: "m", Tags: []engine.Tag{tag("time", "x")}, Fields: []engine.Field{num("time", 1), num("v", 1), num("", 2)}},
		"m v=1")
}

func TestAppendLine_Failure(t *testing.T) {
	f := func(m engine.Metric) {
		t.Helper()
		dst := []byte("kept\n")
		if got := AppendLine(dst, &m); string(got) != "kept\n" {
			t.Fatalf("AppendLine(%+v) wrote %q, want nothing", m, got[5:])
		}
	}
	f(engine.Metric{Bucket: "m"})
	f(engine.Metric{Bucket: "m", Tags: []engine.Tag{tag("host", "a")}, Fields: []engine.Field{num("nan", math.NaN())}})
	f(engine.Metric{Bucket: "m", Fields: []engine.Field{{Name: "n", Value: engine.Null()}, num("inf", math.Inf(1))}})
	f(engine.Metric{Bucket: "", Fields: []engine.Field{num("v", 1)}})
}

// goldenMetrics is a representative mix: what statsd, linux_stats and the
// JSON sources produce.
var goldenMetrics = []engine.Metric{
	{Bucket: "stats_counters", Tags: []engine.Tag{tag("env", "prod"), tag("name", "requests")}, Fields: []engine.Field{num("count", 42), num("rate", 4.2)}, Timestamp: 1700000000000},
	{Bucket: "stats_timers", Tags: []engine.Tag{tag("name", "db query")}, Fields: []engine.Field{num("count", 3), num("lower", 0.25), num("upper", 12.5), num("mean", 4.3333333333333)}, Timestamp: 1700000000000},
	{Bucket: "system_cpu", Tags: []engine.Tag{tag("host", "web-1"), tag("name", "cpu0")}, Fields: []engine.Field{num("user", 1234), num("system", 567), num("idle", 98765)}, Timestamp: 1700000000500},
	{Bucket: "logs", Tags: []engine.Tag{tag("unit", "nginx.service")}, Fields: []engine.Field{{Name: "message", Value: engine.String("GET /a?b=c \"ok\"")}, {Name: "ok", Value: engine.Bool(true)}}},
}

func TestAppendLine_Golden(t *testing.T) {
	var out []byte
	for i := range goldenMetrics {
		out = AppendLine(out, &goldenMetrics[i])
	}
	path := filepath.Join("testdata", "lines.golden")
	if *update {
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, want) {
		t.Fatalf("output differs from %s (run with -update to accept):\n%s", path, out)
	}
}

// parseLine splits a line the way InfluxDB 1.x scans it: a backslash takes
// the next byte with it, quotes delimit string fields. It returns the
// unescaped measurement, tags and fields, and the timestamp text.
func parseLine(t *testing.T, line string) (measurement string, tags, fields [][2]string, ts string) {
	t.Helper()
	// Sections are separated by unescaped spaces; in the field section a
	// quote right after '=' opens a string value, which the next unescaped
	// quote closes.
	var sections []string
	start, quoted := 0, false
	for i := 0; i < len(line); i++ {
		switch {
		case line[i] == '\\':
			i++
		case line[i] == '"' && len(sections) > 0 && (quoted || line[i-1] == '='):
			quoted = !quoted
		case line[i] == ' ' && !quoted:
			sections = append(sections, line[start:i])
			start = i + 1
		}
	}
	sections = append(sections, line[start:])
	if quoted || len(sections) < 2 || len(sections) > 3 {
		t.Fatalf("line %q: %d sections (quoted %v)", line, len(sections), quoted)
	}
	key := splitUnescaped(sections[0], ',', false)
	measurement = unescape(key[0], ", ")
	for _, kv := range key[1:] {
		p := splitUnescaped(kv, '=', false)
		if len(p) != 2 || p[0] == "" || p[1] == "" {
			t.Fatalf("line %q: bad tag %q", line, kv)
		}
		tags = append(tags, [2]string{unescape(p[0], ",= "), unescape(p[1], ",= ")})
	}
	for _, kv := range splitUnescaped(sections[1], ',', true) {
		p := splitUnescaped(kv, '=', true)
		if len(p) != 2 || p[0] == "" || p[1] == "" {
			t.Fatalf("line %q: bad field %q", line, kv)
		}
		v := p[1]
		if v[0] == '"' {
			v = strings.NewReplacer(`\"`, `"`, `\\`, `\`).Replace(v[1 : len(v)-1])
		}
		fields = append(fields, [2]string{unescape(p[0], ",= \""), v})
	}
	if len(sections) == 3 {
		ts = sections[2]
	}
	return measurement, tags, fields, ts
}

// splitUnescaped splits s at sep bytes that are neither escaped nor inside
// a string value.
func splitUnescaped(s string, sep byte, stringValues bool) []string {
	var parts []string
	start, quoted := 0, false
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\':
			i++
		case stringValues && s[i] == '"' && (quoted || i > 0 && s[i-1] == '='):
			quoted = !quoted
		case s[i] == sep && !quoted:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

func unescape(s, specials string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && strings.IndexByte(specials, s[i+1]) >= 0 {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func TestAppendLine_ParsesBack(t *testing.T) {
	m := engine.Metric{Bucket: "a b,c", Tags: []engine.Tag{tag("k=1", "v 1,2"), tag("z", "y")},
		Fields: []engine.Field{num("f,1", 2.5), {Name: "s", Value: engine.String(`q"u\o`)}}, Timestamp: 5}
	meas, tags, fields, ts := parseLine(t, strings.TrimSuffix(string(AppendLine(nil, &m)), "\n"))
	if meas != m.Bucket || len(tags) != 2 || tags[0] != [2]string{"k=1", "v 1,2"} || tags[1] != [2]string{"z", "y"} ||
		len(fields) != 2 || fields[0] != [2]string{"f,1", "2.5"} || fields[1] != [2]string{"s", `q"u\o`} || ts != "5000000" {
		t.Fatalf("parsed back %q %q %q %q", meas, tags, fields, ts)
	}
}

func FuzzAppendLine(f *testing.F) {
	f.Add("cpu", "host", "a b", "user", "str", 1.5, int64(1700000000000))
	f.Add(`m\`, `k\`, `v,=\`, `f\`, "\"q\\\n", math.Inf(1), int64(0))
	f.Add("m\n", "k\n", "\r", "f\n", "", math.Copysign(0, -1), int64(-1))
	f.Fuzz(func(t *testing.T, bucket, tagKey, tagValue, field, str string, n float64, ts int64) {
		m := engine.Metric{Bucket: bucket, Tags: []engine.Tag{tag(tagKey, tagValue)},
			Fields: []engine.Field{num(field, n), {Name: field + "_s", Value: engine.String(str)}}, Timestamp: ts}
		out := AppendLine(nil, &m)
		if len(out) == 0 {
			return
		}
		line := string(out)
		if strings.IndexByte(line, '\n') != len(line)-1 {
			t.Fatalf("line %q: newline inside", line)
		}
		meas, tags, fields, _ := parseLine(t, line[:len(line)-1])
		wantTags := 0
		if tagKey != "" && tagValue != "" && tagKey != "time" {
			wantTags = 1
		}
		if len(tags) != wantTags || len(fields) == 0 {
			t.Fatalf("line %q: %d tags, %d fields; want %d tags", line, len(tags), len(fields), wantTags)
		}
		// Without backslashes and newlines the encoding is lossless.
		if !strings.ContainsAny(bucket+tagKey+tagValue+field+str, "\\\n\r") {
			if meas != bucket || wantTags == 1 && tags[0] != [2]string{tagKey, tagValue} {
				t.Fatalf("line %q parsed back as %q %q", line, meas, tags)
			}
			last := fields[len(fields)-1]
			if last != [2]string{field + "_s", str} {
				t.Fatalf("line %q: string field parsed back as %q", line, last)
			}
		}
	})
}

func tag(k, v string) engine.Tag { return engine.Tag{Key: k, Value: v} }
