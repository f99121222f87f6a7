//go:build !race

package carbon

import (
	"testing"

	"github.com/bucky3/bucky3/engine"
)

func TestAppendLines_NoAllocs(t *testing.T) {
	buf := make([]byte, 0, 4096)
	mapping := []string{"env", "host", "bucket"}
	allocs := testing.AllocsPerRun(100, func() {
		buf = buf[:0]
		for i := range goldenMetrics {
			buf = AppendLines(buf, &goldenMetrics[i], mapping, now)
		}
	})
	if allocs != 0 {
		t.Fatalf("AppendLines: %v allocs per run, want 0", allocs)
	}
}

// Typed metrics cost no allocation once the Flattener knows their names.
func TestAppendLinesFlat_TypedNoAllocs(t *testing.T) {
	var fl engine.Flattener
	ms := typedMetrics(1000)
	buf := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		buf = buf[:0]
		for i := range ms {
			buf = AppendLinesFlat(buf, &ms[i], []string{"bucket"}, now, &fl)
		}
	})
	if allocs != 0 {
		t.Fatalf("AppendLinesFlat: %v allocs per run, want 0", allocs)
	}
}
