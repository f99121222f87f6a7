//go:build !race

package otlp

import "testing"

func TestEncoder_NoAllocs(t *testing.T) {
	e := NewEncoder([]string{"host", "env"}, []string{"stats_counters"})
	buf := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		e.Reset()
		for i := range goldenMetrics {
			e.Add(&goldenMetrics[i], nowNs)
		}
		buf = e.AppendRequest(buf[:0])
	})
	if allocs != 0 {
		t.Fatalf("Add+AppendRequest: %v allocs per run, want 0", allocs)
	}
}

// Typed metrics cost no allocation once the encoder's buffers have grown.
func TestEncoder_TypedNoAllocs(t *testing.T) {
	e := NewEncoder([]string{"host"}, nil)
	ms := typedMetrics("a", 1000)
	buf := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		e.Reset()
		for i := range ms {
			e.Add(&ms[i], nowNs)
		}
		buf = e.AppendRequest(buf[:0])
	})
	if allocs != 0 {
		t.Fatalf("typed Add+AppendRequest: %v allocs per run, want 0", allocs)
	}
}

func TestParseResponse_NoAllocs(t *testing.T) {
	resp := []byte{0x0a, 0x07, 0x08, 0x03, 0x12, 0x03, 'b', 'a', 'd'}
	allocs := testing.AllocsPerRun(100, func() {
		if n, _ := parseResponse(resp); n != 3 {
			t.Fatal("rejected points not read")
		}
	})
	if allocs != 0 {
		t.Fatalf("parseResponse: %v allocs per run, want 0", allocs)
	}
}
