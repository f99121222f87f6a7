package aggregate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/parse"
)

// typedTable returns a typed table with o's other options.
func typedTable(t testing.TB, change func(o *Options)) *Table {
	t.Helper()
	o := DefaultOptions()
	o.Typed = true
	if change != nil {
		change(&o)
	}
	tbl, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

// renderTyped writes a typed metric as "name{k=v,…} kind value", a
// distribution as its count, sum, classic counts, native buckets and
// sample count. It checks the typed contract: one field named value.
func renderTyped(t testing.TB, m engine.Metric) string {
	t.Helper()
	if len(m.Fields) != 1 || m.Fields[0].Name != "value" {
		t.Fatalf("%s: fields %v, want one named value", m.Bucket, m.Fields)
	}
	var b strings.Builder
	b.WriteString(m.Bucket)
	if len(m.Tags) > 0 {
		var tags []string
		for _, tag := range m.Tags {
			tags = append(tags, tag.Key+"="+tag.Value)
		}
		if !slices.IsSorted(tags) {
			t.Errorf("%s: tags not sorted: %v", m.Bucket, tags)
		}
		fmt.Fprintf(&b, "{%s}", strings.Join(tags, ","))
	}
	v := m.Fields[0].Value
	kind := map[engine.Kind]string{engine.KindNumber: "number", engine.KindCounter: "counter",
		engine.KindGaugeDelta: "delta", engine.KindHistogram: "histogram", engine.KindSummary: "summary"}[v.Kind]
	fmt.Fprintf(&b, " %s ", kind)
	if d := v.Dist; d == nil {
		fmt.Fprintf(&b, "%v", v.Num)
	} else {
		fmt.Fprintf(&b, "count=%d sum=%v", d.Count, d.Sum)
		if d.Counts != nil {
			fmt.Fprintf(&b, " le=%v:%v", d.Bounds, d.Counts)
		}
		if n := d.Native; n != nil {
			fmt.Fprintf(&b, " native=s%d,z%v:%d", n.Schema, n.ZeroThreshold, n.ZeroCount)
			for _, x := range n.Negative {
				fmt.Fprintf(&b, ",-%d:%d", x.Index, x.Count)
			}
			for _, x := range n.Positive {
				fmt.Fprintf(&b, ",%d:%d", x.Index, x.Count)
			}
		}
		if d.Samples != nil {
			fmt.Fprintf(&b, " samples=%v", d.Samples)
		}
	}
	if m.Timestamp != 0 {
		fmt.Fprintf(&b, " %d", m.Timestamp)
	}
	return b.String()
}

func renderTypedAll(t testing.TB, ms []engine.Metric) []string {
	t.Helper()
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = renderTyped(t, m)
	}
	slices.Sort(out)
	return out
}

// flushTyped flushes tbl one second after its last flush and checks the
// rendered metrics.
func flushTyped(t *testing.T, tbl *Table, want ...string) []engine.Metric {
	t.Helper()
	ms := tbl.Flush(tbl.last.Add(time.Second))
	got := renderTypedAll(t, ms)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	return ms
}

func TestTyped_Kinds(t *testing.T) {
	f := func(st *SeriesType, lines []string, want ...string) {
		t.Helper()
		tbl := typedTable(t, nil)
		w := tbl.NewWriter()
		for _, l := range lines {
			var ref Ref
			if !w.AddTyped(sampleOf(t, l), st, &ref) {
				t.Fatalf("AddTyped(%q) dropped", l)
			}
		}
		flushTyped(t, tbl, want...)
	}
	// Counters: the interval's sum of value/rate, zero included.
	f(nil, []string{"c:1|c", "c:2:3|c|@0.5"}, "c counter 11")
	f(nil, []string{"c:0|c"}, "c counter 0")
	// Gauges: an absolute value makes a number, deltas after it add;
	// deltas alone are a change; rates are ignored.
	f(nil, []string{"g:+3|g", "g:-1|g|@0.5"}, "g delta 2")
	f(nil, []string{"g:5|g", "g:+1|g"}, "g number 6")
	f(nil, []string{"g:+1|g", "g:5|g"}, "g number 5")
	f(nil, []string{"g:-2|g", "g:5|g", "g:-1|g"}, "g number 4")
	// Sets: the distinct members.
	f(nil, []string{"s:a|s", "s:b|s", "s:a|s"}, "s number 2")
	// Tags are labels, bucket included; the name is not escaped; kinds
	// of one name are separate series.
	f(nil, []string{"a.b-c:1|c|#env=prod,bucket=x", "a.b-c:1|g|#env=prod,bucket=x"},
		"a.b-c{bucket=x,env=prod} counter 1", "a.b-c{bucket=x,env=prod} number 1")
	// Timers, histograms and distributions of one name are one series.
	hist := &SeriesType{Buckets: []float64{1, 2}}
	f(hist, []string{"t:1|ms", "t:2|h", "t:3|d"}, "t histogram count=3 sum=6 le=[1 2]:[1 1 1]")
	// Sample timestamps are kept.
	f(nil, []string{"c:1|c|T1700000000000"}, "c counter 1 1700000000000")
}

// The default type of a typed table: DefaultBuckets, ms in seconds.
func TestTyped_Default(t *testing.T) {
	tbl := typedTable(t, func(o *Options) { o.DefaultBuckets = []float64{0.005, 1, math.Inf(1)} })
	w := tbl.NewWriter()
	for _, l := range []string{"t:5|ms", "t:5.000001|ms", "h:5|h", "d:0.5|d"} {
		w.Add(sampleOf(t, l))
	}
	flushTyped(t, tbl,
		"t histogram count=2 sum=0.010000001000000001 le=[0.005 1]:[1 1 0]",
		"h histogram count=1 sum=5 le=[0.005 1]:[0 0 1]",
		"d histogram count=1 sum=0.5 le=[0.005 1]:[0 1 0]")
	if tbl.o.DefaultBuckets[len(tbl.o.DefaultBuckets)-1] != 1 {
		t.Fatalf("DefaultBuckets %v: the trailing +Inf was not dropped", tbl.o.DefaultBuckets)
	}
}

// Classic buckets are upper-inclusive: a value on a bound is in its
// bucket, the next float above it in the next.
func TestTyped_ClassicEdges(t *testing.T) {
	bounds := []float64{-1, 0, 0.1, 1, 2.5}
	for _, n := range []int{len(bounds), 40} { // linear and binary search
		b := slices.Clone(bounds)
		for len(b) < n {
			b = append(b, b[len(b)-1]+1)
		}
		st := &SeriesType{Buckets: b}
		tbl := typedTable(t, nil)
		w := tbl.NewWriter()
		s := &parse.Sample{Name: []byte("h"), Type: parse.Histogram, Rate: 1, Values: make([]float64, 1)}
		want := make([]uint64, len(b)+1)
		for i, bound := range b {
			for _, v := range []float64{bound, math.Nextafter(bound, math.Inf(1))} {
				s.Values[0] = v
				var ref Ref
				w.AddTyped(s, st, &ref)
			}
			want[i]++
			want[i+1]++
		}
		s.Values[0] = math.Inf(-1)
		var ref Ref
		w.AddTyped(s, st, &ref)
		want[0]++
		d := tbl.Flush(time.Now())[0].Fields[0].Value.Dist
		if !slices.Equal(d.Counts, want) || !slices.Equal(d.Bounds, b) {
			t.Fatalf("%d bounds: counts %v, want %v", n, d.Counts, want)
		}
	}
}

func TestPickSchema(t *testing.T) {
	f := func(factor float64, want int32) {
		t.Helper()
		if got := pickSchema(factor); got != want {
			t.Fatalf("pickSchema(%v) = %d, want %d", factor, got, want)
		}
	}
	f(1.1, 3)
	f(1.5, 1)
	f(2, 0)
	f(3, 0)
	f(3.9, 0)
	f(4, -1)
	f(1.0001, 8)
	f(1e6, -4)
	f(math.MaxFloat64, -4)
}

// nativeIndex against hand-computed indexes: i is the bucket with
// base^(i-1) < v <= base^i, base = 2^(2^-schema).
func TestNativeIndex(t *testing.T) {
	f := func(schema int32, v float64, want int32) {
		t.Helper()
		if got := nativeIndex(v, schema); got != want {
			t.Fatalf("nativeIndex(%v, schema %d) = %d, want %d", v, schema, got, want)
		}
	}
	// Schema 3: base 2^(1/8) ≈ 1.0905.
	f(3, 1, 0)
	f(3, 2, 8)
	f(3, 0.5, -8)
	f(3, 1.05, 1)    // 1 < 1.05 <= 1.0905
	f(3, 1.1, 2)     // 1.0905 < 1.1 <= 1.1892
	f(3, 3, 13)      // 2^(12/8) = 2.828 < 3 <= 2^(13/8) = 3.084
	f(3, 0.001, -79) // 2^-10 < 0.001 <= 2^(-79/8) = 0.001063
	f(3, math.Nextafter(1, 2), 1)
	f(3, math.Nextafter(1, 0), 0)
	// Schema 0: base 2.
	f(0, 1, 0)
	f(0, 2, 1)
	f(0, 3, 2)
	f(0, 4, 2)
	f(0, 4.0001, 3)
	f(0, 0.5, -1)
	f(0, 0.3, -1)
	f(0, 0x1p-1074, -1074)
	f(0, math.MaxFloat64, 1024)
	f(0, math.Inf(1), 1025)
	// Schema -1: base 4.
	f(-1, 1, 0)
	f(-1, 2, 1)
	f(-1, 4, 1)
	f(-1, 4.5, 2)
	f(-1, 16, 2)
	f(-1, 0.3, 0)
	f(-1, 0.25, -1)
	f(-1, 0.2, -1)
}

// schemaFactor returns a bucket factor for which client_golang picks
// schema s.
func schemaFactor(s int32) float64 {
	return math.Exp2(math.Exp2(float64(-s))) * (1 + 1e-9)
}

// TestNative_ClientGolang feeds the same values, bucket boundaries and
// their neighbours among them, to a typed series and to client_golang's
// histogram at every schema, and compares the buckets written.
func TestNative_ClientGolang(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var values []float64
	// Few enough distinct buckets at schema 8 to stay below
	// maxNativeBuckets, so that no schema halves its resolution.
	for k := -2; k <= 1; k++ {
		for j, b := range nativeBounds[maxSchema] {
			v := math.Ldexp(b, k)
			values = append(values, v, math.Nextafter(v, 0), math.Nextafter(v, math.Inf(1)))
			if j%4 == 0 {
				values = append(values, -v)
			}
		}
	}
	for range 250 {
		values = append(values, math.Exp(rng.NormFloat64()*10), -rng.ExpFloat64())
	}
	values = append(values, 0, 1e-40, -1e-40, 0x1p-128, -0x1p-128, math.Nextafter(0x1p-128, 1), 1e300, -1e300)
	classic := []float64{-1, 0, 0.005, 0.01, 0.1, 1, 10}

	for s := int32(minSchema); s <= maxSchema; s++ {
		for _, zero := range []float64{0, 0.001} {
			factor := schemaFactor(s)
			st := &SeriesType{Buckets: classic, NativeFactor: factor, NativeZeroThreshold: zero}
			h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h", Help: "h", Buckets: classic,
				NativeHistogramBucketFactor: factor, NativeHistogramZeroThreshold: zero})
			tbl := typedTable(t, nil)
			w := tbl.NewWriter()
			sample := &parse.Sample{Name: []byte("h"), Type: parse.Histogram, Rate: 1, Values: make([]float64, 1)}
			var ref Ref
			for i, v := range values {
				h.Observe(v)
				sample.Values[0] = v
				if i == 0 {
					w.AddTyped(sample, st, &ref)
				} else {
					w.AddTo(&ref, sample)
				}
			}
			var m dto.Metric
			if err := h.Write(&m); err != nil {
				t.Fatal(err)
			}
			ph := m.GetHistogram()
			d := tbl.Flush(time.Now())[0].Fields[0].Value.Dist
			n := d.Native
			if n.Schema != ph.GetSchema() || n.Schema != s || n.ZeroThreshold != ph.GetZeroThreshold() || n.ZeroCount != ph.GetZeroCount() {
				t.Fatalf("schema %d: schema %d, zero %v:%d; client_golang %d, %v:%d", s,
					n.Schema, n.ZeroThreshold, n.ZeroCount, ph.GetSchema(), ph.GetZeroThreshold(), ph.GetZeroCount())
			}
			if d.Count != ph.GetSampleCount() || d.Sum != ph.GetSampleSum() {
				t.Fatalf("schema %d: count %d sum %v; client_golang %d %v", s, d.Count, d.Sum, ph.GetSampleCount(), ph.GetSampleSum())
			}
			if got, want := n.Positive, decodeSpans(ph.GetPositiveSpan(), ph.GetPositiveDelta()); !slices.Equal(got, want) {
				t.Fatalf("schema %d: positive buckets differ:\n got  %v\n want %v", s, got, want)
			}
			if got, want := n.Negative, decodeSpans(ph.GetNegativeSpan(), ph.GetNegativeDelta()); !slices.Equal(got, want) {
				t.Fatalf("schema %d: negative buckets differ:\n got  %v\n want %v", s, got, want)
			}
			var cum uint64
			for i, b := range ph.GetBucket() {
				cum += d.Counts[i]
				if b.GetUpperBound() != classic[i] || b.GetCumulativeCount() != cum {
					t.Fatalf("schema %d: le=%v cumulative %d, client_golang le=%v %d", s, classic[i], cum, b.GetUpperBound(), b.GetCumulativeCount())
				}
			}
		}
	}
}

// decodeSpans returns the populated buckets of a dto span encoding.
func decodeSpans(spans []*dto.BucketSpan, deltas []int64) []engine.NativeBucket {
	var out []engine.NativeBucket
	var idx int32
	var count int64
	for _, sp := range spans {
		idx += sp.GetOffset()
		for range sp.GetLength() {
			count += deltas[0]
			deltas = deltas[1:]
			if count != 0 {
				out = append(out, engine.NativeBucket{Index: idx, Count: uint64(count)})
			}
			idx++
		}
	}
	return out
}

// Past maxNativeBuckets a series halves its resolution; its buckets are
// then those of the lower schema, counts kept.
func TestNative_Halving(t *testing.T) {
	var values []float64
	for i := range 3000 {
		values = append(values, math.Exp2(float64(i)/256)) // one bucket each at schema 8
	}
	hi := &SeriesType{NativeFactor: schemaFactor(8)}
	tbl := typedTable(t, nil)
	w := tbl.NewWriter()
	s := &parse.Sample{Name: []byte("h"), Type: parse.Histogram, Rate: 1, Values: values}
	var ref Ref
	w.AddTyped(s, hi, &ref)
	got := tbl.Flush(time.Now())[0].Fields[0].Value.Dist.Native
	if got.Schema != 7 || len(got.Positive) > maxNativeBuckets {
		t.Fatalf("schema %d with %d buckets, want 7 and at most %d", got.Schema, len(got.Positive), maxNativeBuckets)
	}
	w.AddTyped(s, &SeriesType{NativeFactor: schemaFactor(7)}, &ref)
	want := tbl.Flush(time.Now())[0].Fields[0].Value.Dist.Native
	if !slices.Equal(got.Positive, want.Positive) {
		t.Fatalf("halved buckets differ from schema 7's:\n got  %v\n want %v", got.Positive[:10], want.Positive[:10])
	}
}

func TestTyped_Scale(t *testing.T) {
	f := func(scale float64, v, want float64) {
		t.Helper()
		tbl := typedTable(t, nil)
		w := tbl.NewWriter()
		var ref Ref
		w.AddTyped(&parse.Sample{Name: []byte("t"), Type: parse.Timer, Rate: 1, Values: []float64{v}}, &SeriesType{Scale: scale}, &ref)
		if got := tbl.Flush(time.Now())[0].Fields[0].Value.Dist.Sum; got != want {
			t.Fatalf("Scale %v of %v: %v, want %v", scale, v, got, want)
		}
	}
	f(0, 7, 7)
	f(2, 7, 14)
	f(0.5, 7, 3.5)
	f(1.5, 3, 4.5)
	// The reciprocal of an integer divides, as statsd_exporter's v/1000:
	// 0.001 is not exactly 1/1000, and for these the product differs.
	n := 0
	for v := 1.0; n < 5; v++ {
		if v*0.001 != v/1000 {
			f(0.001, v, v/1000)
			n++
		}
	}
}

// Observer lines with @rate count int(1/rate) times, as statsd_exporter
// replicates them.
func TestTyped_SampleRates(t *testing.T) {
	st := &SeriesType{Buckets: []float64{1}, NativeFactor: 2}
	f := func(line, want string) {
		t.Helper()
		tbl := typedTable(t, nil)
		w := tbl.NewWriter()
		var ref Ref
		w.AddTyped(sampleOf(t, line), st, &ref)
		flushTyped(t, tbl, want)
	}
	f("h:1|h|@0.1", "h histogram count=10 sum=10 le=[1]:[10 0] native=s0,z2.938735877055719e-39:0,0:10")
	f("h:2:0|h|@0.3", "h histogram count=6 sum=6 le=[1]:[3 3] native=s0,z2.938735877055719e-39:3,1:3")
	f("h:2|h|@0.7", "h histogram count=1 sum=2 le=[1]:[0 1] native=s0,z2.938735877055719e-39:0,1:1")
	f("h:-2|h|@1e-300", "h histogram count=4294967296 sum=-8.589934592e+09 le=[1]:[4294967296 0] native=s0,z2.938735877055719e-39:0,-1:4294967296")
	f("c:1|c|@0.1", "c counter 10")
}

// A summary keeps its samples, a uniform reservoir past MaxTimerSamples,
// and exact count and sum.
func TestTyped_Summary(t *testing.T) {
	meta := &engine.TypeMeta{Help: "latency", Quantiles: []engine.Quantile{{Q: 0.5, Error: 0.05}}}
	st := &SeriesType{Observer: ObserverSummary, Scale: 0.001, Buckets: []float64{1}, NativeFactor: 2, Meta: meta}
	tbl := typedTable(t, func(o *Options) { o.MaxTimerSamples = 100 })
	w := tbl.NewWriter()
	var ref Ref
	w.AddTyped(sampleOf(t, "t:1000:2000|ms|@0.5"), st, &ref)
	flushTyped(t, tbl, "t summary count=4 sum=6 samples=[1 2]")

	s := &parse.Sample{Name: []byte("t"), Type: parse.Timer, Rate: 1, Values: make([]float64, 1)}
	var sum float64
	for i := range 1000 {
		s.Values[0] = float64(i)
		sum += float64(i) / 1000
		w.AddTo(&ref, s)
	}
	ms := tbl.Flush(time.Now())
	v := ms[0].Fields[0].Value
	d := v.Dist
	if v.Kind != engine.KindSummary || v.Meta != meta || d.Count != 1000 || d.Sum != sum || len(d.Samples) != 100 || tbl.TimersSampled() != 1 {
		t.Fatalf("kind %v meta %p count %d sum %v samples %d sampled %d; want summary, %p, 1000, %v, 100, 1",
			v.Kind, v.Meta, d.Count, d.Sum, len(d.Samples), tbl.TimersSampled(), meta, sum)
	}
	seen := map[float64]bool{}
	for _, x := range d.Samples {
		if x != math.Round(x*1000)/1000 || x < 0 || x >= 1 || seen[x] {
			t.Fatalf("sample %v is not one of the observations, or repeated", x)
		}
		seen[x] = true
	}
	if d.Counts != nil || d.Native != nil {
		t.Fatal("a summary has buckets")
	}
}

// A typed series keeps its type through AddTo, across flushes, and
// against other SeriesTypes given for it in the same interval; Meta
// reaches the metric.
func TestTyped_Ref(t *testing.T) {
	meta := &engine.TypeMeta{Help: "requests"}
	summary := &SeriesType{Observer: ObserverSummary, Meta: meta}
	tbl := typedTable(t, func(o *Options) { o.MaxSeries = 3 })
	tbl.sum64 = func([]byte) uint64 { return 42 }
	w, other := tbl.NewWriter(), tbl.NewWriter()
	var rt, rc Ref
	w.AddTyped(sampleOf(t, "t:1|ms|#k=v"), summary, &rt)
	w.AddTyped(sampleOf(t, "c:1|c"), &SeriesType{Meta: meta}, &rc)
	var dummy Ref
	other.AddTyped(sampleOf(t, "t:2|ms|#k=v"), &SeriesType{Buckets: []float64{1}}, &dummy)
	w.AddTo(&rt, sampleOf(t, "t:3|ms"))
	ms := flushTyped(t, tbl, "t{k=v} summary count=3 sum=6 samples=[1 2 3]", "c counter 1")
	for _, m := range ms {
		if m.Fields[0].Value.Meta != meta {
			t.Fatalf("%s: Meta %p, want %p", m.Bucket, m.Fields[0].Value.Meta, meta)
		}
	}
	kept := ms[0].Fields[0].Value.Dist
	keptSamples := slices.Clone(kept.Samples)

	// After the flush the Refs start their series again, of their type,
	// and the previous batch is left alone.
	for range 3 {
		w.AddTo(&rt, sampleOf(t, "t:5|ms"))
		w.AddTo(&rc, sampleOf(t, "c:2|c"))
	}
	flushTyped(t, tbl, "t{k=v} summary count=3 sum=15 samples=[5 5 5]", "c counter 6")
	if !slices.Equal(kept.Samples, keptSamples) || kept.Count != 3 {
		t.Fatalf("the previous batch changed: %v", kept)
	}
	// A series first started by another type keeps that one.
	other.AddTyped(sampleOf(t, "t:0.5|ms|#k=v"), &SeriesType{Buckets: []float64{1}}, &dummy)
	w.AddTo(&rt, sampleOf(t, "t:2|ms"))
	flushTyped(t, tbl, "t{k=v} histogram count=2 sum=2.5 le=[1]:[1 1]")

	// MaxSeries holds for typed series; a Ref that finds no room drops.
	for _, l := range []string{"x:1|c", "y:1|c", "z:1|c"} {
		other.Add(sampleOf(t, l))
	}
	if w.AddTo(&rt, sampleOf(t, "t:1|ms")) || w.AddTyped(sampleOf(t, "n:1|g"), summary, &dummy) || tbl.SeriesDropped() != 2 {
		t.Fatalf("typed adds into a full table: dropped %d, want 2", tbl.SeriesDropped())
	}
	flushTyped(t, tbl, "x counter 1", "y counter 1", "z counter 1")
}

// A tight memory budget refuses new typed series like any other.
func TestTyped_Memory(t *testing.T) {
	b := &budget{}
	tbl := typedTable(t, func(o *Options) { o.Memory = b })
	w := tbl.NewWriter()
	var ref Ref
	st := &SeriesType{Buckets: []float64{1}}
	w.AddTyped(sampleOf(t, "h:1|h"), st, &ref)
	b.tight = true
	var other Ref
	if w.AddTyped(sampleOf(t, "h2:1|h"), st, &other) || tbl.MemoryDropped() != 1 {
		t.Fatalf("new series while tight: not dropped (%d)", tbl.MemoryDropped())
	}
	if !w.AddTo(&ref, sampleOf(t, "h:2|h")) {
		t.Fatal("known series dropped while tight")
	}
	flushTyped(t, tbl, "h histogram count=2 sum=3 le=[1]:[1 1]")
}

// A table that is not typed ignores SeriesTypes: the bucky3 layout.
func TestTyped_NotTyped(t *testing.T) {
	o := DefaultOptions()
	o.PercentileThresholds = []float64{100}
	tbl, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	w := tbl.NewWriter()
	var ref Ref
	w.AddTyped(sampleOf(t, "t:1|ms"), &SeriesType{Observer: ObserverSummary}, &ref)
	w.AddTo(&ref, sampleOf(t, "t:3|ms"))
	got := renderAll(t, tbl.Flush(tbl.last.Add(time.Second)))
	want := []string{"stats_timers,name=t,percentile=100.0 count=2,count_ps=2,lower=1,upper=3,mean=2,stdev=1.4142135623730951"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestSeriesTypeValidate(t *testing.T) {
	f := func(st SeriesType, want string) {
		t.Helper()
		err := st.Validate()
		if want == "" {
			if err != nil {
				t.Fatalf("Validate(%+v): %v", st, err)
			}
			return
		}
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Fatalf("Validate(%+v): %v, want %q", st, err, want)
		}
	}
	f(SeriesType{}, "")
	f(SeriesType{Buckets: []float64{1, 2, math.Inf(1)}, NativeFactor: 1.1, Scale: 0.001}, "")
	f(SeriesType{Observer: 2}, "observer: ")
	f(SeriesType{Buckets: []float64{2, 1}}, "buckets: 1 is not above the previous bound 2")
	f(SeriesType{Buckets: []float64{1, 1}}, "buckets: ")
	f(SeriesType{Buckets: []float64{math.NaN()}}, "buckets: ")
	f(SeriesType{Buckets: []float64{math.Inf(-1), 1}}, "buckets: ")
	f(SeriesType{NativeFactor: math.NaN()}, "native_factor: ")
	f(SeriesType{NativeZeroThreshold: math.Inf(1)}, "native_zero_threshold: ")
	f(SeriesType{Scale: -1}, "scale: ")
}

// FuzzNativeBucket checks that a value lands in the same native bucket
// (or zero bucket) as client_golang puts it, at any schema.
func FuzzNativeBucket(f *testing.F) {
	f.Add(1.0, int8(3))
	f.Add(0.001, int8(0))
	f.Add(-4.0, int8(-1))
	f.Add(0x1p-128, int8(8))
	f.Add(math.MaxFloat64, int8(-4))
	f.Add(1e-300, int8(5))
	f.Fuzz(func(t *testing.T, v float64, schema int8) {
		if math.IsNaN(v) || schema < minSchema || schema > maxSchema {
			return
		}
		factor := schemaFactor(int32(schema))
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h", Help: "h", NativeHistogramBucketFactor: factor})
		h.Observe(v)
		var m dto.Metric
		if err := h.Write(&m); err != nil {
			t.Fatal(err)
		}
		ph := m.GetHistogram()
		tbl := typedTable(t, nil)
		var ref Ref
		tbl.NewWriter().AddTyped(&parse.Sample{Name: []byte("h"), Type: parse.Histogram, Rate: 1, Values: []float64{v}},
			&SeriesType{NativeFactor: factor}, &ref)
		n := tbl.Flush(time.Now())[0].Fields[0].Value.Dist.Native
		pos, neg := decodeSpans(ph.GetPositiveSpan(), ph.GetPositiveDelta()), decodeSpans(ph.GetNegativeSpan(), ph.GetNegativeDelta())
		if n.Schema != ph.GetSchema() || n.ZeroCount != ph.GetZeroCount() || !slices.Equal(n.Positive, pos) || !slices.Equal(n.Negative, neg) {
			t.Fatalf("%v at schema %d: %d zero %d %v %v; client_golang %d zero %d %v %v", v, schema,
				n.Schema, n.ZeroCount, n.Positive, n.Negative, ph.GetSchema(), ph.GetZeroCount(), pos, neg)
		}
	})
}

// TestTyped_Concurrent adds typed samples from several goroutines while
// another flushes: every observation is counted exactly once across the
// flushes, and batches already returned do not change. Run it with -race.
func TestTyped_Concurrent(t *testing.T) {
	tbl := typedTable(t, func(o *Options) { o.Stripes = 4 })
	st := &SeriesType{Buckets: []float64{1, 2}, NativeFactor: 1.1}
	sum := &SeriesType{Observer: ObserverSummary, Scale: 2}
	const writers, perWriter, seriesN = 4, 3000, 20
	var counter, bucketed, native, summaries, flushes float64
	var batches [][]engine.Metric
	collect := func(ms []engine.Metric) {
		batches = append(batches, ms)
		for _, m := range ms {
			v := m.Fields[0].Value
			switch v.Kind {
			case engine.KindCounter:
				counter += v.Num
			case engine.KindHistogram:
				for _, c := range v.Dist.Counts {
					bucketed += float64(c)
				}
				native += float64(v.Dist.Native.ZeroCount)
				for _, b := range v.Dist.Native.Positive {
					native += float64(b.Count)
				}
			case engine.KindSummary:
				summaries += float64(v.Dist.Count)
			}
		}
	}
	snapshot := func() []string {
		var out []string
		for _, b := range batches {
			out = append(out, renderTypedAll(t, b)...)
		}
		return out
	}
	done := make(chan struct{})
	var flusher sync.WaitGroup
	var mid []string
	flusher.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
				collect(tbl.Flush(time.Now()))
				if flushes++; flushes == 10 {
					mid = snapshot()
				}
			}
		}
	})
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			w := tbl.NewWriter()
			samples := []struct {
				s  *parse.Sample
				st *SeriesType
			}{
				{&parse.Sample{Type: parse.Counter, Rate: 0.5, Values: []float64{1}}, nil},
				{&parse.Sample{Type: parse.Histogram, Rate: 1, Values: []float64{0, 1.5}}, st},
				{&parse.Sample{Type: parse.Distribution, Rate: 0.25, Values: []float64{3}, Tags: []parse.Tag{{Key: []byte("s"), Value: []byte("1")}}}, sum},
			}
			refs := map[int]*Ref{}
			for i := range perWriter {
				x := samples[i%len(samples)]
				x.s.Name = fmt.Appendf(x.s.Name[:0], "s%d", i%seriesN)
				ref := refs[i%60]
				var ok bool
				if g%2 == 0 || ref == nil {
					ref = new(Ref)
					refs[i%60] = ref
					ok = w.AddTyped(x.s, x.st, ref)
				} else {
					ok = w.AddTo(ref, x.s)
				}
				if !ok {
					t.Errorf("dropped %s", x.s.Name)
				}
			}
		})
	}
	wg.Wait()
	close(done)
	flusher.Wait()
	collect(tbl.Flush(time.Now()))
	third := float64(writers * perWriter / 3)
	if counter != 2*third || bucketed != 2*third || native != 2*third || summaries != 4*third {
		t.Errorf("counted counter %v, bucketed %v, native %v, summaries %v; want %v, %v, %v, %v",
			counter, bucketed, native, summaries, 2*third, 2*third, 2*third, 4*third)
	}
	if mid != nil && !slices.Equal(mid, snapshot()[:len(mid)]) {
		t.Error("a batch changed after later flushes")
	}
}
