package statsd

import (
	"bytes"
	"fmt"
	"hash/maphash"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bucky3/bucky3/aggregate"
	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/parse"
)

const testNowMs = 1_700_000_000_000

// sameAsParser feeds every datagram rounds times to a reader, whose memo
// of known lines serves the repeated lines, and to the plain path
// (parse.StatsD.Parse, aggregate.Writer.Add): both must flush the same
// metrics and count the same lines, invalid lines by reason, skipped lines
// and bare tags.
func sameAsParser(t *testing.T, o Options, rounds int, datagrams ...[]byte) {
	t.Helper()
	stats := engine.NewStats()
	srv, err := New(engine.Module{Name: "t", Log: slog.New(slog.DiscardHandler), Stats: stats}, o)
	if err != nil {
		t.Fatal(err)
	}
	tables := [2]*aggregate.Table{}
	start := time.UnixMilli(testNowMs)
	for i := range tables {
		if tables[i], err = aggregate.New(tableOptions(o)); err != nil {
			t.Fatal(err)
		}
		tables[i].Flush(start) // the same interval for both
	}
	// The clock moves 400 s a round, so a timestamp valid in the first
	// round leaves the 600 s window in the third.
	nowMs := int64(testNowMs)
	handle := (&readerSet{server: srv, table: tables[0], nowMs: func() int64 { return nowMs }}).handler(0)
	p := parserOf(&o)
	prep := newPrepare(srv)
	w := tables[1].NewWriter()
	var lines, skipped, bare uint64
	var rejected [parse.NumReasons]uint64
	var mapped [numMapOutcomes]uint64
	var buf []byte
	for round := range rounds {
		nowMs = testNowMs + int64(round)*400_000
		for _, d := range datagrams {
			// Both may sanitize in place, and the input is not theirs.
			handle(append(buf[:0], d...))
			samples := p.Parse(append(buf[:0], d...), nowMs)
			for i := range samples {
				st, _, outcome := prep.apply(&samples[i])
				if outcome != mapKeep {
					mapped[outcome]++
					continue
				}
				var ref aggregate.Ref
				w.AddTyped(&samples[i], st, &ref)
			}
			lines, skipped, bare = lines+uint64(p.Lines), skipped+uint64(p.Skipped), bare+uint64(p.BareTags)
			for r, n := range p.Rejected {
				rejected[r] += uint64(n)
			}
		}
	}
	got, want := tables[0].Flush(start.Add(time.Second)), tables[1].Flush(start.Add(time.Second))
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q ×%d: the reader flushed\n%v\nthe parser\n%v", bytes.Join(datagrams, []byte("⏎")), rounds, got, want)
	}
	c := &srv.counters
	invalid := uint64(0)
	for r, n := range rejected {
		invalid += n
		if c.invalidBy[r] != nil && c.invalidBy[r].Load() != n {
			t.Fatalf("%q: lines_invalid_%s %d, want %d", datagrams, parse.Reason(r), c.invalidBy[r].Load(), n)
		}
	}
	for o := mapDrop; o < numMapOutcomes; o++ {
		if got := c.mapped[o].Load(); got != mapped[o] {
			t.Fatalf("%q: mapping outcome %d counted %d, want %d", datagrams, o, got, mapped[o])
		}
	}
	if c.lines.Load() != lines || c.invalid.Load() != invalid || c.skipped.Load() != skipped || c.bareTags.Load() != bare {
		t.Fatalf("%q: lines %d invalid %d skipped %d bare tags %d; want %d %d %d %d", datagrams,
			c.lines.Load(), c.invalid.Load(), c.skipped.Load(), c.bareTags.Load(), lines, invalid, skipped, bare)
	}
}

func testOptions() Options {
	o := DefaultOptions()
	o.PercentileThresholds = []float64{50, 100}
	ten := 10.0
	o.Histograms = []aggregate.HistogramRule{{Match: "^lat", Bins: []aggregate.Bin{{Name: "low", Upper: &ten}, {Name: "high"}}}}
	return o
}

func TestKnownLines(t *testing.T) {
	f := func(datagram string) {
		t.Helper()
		sameAsParser(t, testOptions(), 3, []byte(datagram))
	}
	f("a:1|c\na:2|c|@0.5\na:3|c|@0.5\na:x|c|@0.5\na:4|c|@2")
	f("g:5|g|#k:v\ng:-1|g|#k:v\ng:+2:-1|g|#k:v\ng:+2:1|g|#k:v\ng:|g|#k:v")
	f("lat:1:2:30|ms|#bare,k=v\nlat:4|h|#bare,k=v\nlat:5|d\nlat:nan|ms|#bare,k=v")
	f("s:a|s\ns:b|s\ns:\xff|s\ns:a:b|s")
	f("t:1|c|T1700000000\nt:1|c|T1700000000\nt:1|c|T1600000000\nt:2|c|#timestamp=1700000001")
	f("b:1|c|#bucket=x,k=v\nb:1|c|#k=v,bucket=x\nb:2|c|#bucket=x,k=v|c:abc")
	f("_e{1,1}:a|b\n_sc|a|0\nbad\n:1|c\nA b:1|c\n\n\r\n")
	f("a:1|c|#k:v|@0.5|@0.25\na:1|c|@0.5|#k:v|@0.25")
	long := "|#" + strings.Repeat("tag_key:tag_value,", 10)
	f("l:1|c" + long + "\nl:2|c" + long + "\nl:1|c" + long + long + "\nl:2|c" + long + long)
	o := testOptions()
	o.NameRule = "sanitize"
	sameAsParser(t, o, 3, []byte("a.b:1|c|#k.x:v\na.b:2|c|#k.x:v\nä:1|c\n1a:1|c"))
	o.NameRule = "bucky3"
	sameAsParser(t, o, 3, []byte("a.b:1|c|#k.x:v\na.b:2|c|#k.x:v\nä:1|c\n1a:1|c\na:1|c|#k.x:v"))
}

// TestKnownLines_Limits: a line of a known shape over a limit is rejected
// as the parser rejects it, and for the same reason.
func TestKnownLines_Limits(t *testing.T) {
	o := testOptions()
	o.MaxNameLength, o.MaxTagLength, o.MaxValuesPerLine = 8, 12, 3
	sameAsParser(t, o, 3, []byte("lat:1:2:3|ms|#k=v\nlat:1:2:3:4|ms|#k=v\nlat:1|ms|#k=vvvvvvvvvvv\n"+
		"abcdefgh:1|c\nabcdefghi:1|c\ns:a:b:c:d|s|c:c\ns:a|s|c:\ng:+1:+2:+3:+4|g"))
}

// TestKnownLines_Evictions sends more shapes than the memo holds, so that
// shapes evict each other, then the first ones again.
func TestKnownLines_Evictions(t *testing.T) {
	var datagrams [][]byte
	for first := 0; first < 3*knownSlots; first += 20 {
		var b strings.Builder
		for i := first; i < first+20; i++ {
			fmt.Fprintf(&b, "c_%d:1|c|#k:%d\ng_%d:%d|g\n", i%(2*knownSlots), i, i%(2*knownSlots), i)
		}
		datagrams = append(datagrams, []byte(b.String()))
	}
	sameAsParser(t, DefaultOptions(), 2, datagrams...)
}

// TestKnownLines_ArrivalOrder checks that shapes take the memo's lines in
// the order they arrive, whatever their hashes, and that shapes evicted
// later hand their lines on rather than taking new ones.
func TestKnownLines_ArrivalOrder(t *testing.T) {
	k := newKnownLines()
	var s parse.Sample
	see := func(line string) *knownLine {
		k.load([]byte(line))
		p := &k.batch[0]
		kl := k.find(p)
		if kl == nil {
			if parser := (parse.StatsD{}); parser.ParseLine(p.line, testNowMs, &s) != nil {
				t.Fatalf("%q: %v", line, parser.ParseLine(p.line, testNowMs, &s))
			}
			kl = k.remember(p, &s, 0)
		}
		return kl
	}
	lineOf := func(kl *knownLine) int {
		for i := range k.lines {
			if &k.lines[i] == kl {
				return i
			}
		}
		return -1
	}
	for i := range 100 {
		if line := lineOf(see(fmt.Sprintf("c_%d:1|c", i))); line != i {
			t.Fatalf("shape %d remembered at line %d", i, line)
		}
	}
	for i := range 100 {
		if line := lineOf(see(fmt.Sprintf("c_%d:2|c", i))); line != i {
			t.Fatalf("shape %d found at line %d, want %d", i, line, i)
		}
	}
	// Past the load path, which sparse mode would thin out.
	for i := range 3 * knownSlots {
		shape := []byte(fmt.Sprintf("e_%d:|c", i))
		p := pending{shape: shape, hash: max(maphash.Bytes(k.seed, shape), 1), slot: -1}
		k.remember(&p, &s, 0)
	}
	owner := make(map[uint64]int)
	for slot, e := range k.entries {
		if e == 0 {
			continue // a set that fewer than knownWays shapes hashed to
		}
		if other, ok := owner[e&lineMask]; ok {
			t.Fatalf("slots %d and %d share line %d", other, slot, e&lineMask)
		}
		owner[e&lineMask] = slot
	}
	if len(owner) != k.filled {
		t.Fatalf("%d slots hold lines, %d lines handed out", len(owner), k.filled)
	}
}

// TestKnownLines_MaxSeries fills the table: lines of known shapes whose
// series could not start are dropped and counted as the parser's are.
func TestKnownLines_MaxSeries(t *testing.T) {
	o := DefaultOptions()
	o.MaxSeries = 5
	sameAsParser(t, o, 3, []byte("a:1|c\nb:1|c\nc:1|c\nd:1|c\ne:1|c\nf:1|c\ng:1|c"))
}

func FuzzKnownLines(f *testing.F) {
	f.Add([]byte("a:1|c|@0.5|#k:v,bare\na:2|c|@0.5|#k:v,bare\ns:x|s"), false)
	f.Add([]byte("a.b:1|ms|#k.x:v|T1700000000\na.b:x|ms|#k.x:v"), true)
	f.Add([]byte("api.x.requests:1|c|#host:a,k:v\napi.x.latency:3|ms\ndebug.y:1|c\nzero.c:2|c\nhonor.q:1|c|#env:e\nempty.:1|c"), false)
	f.Fuzz(func(t *testing.T, datagram []byte, sanitize bool) {
		o := testOptions()
		o.NameRule = "statsd"
		if sanitize {
			o.NameRule = "sanitize"
		}
		o.MaxSeries = 16
		o.MaxNameLength, o.MaxTagLength, o.MaxValuesPerLine = 8, 12, 3
		// Each line again with the values of the others.
		var again []byte
		var shapes, values [][]byte
		for rest := datagram; ; {
			var line []byte
			if line, rest = parse.NextLine(rest); len(line) == 0 {
				break
			}
			if shape, v, ok := parse.AppendShape(nil, line); ok {
				shapes, values = append(shapes, shape), append(values, v)
			}
		}
		for _, shape := range shapes {
			colon := bytes.IndexByte(shape, ':')
			for _, v := range values {
				again = append(append(append(append(again, shape[:colon+1]...), v...), shape[colon+1:]...), '\n')
			}
		}
		sameAsParser(t, o, 2, datagram, again)
		if !sanitize {
			// The same through a tag list and testdata/mapping.yml, typed.
			o.MaxNameLength, o.TagDenylist, o.Layout, o.MappingConfig = 24, []string{"host"}, layoutTyped, "testdata/mapping.yml"
			if err := o.Validate(); err != nil {
				t.Fatal(err)
			}
			sameAsParser(t, o, 2, datagram, again)
		}
	})
}

// TestKnownLines_Sparse checks that a flood of new shapes makes the memo
// sparse once it is half full, not before, and that repeated shapes bring
// it back.
func TestKnownLines_Sparse(t *testing.T) {
	k := newKnownLines()
	var s parse.Sample
	see := func(line string) {
		k.load([]byte(line))
		p := &k.batch[0]
		if k.find(p) == nil {
			if parser := (parse.StatsD{}); parser.ParseLine(p.line, testNowMs, &s) == nil {
				k.remember(p, &s, 0)
			}
		}
	}
	for i := range knownSlots / 4 {
		see(fmt.Sprintf("s_%d:1|c", i))
	}
	if k.sparse {
		t.Fatalf("sparse with %d of %d slots filled", k.filled, knownSlots)
	}
	for i := range knownSlots {
		see(fmt.Sprintf("t_%d:1|c", i))
	}
	if !k.sparse {
		t.Fatal("after a full memo's worth of new shapes: not sparse")
	}
	for range 2 * windowLookups * sparseEvery {
		see("again:1|c")
	}
	if k.sparse {
		t.Fatal("after 2 windows of one shape: still sparse")
	}
}
