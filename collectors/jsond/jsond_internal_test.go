package jsond

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/engine/enginetest"
)

// newTestServer returns a server whose handler tests call directly.
func newTestServer(t *testing.T, configure func(*Options)) (*Server, *engine.Stats) {
	t.Helper()
	o := DefaultOptions()
	if configure != nil {
		configure(&o)
	}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	stats := engine.NewStats()
	s, err := New(engine.Module{Name: "jsond", Log: slog.New(slog.DiscardHandler), Stats: stats}, o)
	if err != nil {
		t.Fatal(err)
	}
	return s, stats
}

func counts(t *testing.T, stats *engine.Stats, want map[string]uint64) {
	t.Helper()
	for name, n := range want {
		if got := stats.Counter(name).Load(); got != n {
			t.Errorf("%s = %d, want %d", name, got, n)
		}
	}
}

// The buffer holds at most buffer_bytes: objects beyond it are dropped and
// counted, a smaller one that still fits is kept, and a flush empties it.
func TestServer_BufferBytes(t *testing.T) {
	s, stats := newTestServer(t, func(o *Options) {
		o.TryDecompress = false
		o.BufferBytes = 1 << 20
	})
	handle := s.handler(0)
	small := metricSize + fieldSize + len("x")
	fit := (1 << 20) / small
	var lines []string
	for range 1000 {
		lines = append(lines, `{"x":1}`)
	}
	datagram := []byte(strings.Join(lines, "\n"))
	rounds := fit/1000 + 2 // past the bound
	for range rounds {
		handle(datagram)
	}
	sent := rounds * 1000
	if fit >= s.o.BufferLimit {
		t.Fatalf("%d objects fit in buffer_bytes: buffer_limit would hit first", fit)
	}
	room := 1<<20 - fit*small
	// A longer string than the room left is dropped; a short one fits.
	big := `{"x":"` + strings.Repeat("y", room+1) + `"}`
	handle([]byte(big + "\n" + `{"x":1}`))
	kept := fit
	if room >= small {
		kept++ // the last {"x":1} fits
	}
	if len(s.pending) != kept || s.pendingBytes > 1<<20 {
		t.Fatalf("buffer holds %d objects, %d bytes; want %d, at most %d", len(s.pending), s.pendingBytes, kept, 1<<20)
	}
	dropped := uint64(sent + 2 - kept)
	counts(t, stats, map[string]uint64{
		"metrics_dropped_buffer_bytes": dropped, "metrics_dropped": dropped, "metrics_dropped_buffer_full": 0,
	})
	rec := &enginetest.Recorder{}
	s.flush(rec)
	if got := len(rec.Metrics()); got != kept {
		t.Fatalf("flushed %d metrics, want %d", got, kept)
	}
	handle([]byte(`{"x":1}`))
	if len(s.pending) != 1 || s.pendingBytes != small {
		t.Fatalf("after a flush: %d objects, %d bytes; want 1, %d", len(s.pending), s.pendingBytes, small)
	}
}

// tight is a memory budget that is always tight.
type tight struct{}

func (tight) Tight() bool { return true }

// While memory is tight, new objects are dropped and counted under
// memory_limit; the lines are still parsed and accounted for.
func TestServer_MemoryTight(t *testing.T) {
	s, stats := newTestServer(t, func(o *Options) { o.TryDecompress = false })
	s.memory = tight{}
	handle := s.handler(0)
	handle([]byte("{\"a\":1}\n{\"b\":2}\n[1]"))
	if len(s.pending) != 0 {
		t.Fatalf("kept %d objects while tight", len(s.pending))
	}
	counts(t, stats, map[string]uint64{
		"metrics_dropped_memory_limit": 2, "metrics_dropped": 2, "lines_received": 3, "lines_invalid_not_object": 1,
	})
	s.memory = (*engine.Memory)(nil) // no budget: never tight
	handle([]byte(`{"a":1}`))
	if len(s.pending) != 1 {
		t.Fatalf("kept %d objects without a budget, want 1", len(s.pending))
	}
}
