package influxdb

import (
	"fmt"
	"math"
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

func TestAppendLine_Typed(t *testing.T) {
	want := []string{
		"hits,host=a value=3 1000000000\n",
		"level,host=a value=-2.5 1000000000\n",
		"rt,host=a count=4,sum=1.75,le_0_005=1,le_0_5=2,le_1=2,le_inf=4 1000000000\n",
		"size,host=a count=5,sum=15,p50=3,p90=5,p99=5 1000000000\n",
		"",
	}
	var fl engine.Flattener
	for i, m := range typedMetrics(1000) {
		if got := string(AppendLine(nil, &m)); got != want[i] {
			t.Errorf("AppendLine(%s)\n got %q\nwant %q", m.Bucket, got, want[i])
		}
		if got := string(AppendLineFlat(nil, &m, &fl)); got != want[i] {
			t.Errorf("AppendLineFlat(%s)\n got %q\nwant %q", m.Bucket, got, want[i])
		}
	}
}

func TestClient_InfluxDBTyped(t *testing.T) {
	db := backendtest.StartInfluxDB(t)
	o := DefaultOptions()
	o.RemoteHosts = []string{db.UDPAddr}
	in, stats, stop := run(t, o)
	ts := time.Now().Add(-time.Minute).UnixMilli()
	in <- &engine.Batch{Metrics: typedMetrics(ts)}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if sent, noFields := stats.Counter("metrics_sent").Load(), stats.Counter("metrics_dropped_no_fields").Load(); sent != 4 || noFields != 1 {
		t.Fatalf("metrics_sent = %d, metrics_dropped_no_fields = %d, want 4 and 1", sent, noFields)
	}
	for q, want := range map[string][]any{
		`SELECT "value" FROM "hits"`:  {ts * 1e6, 3.0},
		`SELECT "value" FROM "level"`: {ts * 1e6, -2.5},
		`SELECT "count", "sum", "le_0_005", "le_0_5", "le_1", "le_inf" FROM "rt"`: {ts * 1e6, 4.0, 1.75, 1.0, 2.0, 2.0, 4.0},
		`SELECT "count", "sum", "p50", "p90", "p99" FROM "size"`:                  {ts * 1e6, 5.0, 15.0, 3.0, 5.0, 5.0},
	} {
		rows := db.WaitFor(t, q, 10*time.Second)
		if got := fmt.Sprint(rows[0].Values); got != fmt.Sprint([][]any{want}) {
			t.Errorf("%s read back as %s, want %v", q, got, want)
		}
	}
}
