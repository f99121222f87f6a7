//go:build !race

package statsd

import (
	"bytes"
	"compress/zlib"
	"log/slog"
	"testing"
	"time"

	"github.com/bucky3/bucky3/aggregate"
	"github.com/bucky3/bucky3/engine"
)

// TestReader_Allocs runs a reader's handle, the function io/udp calls per
// datagram, over a table whose series exist: a datagram of known lines, a
// line of a known series in a shape the memo has not seen, and a zlib
// datagram must not allocate. Timer lines are left out: their sample
// slices grow until a flush, as they should.
func TestReader_Allocs(t *testing.T) {
	f := func(name string, configure func(*Options), warm, packet []byte, each func(*reader)) (*reader, *aggregate.Table) {
		t.Helper()
		o := DefaultOptions()
		o.Readers = 1
		if configure != nil {
			configure(&o)
		}
		if err := o.Validate(); err != nil {
			t.Fatal(err)
		}
		srv, err := New(engine.Module{Name: "t", Log: slog.New(slog.DiscardHandler), Stats: engine.NewStats()}, o)
		if err != nil {
			t.Fatal(err)
		}
		table, err := aggregate.New(tableOptions(srv.o))
		if err != nil {
			t.Fatal(err)
		}
		r := (&readerSet{server: srv, table: table}).newReader()
		// Handle packet once before the series' first flush and once
		// after, so that both the live and the spare state have their
		// memory, then start a clean interval.
		for range 2 {
			r.handle(bytes.Clone(warm))
			each(r)
			r.handle(bytes.Clone(packet))
			table.Flush(time.Now())
		}
		r.handle(bytes.Clone(warm))
		buf := bytes.Clone(packet)
		lines := srv.counters.lines.Load()
		allocs := testing.AllocsPerRun(100, func() {
			each(r)
			r.handle(append(buf[:0], packet...))
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per datagram", name, allocs)
		}
		if srv.counters.lines.Load() == lines || srv.counters.invalid.Load() != 0 || srv.counters.packets.Dropped.Load() != 0 {
			t.Fatalf("%s: lines %d → %d, invalid %d, packets dropped %d", name, lines, srv.counters.lines.Load(),
				srv.counters.invalid.Load(), srv.counters.packets.Dropped.Load())
		}
		return r, table
	}
	known := []byte("api_requests:1|c|@0.5|#env:prod,host:web-01\nqueue_depth:-2|g|#env:prod\nqueue_depth:+1|g|#env:prod\nusers:alice|s|#env:prod\n")
	f("known lines", nil, known, known, func(*reader) {})
	// Tag lists and mappings run once per shape: a known line pays
	// nothing for them, dropped or mapped, in either layout.
	f("known lines, tag_denylist", func(o *Options) { o.TagDenylist = []string{"host"} }, known, known, func(*reader) {})
	mapped := mappedDatagram(0, 16)
	for _, layout := range []string{layoutBucky3, layoutTyped} {
		configure := func(o *Options) { o.MappingConfig, o.Layout = "testdata/mapping_50.yml", layout }
		f("known mapped lines, layout "+layout, configure, mapped, mapped, func(*reader) {})
	}
	typedKnown := append(bytes.Clone(known), "latency:12|ms|#env:prod\nlatency:7|h|#env:prod\n"...)
	f("known lines, layout typed", func(o *Options) { o.Layout = layoutTyped }, typedKnown, typedKnown, func(*reader) {})

	// The same series as the warm-up line, its tags in another order: a
	// full parse and a key lookup that finds the series. The memo forgets
	// the shape before each run, as when it evicts one; a slot that was
	// never filled allocates its shape's buffer once, which this leaves
	// out.
	forget := func(r *reader) {
		clear(r.known.entries)
		clear(r.known.sets)
		r.known.filled = 0
	}
	r, table := f("new shape of a known series", nil, []byte("api_requests:1|c|#env:prod,host:web-01"), []byte("api_requests:2|c|#host:web-01,env:prod"), forget)
	if r.known.filled != 1 {
		t.Fatalf("new shape: %d shapes remembered by the last run, want 1", r.known.filled)
	}
	if ms := table.Flush(time.Now()); len(ms) != 1 {
		t.Fatalf("new shape: %d series, want the warm-up's one: %v", len(ms), ms)
	}

	var z bytes.Buffer
	w := zlib.NewWriter(&z)
	if _, err := w.Write(known); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f("zlib datagram", func(o *Options) { o.TryDecompress = true }, known, z.Bytes(), func(*reader) {})
}

// TestReader_OriginAllocs: handleOrigin, for a unix socket with
// origin_detection, reuses its copy of the datagram: no allocation once
// the container's series exist.
func TestReader_OriginAllocs(t *testing.T) {
	o := DefaultOptions()
	o.Readers = 1
	srv, err := New(engine.Module{Name: "t", Log: slog.New(slog.DiscardHandler), Stats: engine.NewStats()}, o)
	if err != nil {
		t.Fatal(err)
	}
	table, err := aggregate.New(tableOptions(srv.o))
	if err != nil {
		t.Fatal(err)
	}
	r := (&readerSet{server: srv, table: table}).newReader()
	packet := []byte("api_requests:1|c|@0.5|#env:prod,host:web-01\nqueue_depth:-2|g|#env:prod\nusers:alice|s|#env:prod\n")
	cid := string(bytes.Repeat([]byte("c"), 64))
	for range 2 {
		r.handleOrigin(bytes.Clone(packet), cid)
		table.Flush(time.Now())
	}
	r.handleOrigin(bytes.Clone(packet), cid)
	buf := bytes.Clone(packet)
	if allocs := testing.AllocsPerRun(100, func() { r.handleOrigin(append(buf[:0], packet...), cid) }); allocs != 0 {
		t.Errorf("%v allocations per datagram", allocs)
	}
	if srv.counters.invalid.Load() != 0 || len(table.Flush(time.Now())) != 3 {
		t.Fatal("the lines were not aggregated as 3 series")
	}
}
