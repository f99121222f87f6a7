//go:build !race

package prometheus

import (
	"testing"

	"github.com/bucky3/bucky3/engine"
)

func TestEncodersDoNotAllocate(t *testing.T) {
	buf := make([]byte, 0, 1024)
	tags := []engine.Tag{{Key: "cpu", Value: "cpu0"}, {Key: "host", Value: "web\"1\xff"}}
	messy := []engine.Tag{{Key: "a.z", Value: "1"}, {Key: "a_b", Value: "2"}, {Key: "value", Value: "3"}}
	f := func(name string, fn func()) {
		t.Helper()
		if n := testing.AllocsPerRun(100, fn); n != 0 {
			t.Errorf("%s: %v allocs per run, want 0", name, n)
		}
	}
	f("AppendMetricName", func() { buf = AppendMetricName(buf[:0], "docker.container-mem") })
	f("AppendLabelName", func() { buf = AppendLabelName(buf[:0], "__name__") })
	f("AppendLabelValue", func() { buf = AppendLabelValue(buf[:0], "a\"b\\c\nd\xff日本") })
	f("AppendValue", func() { buf = AppendValue(buf[:0], 97.5, 1700000000123) })
	f("AppendSample", func() { buf = AppendSample(buf[:0], "system_cpu", tags, "idle", 97.5, 1700000000123) })
	f("AppendSample/sanitised", func() { buf = AppendSample(buf[:0], "m", messy, "f", 1, 0) })
	f("AppendFamilyHeader", func() { buf = AppendFamilyHeader(buf[:0], "system_cpu") })
}

func TestIngestOfKnownSeriesDoesNotAllocate(t *testing.T) {
	s := newStore(engine.NewStats(), storeLimits{})
	b := benchBatch(100)
	s.ingest(b, 1, true)
	now := int64(1)
	if n := testing.AllocsPerRun(100, func() { now++; s.ingest(b, now, true) }); n != 0 {
		t.Errorf("ingest of known series: %v allocs per run, want 0", n)
	}
}

func TestTypedIngestOfKnownSeriesDoesNotAllocate(t *testing.T) {
	s, _ := typedStoreAt(t, 0)
	tags := []engine.Tag{{Key: "code", Value: "200"}, {Key: "route", Value: "/api"}}
	b := &engine.Batch{Metrics: []engine.Metric{
		typedMetric("hits", tags, engine.CounterIncrease(1)),
		typedMetric("depth", tags, engine.Number(3)),
		typedMetric("drift", tags, gaugeDelta(1)),
		typedMetric("lat", tags, histogram([]float64{0.1, 1}, schemaOf(3), 0.05, 0.5, 2)),
		metric("host", 0, tags, num("load", 1), num("idle", 90)),
	}}
	s.ingest(b, 1)
	now := int64(1)
	if n := testing.AllocsPerRun(100, func() { now++; s.ingest(b, now) }); n != 0 {
		t.Errorf("typed ingest of known series: %v allocs per run, want 0", n)
	}
}
