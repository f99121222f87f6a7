//go:build !race

package elasticsearch

import "testing"

func TestAppendAction_NoAllocs(t *testing.T) {
	e := NewEncoder("metrics-%Y.%m.%d", "timestamp", "bucket")
	buf := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		buf = buf[:0]
		for i := range goldenMetrics {
			buf = e.AppendAction(buf, &goldenMetrics[i], now)
		}
	})
	if allocs != 0 {
		t.Fatalf("AppendAction: %v allocs per run, want 0", allocs)
	}
}
