//go:build !race

package influxdb

import "testing"

func TestAppendLine_NoAllocs(t *testing.T) {
	buf := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		buf = buf[:0]
		for i := range goldenMetrics {
			buf = AppendLine(buf, &goldenMetrics[i])
		}
	})
	if allocs != 0 {
		t.Fatalf("AppendLine: %v allocs per run, want 0", allocs)
	}
}
