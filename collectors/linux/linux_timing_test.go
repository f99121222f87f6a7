package linux

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkCollect measures one full collection: every file read and
// parsed, statfs per mount, the batch built.
func BenchmarkCollect(b *testing.B) {
	for _, bc := range []struct {
		name, proc string
		statfs     func(string, *unix.Statfs_t) error
	}{
		{"fixture", "testdata/proc", fixtureStatfs},
		{"live", "/proc", unix.Statfs},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := newTestStats(b, bc.proc, nil)
			e.s.statfs = bc.statfs
			if err := e.s.open(); err != nil {
				b.Fatal(err)
			}
			now := time.Now()
			b.ReportAllocs()
			for b.Loop() {
				if m := e.s.collect(now); len(m) < 10 {
					b.Fatalf("%d metrics", len(m))
				}
			}
			b.ReportMetric(float64(e.s.lastMetrics), "metrics/op")
		})
	}
}
