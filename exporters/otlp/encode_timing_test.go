package otlp

import "testing"

func BenchmarkEncoder(b *testing.B) {
	e := NewEncoder([]string{"host"}, []string{"stats_counters"})
	buf := make([]byte, 0, 4096)
	e.Add(&goldenMetrics[0], nowNs)
	n := len(e.AppendRequest(nil))
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		e.Reset()
		e.Add(&goldenMetrics[0], nowNs)
		buf = e.AppendRequest(buf[:0])
		if len(buf) != n {
			b.Fatal("length changed")
		}
	}
}
