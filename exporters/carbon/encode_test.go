package carbon

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

func tag(k, v string) engine.Tag { return engine.Tag{Key: k, Value: v} }

const now = 1700000100

func TestAppendLines_Success(t *testing.T) {
	var buf []byte
	f := func(m engine.Metric, mapping []string, want ...string) {
		t.Helper()
		for range 2 { // the same buffer twice: reuse leaves nothing behind
			buf = AppendLines(buf[:0], &m, mapping, now)
			if got := string(buf); got != strings.Join(want, "") {
				t.Fatalf("AppendLines(%+v, %q)\n got %q\nwant %q", m, mapping, got, strings.Join(want, ""))
			}
		}
	}
	cpu := engine.Metric{Bucket: "system_cpu", Tags: []engine.Tag{tag("cpu", "0"), tag("host", "web1")},
		Fields: []engine.Field{num("user", 1.5), num("idle", 98)}, Timestamp: 1700000000999}
	f(cpu, nil, "system_cpu.0.web1.user 1.5 1700000000\n", "system_cpu.0.web1.idle 98 1700000000\n")
	f(cpu, []string{"bucket", "host"}, "system_cpu.web1.0.user 1.5 1700000000\n", "system_cpu.web1.0.idle 98 1700000000\n")
	f(cpu, []string{"host", "missing", "value", "bucket"}, "web1.user.system_cpu.0 1.5 1700000000\n", "web1.idle.system_cpu.0 98 1700000000\n")
	// Keys sorting after "value" and between "bucket" and "value".
	f(engine.Metric{Bucket: "b", Tags: []engine.Tag{tag("a", "1"), tag("c", "2"), tag("z", "3")}, Fields: []engine.Field{num("v", 1)}, Timestamp: 1e12},
		nil, "1.b.2.v.3 1 1000000000\n")
	// Sanitised values, empty ones skipped, reserved keys beat tags.
	f(engine.Metric{Bucket: "a.b/c", Tags: []engine.Tag{tag("bucket", "x"), tag("e", ""), tag("h", "*[x] y\tz"), tag("value", "y")}, Fields: []engine.Field{num("f.g", 2)}},
		[]string{"bucket"}, "a.b_c.__x__y_z.f_g 2 1700000100\n")
	// A StatsD name's dots are path separators (empty parts skipped);
	// carbon's tag separator and Graphite's glob characters are not kept.
	f(engine.Metric{Bucket: "stats_counters", Tags: []engine.Tag{tag("name", ".api..get;x=1."), tag("z", "a{b,c}")}, Fields: []engine.Field{num("count", 2)}},
		[]string{"bucket", "name"}, "stats_counters.api.get_x=1.count.a_b_c_ 2 1700000100\n")
	// No timestamp and a future one both become now; booleans are numbers.
	f(engine.Metric{Bucket: "m", Fields: []engine.Field{{Name: "up", Value: engine.Bool(true)}}, Timestamp: (now + 5) * 1000},
		nil, "m.up 1 1700000100\n")
	f(engine.Metric{Bucket: "m", Fields: []engine.Field{num("v", 1e-7), num("w", 1e21), {Name: "s", Value: engine.String("x")}, num("n", math.NaN())}},
		nil, "m.v 1e-07 1700000100\n", "m.w 1e+21 1700000100\n")
}

// The lines of a metric's fields share one path but for the field's
// component: wherever the mapping or the tags put it, whatever the
// neighbouring components, however many fields there are, each line must
// be the one a metric of that field alone gets.
func TestAppendLines_FieldsSharePath(t *testing.T) {
	fields := []engine.Field{
		{Name: "s", Value: engine.String("skipped")}, num("count", 1), num("", 2), num("a.b", 3), num("", 4), num("mean*", 5),
	}
	tagSets := [][]engine.Tag{
		nil,
		{tag("a", "1"), tag("name", "n.x"), tag("z", "")},
		{tag("bucket", "x"), tag("c", "y"), tag("value", "v"), tag("w", "2")},
	}
	mappings := [][]string{nil, {"value"}, {"bucket", "value", "name"}, {"name", "bucket"}, {"value", "value"}, {"z", "value", "c"}}
	for _, bucket := range []string{"", "stats"} {
		for _, tags := range tagSets {
			for _, mapping := range mappings {
				for n := 1; n <= len(fields); n++ {
					for first := 0; first+n <= len(fields); first++ {
						m := engine.Metric{Bucket: bucket, Tags: tags, Fields: fields[first : first+n], Timestamp: 1e12}
						var want []byte
						for _, f := range m.Fields {
							alone := m
							alone.Fields = []engine.Field{f}
							want = AppendLines(want, &alone, mapping, now)
						}
						if got := AppendLines([]byte("x"), &m, mapping, now); string(got[1:]) != string(want) {
							t.Fatalf("AppendLines(%+v, %q)\n got %q\nwant %q", m, mapping, got[1:], want)
						}
					}
				}
			}
		}
	}
}

func TestAppendLines_Failure(t *testing.T) {
	f := func(m engine.Metric) {
		t.Helper()
		if got := AppendLines([]byte("kept"), &m, nil, now); string(got) != "kept" {
			t.Fatalf("AppendLines(%+v) wrote %q, want nothing", m, got[4:])
		}
	}
	f(engine.Metric{Bucket: "m"})
	f(engine.Metric{Bucket: "m", Fields: []engine.Field{{Name: "s", Value: engine.String("x")}, {Name: "n", Value: engine.Null()}, num("i", math.Inf(1))}})
	f(engine.Metric{Fields: []engine.Field{num("", 1)}})
}

var goldenMetrics = []engine.Metric{
	{Bucket: "stats_counters", Tags: []engine.Tag{tag("env", "prod"), tag("name", "api.requests")}, Fields: []engine.Field{num("count", 42), num("rate", 4.2)}, Timestamp: 1700000000000},
	{Bucket: "system_filesystem", Tags: []engine.Tag{tag("host", "web-1"), tag("name", "/var/lib")}, Fields: []engine.Field{num("free_bytes", 123456789), num("free_inodes", 1000)}, Timestamp: 1700000000500},
	{Bucket: "docker", Tags: []engine.Tag{tag("image", "nginx:1.25"), tag("name", "web 1")}, Fields: []engine.Field{num("cpu", 0.25), {Name: "running", Value: engine.Bool(true)}}},
}

func TestAppendLines_Golden(t *testing.T) {
	var out []byte
	for _, mapping := range [][]string{{"bucket"}, {"env", "host", "bucket", "name", "value"}} {
		for i := range goldenMetrics {
			out = AppendLines(out, &goldenMetrics[i], mapping, now)
		}
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

func FuzzAppendLines(f *testing.F) {
	f.Add("system_cpu", "host", "web.1", "user", 1.5, int64(1700000000000), "host")
	f.Add("a b", "value", "*[x]/y", "f\nx", math.Inf(1), int64(now*1000+1), "value")
	f.Add("", "", "", "", math.Copysign(0, -1), int64(-5), "")
	f.Fuzz(func(t *testing.T, bucket, tagKey, tagValue, field string, v float64, ts int64, mapped string) {
		m := engine.Metric{Bucket: bucket, Tags: []engine.Tag{tag(tagKey, tagValue)}, Fields: []engine.Field{num(field, v)}, Timestamp: ts}
		out := string(AppendLines(nil, &m, []string{mapped}, now))
		if out == "" {
			return
		}
		if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
			t.Fatalf("output %q: want exactly one line", out)
		}
		parts := strings.Split(strings.TrimSuffix(out, "\n"), " ")
		if len(parts) != 3 {
			t.Fatalf("line %q: %d space-separated parts, want 3", out, len(parts))
		}
		path := parts[0]
		if strings.ContainsAny(path, "/*[] \t\r\v\f") || strings.HasPrefix(path, ".") || strings.HasSuffix(path, ".") || strings.Contains(path, "..") {
			t.Fatalf("line %q: bad path %q", out, path)
		}
		if parts[2] > "1700000100" && len(parts[2]) == len("1700000100") {
			t.Fatalf("line %q: timestamp after now", out)
		}
	})
}
