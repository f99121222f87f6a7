package carbon

import (
	"testing"

	"github.com/bucky3/bucky3/engine"
)

func BenchmarkAppendLines(b *testing.B) {
	// A timer percentile as the statsd server flushes it, under the
	// mapping bench/compare gives carbon_client: six lines of one path
	// but for the field.
	timer := engine.Metric{
		Bucket: "stats_timers",
		Tags:   []engine.Tag{tag("env", "production"), tag("host", "web-0123"), tag("name", "request_latency_123"), tag("percentile", "100"), tag("region", "eu-west-1")},
		Fields: []engine.Field{num("count", 10), num("count_ps", 1), num("lower", 12.25), num("upper", 13), num("mean", 12.625), num("stdev", 0.375)},
	}
	for _, c := range []struct {
		name    string
		m       *engine.Metric
		mapping []string
	}{
		{"filesystem", &goldenMetrics[1], []string{"bucket", "host"}},
		{"timer", &timer, []string{"bucket", "value", "name", "percentile"}},
	} {
		b.Run(c.name, func(b *testing.B) {
			buf := make([]byte, 0, 4096)
			n := len(AppendLines(nil, c.m, c.mapping, now))
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				buf = AppendLines(buf[:0], c.m, c.mapping, now)
				if len(buf) != n {
					b.Fatal("length changed")
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(c.m.Fields)), "ns/line")
		})
	}
}
