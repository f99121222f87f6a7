//go:build !race

package carbon

import "testing"

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
