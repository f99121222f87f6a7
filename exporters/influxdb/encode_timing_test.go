package influxdb

import "testing"

func BenchmarkAppendLine(b *testing.B) {
	buf := make([]byte, 0, 4096)
	n := len(AppendLine(nil, &goldenMetrics[2]))
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendLine(buf[:0], &goldenMetrics[2])
		if len(buf) != n {
			b.Fatal("length changed")
		}
	}
}
