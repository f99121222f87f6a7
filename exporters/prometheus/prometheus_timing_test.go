package prometheus

import (
	"strconv"
	"testing"

	"github.com/bucky3/bucky3/engine"
)

// benchBatch returns n metrics shaped like linux_stats output: two tags,
// two fields, spread over 10 buckets.
func benchBatch(n int) *engine.Batch {
	b := &engine.Batch{Source: "bench", Metrics: make([]engine.Metric, n)}
	for i := range b.Metrics {
		b.Metrics[i] = engine.Metric{
			Bucket:    "bench_bucket_" + strconv.Itoa(i%10),
			Timestamp: 1700000000123,
			Tags: []engine.Tag{
				{Key: "host", Value: "web1"},
				{Key: "id", Value: strconv.Itoa(i)},
			},
			Fields: []engine.Field{num("count", float64(i)), num("mean", float64(i)/3)},
		}
	}
	return b
}

func BenchmarkIngest(b *testing.B) {
	batch := benchBatch(10_000)
	b.Run("new", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s := newStore(engine.NewStats(), storeLimits{})
			s.ingest(batch, 1, true)
		}
	})
	b.Run("known", func(b *testing.B) {
		b.ReportAllocs()
		s := newStore(engine.NewStats(), storeLimits{})
		s.ingest(batch, 1, true)
		now := int64(1)
		for b.Loop() {
			now++
			s.ingest(batch, now, true)
		}
	})
}

func BenchmarkScrape(b *testing.B) {
	s := newStore(engine.NewStats(), storeLimits{})
	// 500k metrics of two fields: a page of one million samples.
	s.ingest(benchBatch(500_000), 1, true)
	page, _ := s.appendPage(nil)
	b.SetBytes(int64(len(page)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		page, _ = s.appendPage(page[:0])
		if len(page) == 0 {
			b.Fatal("empty page")
		}
	}
}
