package elasticsearch

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
	tags := []engine.Tag{tag("host", "a")}
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

func TestAppendAction_Typed(t *testing.T) {
	want := []string{
		`{"@timestamp":1000,"bucket":"hits","host":"a","value":3}`,
		`{"@timestamp":1000,"bucket":"level","host":"a","value":-2.5}`,
		`{"@timestamp":1000,"bucket":"rt","count":4,"host":"a","le_0_005":1,"le_0_5":2,"le_1":2,"le_inf":4,"sum":1.75}`,
		`{"@timestamp":1000,"bucket":"size","count":5,"host":"a","p50":3,"p90":5,"p99":5,"sum":15}`,
		`{"@timestamp":1000,"bucket":"bad","host":"a"}`,
	}
	e := NewEncoder("metrics", "@timestamp", "bucket")
	for range 2 { // the encoder's scratch is reused cleanly
		for i, m := range typedMetrics(1000) {
			_, doc := splitAction(t, e.AppendAction(nil, &m, now))
			if doc != want[i] {
				t.Errorf("AppendAction(%s)\n got %s\nwant %s", m.Bucket, doc, want[i])
			}
		}
	}
}

func TestClient_VictoriaLogsTyped(t *testing.T) {
	vl := backendtest.StartVictoriaLogs(t)
	o := DefaultOptions()
	o.RemoteHosts = []string{vl.BulkBase + "?_time_field=timestamp&_msg_field=bucket"}
	in, _, stop := run(t, o)
	ts := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	in <- &engine.Batch{Metrics: typedMetrics(ts.UnixMilli())[:4]}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for q, want := range map[string]map[string]string{
		`_msg:hits | fields value`:  {"value": "3"},
		`_msg:level | fields value`: {"value": "-2.5"},
		`_msg:rt | fields count, sum, le_0_005, le_0_5, le_1, le_inf`: {
			"count": "4", "sum": "1.75", "le_0_005": "1", "le_0_5": "2", "le_1": "2", "le_inf": "4"},
		`_msg:size | fields count, sum, p50, p90, p99`: {"count": "5", "sum": "15", "p50": "3", "p90": "5", "p99": "5"},
	} {
		if e := vl.WaitFor(t, q, 10*time.Second); len(e) != 1 || fmt.Sprint(e[0]) != fmt.Sprint(want) {
			t.Errorf("%s read back %v, want %v", q, e, want)
		}
	}
}
