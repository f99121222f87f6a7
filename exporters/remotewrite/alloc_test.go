//go:build !race

package remotewrite

import (
	"testing"

	"github.com/golang/snappy"
)

func TestEncoder_NoAllocs(t *testing.T) {
	var e Encoder
	buf := make([]byte, 0, 4096)
	body := make([]byte, snappy.MaxEncodedLen(4096))
	allocs := testing.AllocsPerRun(100, func() {
		e.Reset()
		for i := range goldenMetrics {
			e.Add(&goldenMetrics[i], nowMs, 0, 1000)
		}
		buf = e.AppendRequest(buf[:0])
		snappy.Encode(body, buf)
	})
	if allocs != 0 {
		t.Fatalf("Add+AppendRequest+snappy: %v allocs per run, want 0", allocs)
	}
}

func TestAppendNames_NoAllocs(t *testing.T) {
	buf := make([]byte, 0, 256)
	allocs := testing.AllocsPerRun(100, func() {
		buf = AppendMetricName(buf[:0], "9docker.mem", "rss")
		buf = AppendLabelName(buf, "__a.b")
		buf = AppendLabelValue(buf, "x\xffy é")
	})
	if allocs != 0 {
		t.Fatalf("AppendMetricName/LabelName/LabelValue: %v allocs per run, want 0", allocs)
	}
}

// Typed series already known cost no allocation either: their totals are
// updated in place.
func TestEncoder_TypedNoAllocs(t *testing.T) {
	var e Encoder
	ms := typedInterval(5, tag("host", "a"))
	buf := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		e.Reset()
		for i := range ms {
			e.Add(&ms[i], nowMs, 0, 1000)
		}
		buf = e.AppendRequest(buf[:0])
		e.Commit()
	})
	if allocs != 0 {
		t.Fatalf("typed Add+AppendRequest+Commit: %v allocs per run, want 0", allocs)
	}
}
