package elasticsearch

import (
	"bytes"
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bucky3/bucky3/engine"
	"github.com/google/uuid"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func num(name string, f float64) engine.Field {
	return engine.Field{Name: name, Value: engine.Number(f)}
}

func tag(k, v string) engine.Tag { return engine.Tag{Key: k, Value: v} }

var now = time.Date(2024, 2, 29, 23, 59, 58, 0, time.UTC)

// splitAction checks the two-line shape of an action and the _id, and
// returns the _index and the document.
func splitAction(t testing.TB, out []byte) (index, doc string) {
	t.Helper()
	lines := strings.Split(string(out), "\n")
	if len(lines) != 3 || lines[2] != "" {
		t.Fatalf("action %q: want two newline-terminated lines", out)
	}
	var action struct {
		Index struct {
			Index string `json:"_index"`
			ID    string `json:"_id"`
		} `json:"index"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &action); err != nil {
		t.Fatalf("action line %q: %v", lines[0], err)
	}
	if !json.Valid([]byte(lines[1])) {
		t.Fatalf("document %q is not valid JSON", lines[1])
	}
	if want := uuid.NewSHA1(uuid.NameSpaceDNS, []byte(lines[1])).String(); action.Index.ID != want {
		t.Fatalf("_id %s, want %s (UUIDv5 of the document)", action.Index.ID, want)
	}
	return action.Index.Index, lines[1]
}

func TestAppendAction_Success(t *testing.T) {
	var buf []byte
	f := func(e *Encoder, m engine.Metric, wantIndex, wantDoc string) {
		t.Helper()
		for range 2 { // reuse of the encoder and buffer changes nothing
			buf = e.AppendAction(buf[:0], &m, now)
			index, doc := splitAction(t, buf)
			if index != wantIndex || doc != wantDoc {
				t.Fatalf("AppendAction(%+v)\n got %s %s\nwant %s %s", m, index, doc, wantIndex, wantDoc)
			}
		}
	}
	def := NewEncoder("", "timestamp", "bucket")
	f(def, engine.Metric{Bucket: "system_cpu", Tags: []engine.Tag{tag("host", "a")}, Fields: []engine.Field{num("user", 1.5), num("idle", 98)}, Timestamp: 1700000000123},
		"system_cpu", `{"bucket":"system_cpu","host":"a","idle":98,"timestamp":1700000000123,"user":1.5}`)
	// No timestamp: now. Fields beat tags of the same name; the bucket and
	// timestamp members beat both. Non-finite numbers are left out.
	f(def, engine.Metric{Bucket: "m", Tags: []engine.Tag{tag("bucket", "t"), tag("v", "tag")}, Fields: []engine.Field{num("v", 1), num("timestamp", 5), num("nan", math.NaN())}},
		"m", `{"bucket":"m","timestamp":1709251198000,"v":1}`)
	f(def, engine.Metric{Bucket: "logs", Fields: []engine.Field{{Name: "msg", Value: engine.String("a \"q\"\n\t\x01\xff é")}, {Name: "ok", Value: engine.Bool(false)}, {Name: "n", Value: engine.Null()}}, Timestamp: 1},
		"logs", `{"bucket":"logs","msg":"a \"q\"\n\t\u0001\ufffd é","n":null,"ok":false,"timestamp":1}`)
	f(NewEncoder("metrics-%Y.%m.%d-%H%%%j-%y-%q", "", ""), engine.Metric{Bucket: "m", Fields: []engine.Field{num("v", 1e21)}},
		"metrics-2024.02.29-23%060-24-%q", `{"v":1e+21}`)
	f(NewEncoder("static\"name", "@timestamp", ""), engine.Metric{Bucket: "m", Fields: []engine.Field{num("v", 1e-7)}, Timestamp: 86400000 * 365},
		`static"name`, `{"@timestamp":31536000000,"v":1e-07}`)
	f(NewEncoder("t-%H:%M:%S", "", "b"), engine.Metric{Bucket: "m", Timestamp: 3723000},
		"t-01:02:03", `{"b":"m"}`)
}

var goldenMetrics = []engine.Metric{
	{Bucket: "stats_counters", Tags: []engine.Tag{tag("env", "prod"), tag("name", "requests")}, Fields: []engine.Field{num("count", 42), num("rate", 4.2)}, Timestamp: 1700000000000},
	{Bucket: "system_cpu", Tags: []engine.Tag{tag("host", "web-1"), tag("name", "cpu0")}, Fields: []engine.Field{num("user", 1234), num("system", 567)}, Timestamp: 1700000000500},
	{Bucket: "logs", Tags: []engine.Tag{tag("unit", "nginx.service")}, Fields: []engine.Field{{Name: "message", Value: engine.String("GET /a?b=c \"ok\"")}, {Name: "ok", Value: engine.Bool(true)}}},
}

func TestAppendAction_Golden(t *testing.T) {
	var out []byte
	for _, e := range []*Encoder{NewEncoder("", "timestamp", "bucket"), NewEncoder("metrics-%Y-%m-%d", "@timestamp", "")} {
		for i := range goldenMetrics {
			out = e.AppendAction(out, &goldenMetrics[i], now)
		}
	}
	path := filepath.Join("testdata", "bulk.golden")
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

func FuzzAppendAction(f *testing.F) {
	f.Add("system_cpu", "host", "a", "user", "str", 1.5, int64(1700000000000), "metrics-%Y.%m.%d")
	f.Add("m\n\"", "v", "\xff", "v", "\x00\\", math.NaN(), int64(-1), "%")
	f.Add("", "", "", "", "", 0.0, int64(0), "%%%Q")
	f.Fuzz(func(t *testing.T, bucket, tagKey, tagValue, field, str string, n float64, ts int64, index string) {
		e := NewEncoder(index, "timestamp", "bucket")
		m := engine.Metric{Bucket: bucket, Tags: []engine.Tag{tag(tagKey, tagValue)},
			Fields: []engine.Field{num(field, n), {Name: field + "_s", Value: engine.String(str)}}, Timestamp: ts}
		_, doc := splitAction(t, e.AppendAction(nil, &m, now))
		var members map[string]any
		if err := json.Unmarshal([]byte(doc), &members); err != nil {
			t.Fatalf("document %q: %v", doc, err)
		}
		if _, ok := members["timestamp"]; !ok {
			t.Fatalf("document %q has no timestamp", doc)
		}
	})
}

// AppendIndex writes what AppendAction puts in _index; AppendActionIndex
// with it writes the same action, and with another name changes only _index.
func TestAppendActionIndex(t *testing.T) {
	e := NewEncoder(`m-"%Y"`, "timestamp", "bucket")
	m := engine.Metric{Bucket: "cpu", Fields: []engine.Field{num("v", 1)}}
	index := e.AppendIndex(nil, &m, now)
	if string(index) != `m-\"2024\"` {
		t.Fatalf("AppendIndex = %s", index)
	}
	want := e.AppendAction(nil, &m, now)
	if got := e.AppendActionIndex(nil, &m, now, index); !bytes.Equal(got, want) {
		t.Fatalf("AppendActionIndex with AppendIndex's name:\n%s\nwant\n%s", got, want)
	}
	got := e.AppendActionIndex(nil, &m, now, []byte("other"))
	gotIndex, gotDoc := splitAction(t, got)
	_, wantDoc := splitAction(t, want)
	if gotIndex != "other" || gotDoc != wantDoc {
		t.Fatalf("AppendActionIndex(other) = %s", got)
	}
}
