package jsond_test

import (
	"bytes"
	"compress/zlib"
	"context"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bucky3/bucky3/collectors/jsond"
	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/engine/enginetest"
)

func run(t *testing.T, configure func(*jsond.Options), datagrams ...[]byte) ([]engine.Metric, *engine.Stats) {
	t.Helper()
	o := jsond.DefaultOptions()
	o.LocalHost = "127.0.0.1:0"
	o.Readers = 2
	o.FlushInterval = 3600
	if configure != nil {
		configure(&o)
	}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	stats := engine.NewStats()
	srv, err := jsond.New(engine.Module{Name: "jsond", Log: slog.New(slog.DiscardHandler), Stats: stats}, o)
	if err != nil {
		t.Fatal(err)
	}
	rec := &enginetest.Recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, rec) }()
	addr, err := srv.Addr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var lines uint64
	for _, d := range datagrams {
		if _, err := conn.Write(d); err != nil {
			t.Fatal(err)
		}
		lines++
	}
	deadline := time.Now().Add(10 * time.Second)
	for stats.Counter("lines_received").Load()+stats.Counter("packets_dropped").Load() < lines {
		if time.Now().After(deadline) {
			t.Fatal("datagrams not read")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	return rec.Metrics(), stats
}

func TestServer_Objects(t *testing.T) {
	now := time.Now()
	ms, stats := run(t, func(o *jsond.Options) { o.Bucket = "events" },
		[]byte(`{"level":"warn","took":12.5,"ok":true,"user":null}`),
		[]byte(`{"a":1,"timestamp":`+itoa(now.Unix()-5)+`}`),
		[]byte(`{"nested":{"a":1}}`),
		[]byte(`[1,2]`),
		[]byte(`{"a":1} {"b":2}`),
		[]byte(`{"a":1,"timestamp":12}`),
	)
	if len(ms) != 2 {
		t.Fatalf("want 2 metrics, got %+v", ms)
	}
	byFirst := map[string]engine.Metric{}
	for _, m := range ms {
		byFirst[m.Fields[0].Name] = m
	}
	m := byFirst["level"]
	if m.Bucket != "events" || len(m.Fields) != 4 {
		t.Fatalf("object with 4 fields: %+v", m)
	}
	if v, _ := m.Field("took"); v.Num != 12.5 {
		t.Fatalf("took: %+v", v)
	}
	if v, _ := m.Field("level"); v.Str != "warn" {
		t.Fatalf("level: %+v", v)
	}
	if v, _ := m.Field("ok"); v.Kind != engine.KindBool || !v.Bool {
		t.Fatalf("ok: %+v", v)
	}
	if v, _ := m.Field("user"); v.Kind != engine.KindNull {
		t.Fatalf("user: %+v", v)
	}
	if m.Timestamp < now.UnixMilli()-1000 {
		t.Fatalf("no timestamp key: receive time, got %d", m.Timestamp)
	}
	a := byFirst["a"]
	if a.Timestamp != (now.Unix()-5)*1000 || len(a.Fields) != 1 {
		t.Fatalf("timestamp key becomes the metric time and leaves the fields: %+v", a)
	}
	if got := stats.Counter("lines_invalid").Load(); got != 4 {
		t.Fatalf("lines_invalid = %d, want 4", got)
	}
	for _, reason := range []string{"nested", "not_object", "bad_json", "timestamp_out_of_window"} {
		if stats.Counter("lines_invalid_"+reason).Load() != 1 {
			t.Errorf("lines_invalid_%s = %d, want 1", reason, stats.Counter("lines_invalid_"+reason).Load())
		}
	}
}

func TestServer_CompressedByDefault(t *testing.T) {
	var buf bytes.Buffer
	w := zlib.NewWriter(&buf)
	if _, err := w.Write([]byte("{\"x\":1}\n{\"x\":2}\n")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	ms, _ := run(t, nil, buf.Bytes())
	if len(ms) != 2 {
		t.Fatalf("want 2 objects from one compressed datagram, got %+v", ms)
	}
}

func TestServer_BufferLimit(t *testing.T) {
	var lines []string
	for range 150 {
		lines = append(lines, `{"x":1}`)
	}
	ms, stats := run(t, func(o *jsond.Options) { o.BufferLimit = 100 }, []byte(strings.Join(lines, "\n")))
	if len(ms) != 100 || stats.Counter("metrics_dropped_buffer_full").Load() != 50 {
		t.Fatalf("kept %d, dropped %d; want 100 and 50", len(ms), stats.Counter("metrics_dropped_buffer_full").Load())
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// A 10k-field object is dropped alone, counted; the objects beside it in
// its datagram are kept. Compressed, as such an object outgrows a datagram.
func TestServer_MaxFields(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"before":1}` + "\n{")
	for i := range 10_000 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"` + strconv.FormatInt(int64(i), 36) + `":1`)
	}
	b.WriteString("}\n" + `{"after":1}` + "\n")
	var buf bytes.Buffer
	w := zlib.NewWriter(&buf)
	if _, err := w.Write([]byte(b.String())); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	ms, stats := run(t, nil, buf.Bytes())
	if len(ms) != 2 || ms[0].Fields[0].Name == ms[1].Fields[0].Name {
		t.Fatalf("want the objects before and after, got %+v", ms)
	}
	for name, want := range map[string]uint64{"lines_received": 3, "lines_invalid": 1, "lines_invalid_too_many_fields": 1} {
		if got := stats.Counter(name).Load(); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
}

func TestOptions_Validate(t *testing.T) {
	f := func(configure func(*jsond.Options), want string) {
		t.Helper()
		o := jsond.DefaultOptions()
		configure(&o)
		err := o.Validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("got %v, want an error mentioning %q", err, want)
		}
	}
	f(func(o *jsond.Options) { o.Bucket = "" }, "bucket")
	f(func(o *jsond.Options) { o.BufferLimit = 99 }, "buffer_limit: must be in [100, 100000000], got 99")
	f(func(o *jsond.Options) { o.BufferBytes = 1000 }, "buffer_bytes: must be in [1048576, 1099511627776], got 1000")
	f(func(o *jsond.Options) { o.MaxFields = 0 }, "max_fields: must be in [1, 65535], got 0")
	f(func(o *jsond.Options) { o.MaxKeyLength = 70000 }, "max_key_length: must be in [1, 65535], got 70000")
	f(func(o *jsond.Options) { o.TimestampWindow = 0 }, "timestamp_window: must be at least 0.001 s, got 0")
	f(func(o *jsond.Options) { o.BatchWait = 0.0001 }, "batch_wait: must be at least 0.001 s")
	f(func(o *jsond.Options) { o.LocalHost = "" }, "local_host")
	f(func(o *jsond.Options) { o.LocalSocket, o.OriginDetection = "/run/bucky3/jsond.sock", true },
		"origin_detection: not supported by jsond_server")
	f(func(o *jsond.Options) { o.LocalHost, o.LocalSocket, o.OriginDetection = "", "@jsond", true },
		"origin_detection: not supported by jsond_server")
	socket := jsond.DefaultOptions()
	socket.LocalSocket = "/run/bucky3/jsond.sock"
	if err := socket.Validate(); err != nil {
		t.Fatalf("local_socket without origin_detection: %v", err)
	}
	ok := jsond.DefaultOptions()
	ok.TimestampWindow, ok.BatchWait = 0.5, 0
	if err := ok.Validate(); err != nil {
		t.Fatalf("timestamp_window 0.5, batch_wait 0: %v", err)
	}
}
