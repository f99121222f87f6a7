package prometheus

import (
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/bucky3/bucky3/engine"
)

// typedBenchBatch returns n typed metrics as a typed statsd_server sends
// them: counters, gauges and histograms with classic and native buckets
// in turn, two tags each, spread over 30 families.
func typedBenchBatch(n int) *engine.Batch {
	b := &engine.Batch{Source: "bench", Metrics: make([]engine.Metric, n)}
	bounds := []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
	for i := range b.Metrics {
		var v engine.Value
		switch i % 3 {
		case 0:
			v = engine.CounterIncrease(float64(i))
		case 1:
			v = engine.Number(float64(i))
		case 2:
			v = histogram(bounds, schemaOf(3), 0.003, 0.04, 0.3, 2, float64(i%100)/10)
		}
		tags := []engine.Tag{{Key: "host", Value: "web1"}, {Key: "id", Value: strconv.Itoa(i)}}
		b.Metrics[i] = typedMetric("bench_family_"+strconv.Itoa(i%30), tags, v)
	}
	return b
}

func newBenchTypedStore() *typedStore {
	return newTypedStore(slog.New(slog.DiscardHandler), engine.NewStats(), storeLimits{}, 0, time.Minute)
}

func BenchmarkTypedIngest(b *testing.B) {
	batch := typedBenchBatch(10_000)
	b.Run("new", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			newBenchTypedStore().ingest(batch, 1)
		}
	})
	b.Run("known", func(b *testing.B) {
		b.ReportAllocs()
		s := newBenchTypedStore()
		s.ingest(batch, 1)
		now := int64(1)
		for b.Loop() {
			now++
			s.ingest(batch, now)
		}
	})
}

func BenchmarkTypedRender(b *testing.B) {
	s := newBenchTypedStore()
	s.ingest(typedBenchBatch(100_000), 1)
	for _, format := range []string{"text", "protobuf"} {
		b.Run(format, func(b *testing.B) {
			render := s.appendText
			if format == "protobuf" {
				render = s.appendProto
			}
			page, _ := render(nil)
			b.SetBytes(int64(len(page)))
			b.ReportAllocs()
			for b.Loop() {
				page, _ = render(page[:0])
				if len(page) == 0 {
					b.Fatal("empty page")
				}
			}
		})
	}
}
