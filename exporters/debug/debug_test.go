package debug

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"strings"
	"testing"

	"github.com/bucky3/bucky3/engine"
)

func TestAppendMetric(t *testing.T) {
	f := func(source string, m engine.Metric, want string) {
		t.Helper()
		if got := string(AppendMetric(nil, source, &m)); got != want {
			t.Errorf("AppendMetric(%+v) =\n%s\nwant\n%s", m, got, want)
		}
	}
	f("linux", engine.Metric{
		Bucket:    "system_cpu",
		Timestamp: 1700000000123,
		Fields: []engine.Field{
			{Name: "idle", Value: engine.Number(97.5)},
			{Name: "user", Value: engine.Number(1.25)},
		},
		Tags: []engine.Tag{{Key: "cpu", Value: "cpu0"}, {Key: "host", Value: "web1"}},
	}, "system_cpu 2023-11-14T22:13:20.123Z (from linux)\n"+
		"  fields: idle=97.5 user=1.25\n"+
		"  tags:   cpu=\"cpu0\" host=\"web1\"\n")
	f("", engine.Metric{
		Bucket: "logs",
		Fields: []engine.Field{
			{Name: "message", Value: engine.String("line one\nline \"two\"")},
			{Name: "ok", Value: engine.Bool(true)},
			{Name: "none", Value: engine.Null()},
			{Name: "inf", Value: engine.Number(math.Inf(1))},
		},
	}, "logs -\n"+
		"  fields: message=\"line one\\nline \\\"two\\\"\" ok=true none=null inf=+Inf\n"+
		"  tags:   -\n")
	// Names that could be misread are quoted.
	f("", engine.Metric{
		Bucket: "a b",
		Fields: []engine.Field{{Name: "x=y", Value: engine.Number(1)}},
		Tags:   []engine.Tag{{Key: "", Value: ""}, {Key: "k\n", Value: "\xff"}},
	}, "\"a b\" -\n"+
		"  fields: \"x=y\"=1\n"+
		"  tags:   \"\"=\"\" \"k\\n\"=\"\\xff\"\n")
}

func FuzzAppendMetric(f *testing.F) {
	f.Add("system_cpu", "idle", "host", "web1", "linux", int64(1700000000123))
	f.Add("a b\n", "x=y", "k\n", "\xff", "", int64(0))
	f.Add("", "", "", "", "\"", int64(-1))
	f.Fuzz(func(t *testing.T, bucket, field, key, value, source string, ts int64) {
		m := engine.Metric{
			Bucket:    bucket,
			Timestamp: ts,
			Fields:    []engine.Field{{Name: field, Value: engine.String(value)}},
			Tags:      []engine.Tag{{Key: key, Value: value}},
		}
		out := string(AppendMetric(nil, source, &m))
		// Whatever the strings hold, a metric is one three-line block.
		if n := strings.Count(out, "\n"); n != 3 || !strings.HasSuffix(out, "\n") {
			t.Errorf("%d lines, want 3:\n%s", n, out)
		}
	})
}

// module is what the supervisor hands New: a logger and stats are always set.
func module(stats *engine.Stats) engine.Module {
	return engine.Module{Name: "dbg", Type: "debug_output", Log: slog.New(slog.DiscardHandler), Stats: stats}
}

func TestRun(t *testing.T) {
	stats := engine.NewStats()
	d, err := New(module(stats), DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	d.W = &buf
	in := make(chan *engine.Batch, 2)
	in <- &engine.Batch{Source: "s", Metrics: []engine.Metric{
		{Bucket: "a", Fields: []engine.Field{{Name: "v", Value: engine.Number(1)}}},
		{Bucket: "b", Fields: []engine.Field{{Name: "v", Value: engine.Number(2)}}},
	}}
	in <- &engine.Batch{Source: "s", Metrics: []engine.Metric{
		{Bucket: "c", Fields: []engine.Field{{Name: "v", Value: engine.Number(3)}}},
	}}
	close(in)
	if err := d.Run(context.Background(), in); err != nil {
		t.Fatalf("Run = %v, want nil after the inbox closed", err)
	}
	want := "a - (from s)\n  fields: v=1\n  tags:   -\n" +
		"b - (from s)\n  fields: v=2\n  tags:   -\n" +
		"c - (from s)\n  fields: v=3\n  tags:   -\n"
	if got := buf.String(); got != want {
		t.Errorf("output =\n%s\nwant\n%s", got, want)
	}
	if n := stats.Counter("metrics_received").Load(); n != 3 {
		t.Errorf("metrics_received = %d, want 3", n)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestRunCountsWriteErrors(t *testing.T) {
	stats := engine.NewStats()
	d, err := New(module(stats), DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	d.W = failingWriter{}
	in := make(chan *engine.Batch, 1)
	in <- &engine.Batch{Metrics: []engine.Metric{{Bucket: "a"}}}
	close(in)
	if err := d.Run(context.Background(), in); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	if n := stats.FlushErrors.Load(); n != 1 {
		t.Errorf("flush_errors = %d, want 1", n)
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	d, err := New(module(engine.NewStats()), DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := d.Run(ctx, make(chan *engine.Batch)); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
}

// The registry validates the options once, before New: the common ones
// (flush_interval) included.
func TestOptionsValidate(t *testing.T) {
	o := DefaultOptions()
	if err := o.Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	types := []engine.Type{engine.DestinationType("debug_output", DefaultOptions, New)}
	noEnv := func(string) (string, bool) { return "", false }
	if _, err := engine.Parse([]byte("[d]\nmodule_type = \"debug_output\"\n"), types, noEnv); err != nil {
		t.Errorf("defaults through the registry: %v", err)
	}
	_, err := engine.Parse([]byte("[d]\nmodule_type = \"debug_output\"\nflush_interval = -1\n"), types, noEnv)
	if err == nil || !strings.Contains(err.Error(), "flush_interval:") {
		t.Errorf("flush_interval = -1 through the registry: %v, want a flush_interval error", err)
	}
}
