package aggregate

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/bucky3/bucky3/parse"
)

// benchLines are one line per type; b.SetBytes uses the line's length so
// that throughput compares with the parser's benchmarks.
var benchLines = []struct{ name, line string }{
	{"counter", "requests:1|c|@0.5|#env=prod,host=web_01,region=eu_west_1"},
	{"gauge", "queue_depth:+3|g|#env=prod,host=web_01,region=eu_west_1"},
	{"timer", "latency:12.5|ms|#env=prod,host=web_01,region=eu_west_1"},
	{"histogram", "latency_h:12.5|h|#env=prod,host=web_01,region=eu_west_1"},
	{"distribution", "latency_d:12.5|d|#env=prod,host=web_01,region=eu_west_1"},
	{"set", "users:user_4242|s|#env=prod,host=web_01,region=eu_west_1"},
}

func benchTable(b *testing.B) *Table {
	o := DefaultOptions()
	o.PercentileThresholds = []float64{50, 90, 99, 100}
	o.Histograms = []HistogramRule{{Match: "latency_h.*", Lower: ptr(0), Bins: []Bin{
		{Name: "fast", Upper: ptr(10)}, {Name: "ok", Upper: ptr(100)}, {Name: "slow"}}}}
	tbl, err := New(o)
	if err != nil {
		b.Fatal(err)
	}
	return tbl
}

// BenchmarkKey measures building and hashing the key of a 3-tag series.
func BenchmarkKey(b *testing.B) {
	s := sampleOf(b, benchLines[0].line)
	b.SetBytes(int64(len(benchLines[0].line)))
	b.ReportAllocs()
	var key []byte
	var sum uint64
	for b.Loop() {
		key = appendKey(key[:0], kindCounter, s)
		sum += xxhash.Sum64(key)
	}
	if sum == 0 {
		b.Fatal("no hash")
	}
}

// BenchmarkAdd_KnownSeries measures key, lookup and update of a series
// that already exists, per type.
func BenchmarkAdd_KnownSeries(b *testing.B) {
	for _, bl := range benchLines {
		b.Run(bl.name, func(b *testing.B) {
			tbl := benchTable(b)
			w := tbl.NewWriter()
			s := sampleOf(b, bl.line)
			w.Add(s)
			b.SetBytes(int64(len(bl.line)))
			b.ReportAllocs()
			for b.Loop() {
				if !w.Add(s) {
					b.Fatal("dropped")
				}
			}
		})
	}
}

// BenchmarkAddTo_KnownSeries measures the update of a series through a
// Ref, the reader's path for a line of a known shape: no key, no lookup.
func BenchmarkAddTo_KnownSeries(b *testing.B) {
	for _, bl := range benchLines {
		b.Run(bl.name, func(b *testing.B) {
			tbl := benchTable(b)
			w := tbl.NewWriter()
			s := sampleOf(b, bl.line)
			var ref Ref
			w.AddRef(s, &ref)
			b.SetBytes(int64(len(bl.line)))
			b.ReportAllocs()
			for b.Loop() {
				if !w.AddTo(&ref, s) {
					b.Fatal("dropped")
				}
			}
		})
	}
}

// BenchmarkAdd_Parallel has every goroutine add counters to 1000 shared
// series through its own Writer.
func BenchmarkAdd_Parallel(b *testing.B) {
	tbl := benchTable(b)
	line := benchLines[0].line
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := tbl.NewWriter()
		s := sampleOf(b, line)
		prefix := len(s.Name)
		s.Name = append(s.Name, "0000"...)
		i := 0
		for pb.Next() {
			s.Name = strconv.AppendInt(s.Name[:prefix], int64(i%1000), 10)
			if !w.Add(s) {
				b.Error("dropped")
				return
			}
			i++
		}
	})
}

// BenchmarkFlush measures the flush of 100k series, one in six of each
// type, timers holding 10 samples.
func BenchmarkFlush(b *testing.B) {
	const n = 100_000
	samples := make([]*parse.Sample, n)
	for i := range samples {
		bl := benchLines[i%len(benchLines)]
		s := sampleOf(b, bl.line)
		s.Name = strconv.AppendInt(s.Name, int64(i), 10)
		samples[i] = s
	}
	tbl := benchTable(b)
	w := tbl.NewWriter()
	fill := func() {
		for _, s := range samples {
			for range 10 {
				w.Add(s)
			}
		}
	}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		fill()
		now = now.Add(10 * time.Second)
		b.StartTimer()
		if ms := tbl.Flush(now); len(ms) < n {
			b.Fatalf("flushed %d metrics, want at least %d", len(ms), n)
		}
	}
}

// typedBenchTypes are the SeriesTypes of the typed benchmarks: the
// default buckets, with native buckets at statsd_exporter's default
// factor, and a summary.
var typedBenchTypes = []struct {
	name string
	st   *SeriesType
}{
	{"classic", &SeriesType{Buckets: defaultBuckets, Scale: 0.001}},
	{"native", &SeriesType{Buckets: defaultBuckets, NativeFactor: 1.1, Scale: 0.001}},
	{"summary", &SeriesType{Observer: ObserverSummary, Scale: 0.001}},
}

// BenchmarkAddTyped_KnownSeries measures adds to a known series of a
// typed table, through AddTyped (key and lookup) and AddTo (the reader's
// path), per type. Timer values cycle through 1024 log-normal values, so
// that native buckets are looked up among a realistic number.
func BenchmarkAddTyped_KnownSeries(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	values := make([]float64, 1024)
	for i := range values {
		values[i] = math.Exp(3 + rng.NormFloat64())
	}
	type bench struct {
		name, line string
		st         *SeriesType
	}
	var benches []bench
	for _, bl := range benchLines[:2] {
		benches = append(benches, bench{bl.name, bl.line, nil})
	}
	for _, tt := range typedBenchTypes {
		benches = append(benches, bench{"timer_" + tt.name, benchLines[2].line, tt.st})
	}
	for _, path := range []string{"AddTyped", "AddTo"} {
		for _, bn := range benches {
			b.Run(path+"/"+bn.name, func(b *testing.B) {
				o := DefaultOptions()
				o.Typed = true
				tbl, err := New(o)
				if err != nil {
					b.Fatal(err)
				}
				w := tbl.NewWriter()
				s := sampleOf(b, bn.line)
				var ref Ref
				w.AddTyped(s, bn.st, &ref)
				timer := s.Type == parse.Timer
				b.SetBytes(int64(len(bn.line)))
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if timer {
						s.Values[0] = values[i&1023]
						i++
					}
					var ok bool
					if path == "AddTo" {
						ok = w.AddTo(&ref, s)
					} else {
						ok = w.AddTyped(s, bn.st, &ref)
					}
					if !ok {
						b.Fatal("dropped")
					}
				}
			})
		}
	}
}

// BenchmarkFlush_Typed measures the flush of 100k series of a typed
// table, a third each counters, gauges and native-bucket timers holding
// 10 observations.
func BenchmarkFlush_Typed(b *testing.B) {
	const n = 100_000
	samples := make([]*parse.Sample, n)
	for i := range samples {
		bl := benchLines[i%3]
		s := sampleOf(b, bl.line)
		s.Name = strconv.AppendInt(s.Name, int64(i), 10)
		samples[i] = s
	}
	o := DefaultOptions()
	o.Typed = true
	tbl, err := New(o)
	if err != nil {
		b.Fatal(err)
	}
	w := tbl.NewWriter()
	st := typedBenchTypes[1].st
	fill := func() {
		for _, s := range samples {
			var ref Ref
			for j := range 10 {
				if s.Type == parse.Timer {
					s.Values[0] = float64(1 + j*j)
				}
				w.AddTyped(s, st, &ref)
			}
		}
	}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		fill()
		now = now.Add(10 * time.Second)
		b.StartTimer()
		if ms := tbl.Flush(now); len(ms) != n {
			b.Fatalf("flushed %d metrics, want %d", len(ms), n)
		}
	}
}
