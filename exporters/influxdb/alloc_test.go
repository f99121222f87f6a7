//go:build !race

package influxdb

import (
	"testing"

	"github.com/bucky3/bucky3/engine"
)

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

// Typed metrics cost no allocation once the Flattener knows their names.
func TestAppendLineFlat_TypedNoAllocs(t *testing.T) {
	var fl engine.Flattener
	ms := typedMetrics(1000)
	buf := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		buf = buf[:0]
		for i := range ms {
			buf = AppendLineFlat(buf, &ms[i], &fl)
		}
	})
	if allocs != 0 {
		t.Fatalf("AppendLineFlat: %v allocs per run, want 0", allocs)
	}
}
