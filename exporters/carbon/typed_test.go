package carbon

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/internal/backendtest"
)

// typedMetrics are one of each typed kind statsd_server's typed layout
// emits.
func typedMetrics(ts int64) []engine.Metric {
	tags := []engine.Tag{{Key: "host", Value: "a"}}
	typed := func(bucket string, v engine.Value) engine.Metric {
		return engine.Metric{Bucket: bucket, Fields: []engine.Field{{Name: "value", Value: v}}, Tags: tags, Timestamp: ts}
	}
	return []engine.Metric{
		typed("hits", engine.CounterIncrease(3)),
		typed("level", engine.Value{Kind: engine.KindGaugeDelta, Num: -2.5}),
		typed("rt", engine.Value{Kind: engine.KindHistogram, Dist: &engine.Distribution{
			Count: 4, Sum: 1.75, Bounds: []float64{0.005, 0.5, 1}, Counts: []uint64{1, 1, 0, 2}}}),
		typed("size", engine.Value{Kind: engine.KindSummary, Dist: &engine.Distribution{
			Count: 5, Sum: 15, Samples: []float64{5, 1, 4, 2, 3}}}),
		typed("bad", engine.CounterIncrease(math.Inf(1))),
	}
}

func TestAppendLines_Typed(t *testing.T) {
	want := []string{
		"hits.a.value 3 1\n",
		"level.a.value -2.5 1\n",
		"rt.a.count 4 1\nrt.a.sum 1.75 1\nrt.a.le_0_005 1 1\nrt.a.le_0_5 2 1\nrt.a.le_1 2 1\nrt.a.le_inf 4 1\n",
		"size.a.count 5 1\nsize.a.sum 15 1\nsize.a.p50 3 1\nsize.a.p90 5 1\nsize.a.p99 5 1\n",
		"",
	}
	var fl engine.Flattener
	for i, m := range typedMetrics(1000) {
		if got := string(AppendLines(nil, &m, []string{"bucket"}, 2)); got != want[i] {
			t.Errorf("AppendLines(%s)\n got %q\nwant %q", m.Bucket, got, want[i])
		}
		if got := string(AppendLinesFlat(nil, &m, []string{"bucket"}, 2, &fl)); got != want[i] {
			t.Errorf("AppendLinesFlat(%s)\n got %q\nwant %q", m.Bucket, got, want[i])
		}
	}
}

func TestClient_CarbonTyped(t *testing.T) {
	srv := backendtest.StartCarbon(t)
	o := DefaultOptions()
	o.RemoteHosts = []string{srv.Addr}
	o.NameMapping = []string{"bucket"}
	in, stats, stop := run(t, o)
	now := time.Now()
	in <- &engine.Batch{Metrics: typedMetrics(now.UnixMilli())}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if sent, noFields := stats.Counter("metrics_sent").Load(), stats.Counter("metrics_dropped_no_fields").Load(); sent != 4 || noFields != 1 {
		t.Fatalf("metrics_sent = %d, metrics_dropped_no_fields = %d, want 4 and 1", sent, noFields)
	}
	want := map[string]float64{
		"hits.a.value": 3, "level.a.value": -2.5,
		"rt.a.count": 4, "rt.a.sum": 1.75, "rt.a.le_0_005": 1, "rt.a.le_0_5": 2, "rt.a.le_1": 2, "rt.a.le_inf": 4,
		"size.a.count": 5, "size.a.sum": 15, "size.a.p50": 3, "size.a.p90": 5, "size.a.p99": 5,
	}
	var bad []string
	for path, v := range want {
		if p := srv.WaitFor(t, path, 15*time.Second); len(p) != 1 || p[0].Value != v {
			bad = append(bad, fmt.Sprintf("%s = %v, want %v", path, p, v))
		}
	}
	if len(bad) > 0 {
		t.Fatal(strings.Join(bad, "\n"))
	}
}
