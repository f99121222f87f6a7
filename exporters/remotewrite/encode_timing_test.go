package remotewrite

import "testing"

func BenchmarkEncoder(b *testing.B) {
	var e Encoder
	buf := make([]byte, 0, 4096)
	e.Add(&goldenMetrics[1], nowMs, 0, 1000)
	n := len(e.AppendRequest(nil))
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		e.Reset()
		e.Add(&goldenMetrics[1], nowMs, 0, 1000)
		buf = e.AppendRequest(buf[:0])
		if len(buf) != n {
			b.Fatal("length changed")
		}
	}
}
