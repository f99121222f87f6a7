package elasticsearch

import "testing"

func BenchmarkAppendAction(b *testing.B) {
	e := NewEncoder("metrics-%Y.%m.%d", "timestamp", "bucket")
	buf := make([]byte, 0, 4096)
	n := len(e.AppendAction(nil, &goldenMetrics[1], now))
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		buf = e.AppendAction(buf[:0], &goldenMetrics[1], now)
		if len(buf) != n {
			b.Fatal("length changed")
		}
	}
}
