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
