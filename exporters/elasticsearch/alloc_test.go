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

func TestAppendActionIndex_NoAllocs(t *testing.T) {
	e := NewEncoder("", "timestamp", "bucket")
	buf, index := make([]byte, 0, 4096), make([]byte, 0, 256)
	allocs := testing.AllocsPerRun(100, func() {
		buf = buf[:0]
		for i := range goldenMetrics {
			index = e.AppendIndex(index[:0], &goldenMetrics[i], now)
			buf = e.AppendActionIndex(buf, &goldenMetrics[i], now, index)
		}
	})
	if allocs != 0 {
		t.Fatalf("AppendIndex + AppendActionIndex: %v allocs per run, want 0", allocs)
	}
}

// Typed metrics cost no allocation once the encoder knows their names.
func TestAppendAction_TypedNoAllocs(t *testing.T) {
	e := NewEncoder("metrics", "timestamp", "bucket")
	ms := typedMetrics(1000)
	buf := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		buf = buf[:0]
		for i := range ms {
			buf = e.AppendAction(buf, &ms[i], now)
		}
	})
	if allocs != 0 {
		t.Fatalf("AppendAction: %v allocs per run, want 0", allocs)
	}
}
