package carbon

import "testing"

func BenchmarkAppendLines(b *testing.B) {
	buf := make([]byte, 0, 4096)
	mapping := []string{"bucket", "host"}
	n := len(AppendLines(nil, &goldenMetrics[1], mapping, now))
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendLines(buf[:0], &goldenMetrics[1], mapping, now)
		if len(buf) != n {
			b.Fatal("length changed")
		}
	}
}
