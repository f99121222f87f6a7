package aggregate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/parse"
)

var inf = math.Inf(1)

// sampleOf builds the Sample the parser would deliver for a line of the
// form name:v[:v…]|type[|@rate][|#k=v,…][|T<millis>], tags sorted. The
// timestamp is taken as milliseconds, unlike the wire format's seconds.
func sampleOf(t testing.TB, line string) *parse.Sample {
	t.Helper()
	parts := strings.Split(line, "|")
	name, values, _ := strings.Cut(parts[0], ":")
	s := &parse.Sample{Name: []byte(name), Rate: 1}
	s.Type = map[string]parse.Type{"c": parse.Counter, "g": parse.Gauge, "ms": parse.Timer,
		"h": parse.Histogram, "s": parse.Set, "d": parse.Distribution}[parts[1]]
	if s.Type == parse.Set {
		s.SetMember = []byte(values)
	} else {
		for _, v := range strings.Split(values, ":") {
			s.Delta = s.Type == parse.Gauge && (v[0] == '+' || v[0] == '-')
			s.Values = append(s.Values, mustFloat(t, v))
		}
	}
	for _, p := range parts[2:] {
		switch p[0] {
		case '@':
			s.Rate = mustFloat(t, p[1:])
		case '#':
			for _, tag := range strings.Split(p[1:], ",") {
				k, v, _ := strings.Cut(tag, "=")
				s.Tags = append(s.Tags, parse.Tag{Key: []byte(k), Value: []byte(v)})
			}
		case 'T':
			s.Timestamp = int64(mustFloat(t, p[1:]))
		}
	}
	slices.SortFunc(s.Tags, func(a, b parse.Tag) int { return strings.Compare(string(a.Key), string(b.Key)) })
	return s
}

func mustFloat(t testing.TB, s string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// render writes m as "bucket,tag=v,… field=v,… [timestamp]" after checking
// that its tags are sorted and unique.
func render(t testing.TB, m engine.Metric) string {
	t.Helper()
	if !slices.IsSortedFunc(m.Tags, func(a, b engine.Tag) int {
		if a.Key == b.Key {
			t.Errorf("%s: repeated tag %q", m.Bucket, a.Key)
		}
		return strings.Compare(a.Key, b.Key)
	}) {
		t.Errorf("%s: tags not sorted: %v", m.Bucket, m.Tags)
	}
	var b strings.Builder
	b.WriteString(m.Bucket)
	for _, tag := range m.Tags {
		fmt.Fprintf(&b, ",%s=%s", tag.Key, tag.Value)
	}
	sep := " "
	for _, f := range m.Fields {
		fmt.Fprintf(&b, "%s%s=%s", sep, f.Name, f.Value)
		sep = ","
	}
	if m.Timestamp != 0 {
		fmt.Fprintf(&b, " %d", m.Timestamp)
	}
	return b.String()
}

func renderAll(t testing.TB, ms []engine.Metric) []string {
	t.Helper()
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = render(t, m)
	}
	slices.Sort(out)
	return out
}

// flushLines adds lines to a new Table in one 10 s interval and returns its
// rendered flush. The interval is exact: synctest's clock only moves when
// every goroutine of the bubble waits.
func flushLines(t *testing.T, o Options, lines ...string) []string {
	t.Helper()
	var got []string
	synctest.Test(t, func(t *testing.T) {
		tbl, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		w := tbl.NewWriter()
		for _, l := range lines {
			if !w.Add(sampleOf(t, l)) {
				t.Fatalf("Add(%q) = false", l)
			}
		}
		time.Sleep(10 * time.Second)
		got = renderAll(t, tbl.Flush(time.Now()))
	})
	return got
}

func checkLines(t *testing.T, o Options, lines []string, want ...string) {
	t.Helper()
	got := flushLines(t, o, lines...)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("lines %q:\ngot  %q\nwant %q", lines, got, want)
	}
}

func TestFlush_Counters(t *testing.T) {
	f := func(lines []string, want ...string) {
		t.Helper()
		checkLines(t, DefaultOptions(), lines, want...)
	}
	// The reference case: rates are count / 10 s.
	f([]string{"gorm:1.5|c", "gorm:3|c", "gorm:0.5|c", "gurm:1|c|@0.1", "form:10|c|@0.2"},
		"stats_counters,name=gorm count=5,rate=0.5",
		"stats_counters,name=gurm count=10,rate=1",
		"stats_counters,name=form count=50,rate=5")
	f([]string{"c:1:2:3|c|@0.5"}, "stats_counters,name=c count=12,rate=1.2")
	f([]string{"c:-4|c", "c:1|c"}, "stats_counters,name=c count=-3,rate=-0.3")
	// Tags split series; name overrides a line tag; bucket moves the metric.
	f([]string{"c:1|c|#host=a", "c:2|c|#host=b", "c:3|c|#host=a"},
		"stats_counters,host=a,name=c count=4,rate=0.4",
		"stats_counters,host=b,name=c count=2,rate=0.2")
	f([]string{"c:1|c|#name=other,zone=z"}, "stats_counters,name=c,zone=z count=1,rate=0.1")
	f([]string{"c:1|c|#bucket=mine,host=a", "c:1|c|#host=a"},
		"mine,host=a,name=c count=1,rate=0.1",
		"stats_counters,host=a,name=c count=1,rate=0.1")
}

func TestFlush_Gauges(t *testing.T) {
	f := func(lines []string, want ...string) {
		t.Helper()
		checkLines(t, DefaultOptions(), lines, want...)
	}
	f([]string{"g:1|g", "g:5|g", "g:3|g"}, "stats_gauges,name=g value=3")
	f([]string{"g:1|g", "g:+2|g"}, "stats_gauges,name=g value=3")
	f([]string{"g:10|g", "g:-2.5|g", "g:-0.5|g"}, "stats_gauges,name=g value=7")
	// A signed first value sets the gauge.
	f([]string{"g:-2|g"}, "stats_gauges,name=g value=-2")
	f([]string{"g:+2|g", "g:+2|g"}, "stats_gauges,name=g value=4")
	f([]string{"g:5|g", "g:-1|g", "g:7|g"}, "stats_gauges,name=g value=7")
	f([]string{"g:+1:+2|g"}, "stats_gauges,name=g value=3")
	f([]string{"g:1:2|g"}, "stats_gauges,name=g value=2")
	// A gauge and a counter of the same name are different series.
	f([]string{"x:1|g", "x:1|c", "x:+1|g"},
		"stats_gauges,name=x value=2",
		"stats_counters,name=x count=1,rate=0.1")
	// Both share a bucket tag and still do not merge.
	f([]string{"x:1|g|#bucket=b", "x:1|c|#bucket=b"},
		"b,name=x value=1",
		"b,name=x count=1,rate=0.1")
}

func TestFlush_Sets(t *testing.T) {
	f := func(lines []string, want ...string) {
		t.Helper()
		checkLines(t, DefaultOptions(), lines, want...)
	}
	f([]string{"s:a|s", "s:b|s", "s:a|s"}, "stats_sets,name=s count=2")
	f([]string{"s:a|s", "s:a|s|#k=v"}, "stats_sets,name=s count=1", "stats_sets,k=v,name=s count=1")
	f([]string{"s:|s", "s:x|s"}, "stats_sets,name=s count=2")
}

func TestFlush_Timestamps(t *testing.T) {
	f := func(add bool, lines []string, want ...string) {
		t.Helper()
		o := DefaultOptions()
		o.AddTimestamps = add
		checkLines(t, o, lines, want...)
	}
	f(false, []string{"c:1|c|T1000", "c:1|c|T3000", "c:1|c|T2000", "c:1|c"}, "stats_counters,name=c count=4,rate=0.4 2000")
	f(false, []string{"c:1|c"}, "stats_counters,name=c count=1,rate=0.1")
	// synctest's clock starts at 2000-01-01 00:00:00 UTC; the flush is 10 s later.
	f(true, []string{"c:1|c", "g:1|g|T5"},
		"stats_counters,name=c count=1,rate=0.1 946684810000",
		"stats_gauges,name=g value=1 5")
}

func TestFlush_Timers(t *testing.T) {
	f := func(thresholds []float64, lines []string, want ...string) {
		t.Helper()
		o := DefaultOptions()
		o.PercentileThresholds = thresholds
		checkLines(t, o, lines, want...)
	}
	f(nil, []string{"t:1|ms"})
	f([]float64{50, 100}, []string{"t:4|ms", "t:1|h", "t:3:2|d"},
		"stats_timers,name=t,percentile=50.0 count=2,count_ps=0.2,lower=1,upper=2,mean=1.5,stdev=0.7071067811865476",
		"stats_timers,name=t,percentile=100.0 count=4,count_ps=0.4,lower=1,upper=4,mean=2.5,stdev=1.2909944487358056")
	// k is at least 1, and no stdev for a single sample.
	f([]float64{10, 99.9}, []string{"t:7:3|ms"},
		"stats_timers,name=t,percentile=10.0 count=1,count_ps=0.1,lower=3,upper=3,mean=3",
		"stats_timers,name=t,percentile=99.9 count=1,count_ps=0.1,lower=3,upper=3,mean=3")
	f([]float64{100}, []string{"t:5|ms", "t:5|ms"},
		"stats_timers,name=t,percentile=100.0 count=2,count_ps=0.2,lower=5,upper=5,mean=5,stdev=0")
	// The percentile tag overrides a line tag of that key.
	f([]float64{100}, []string{"t:5|ms|#percentile=x,z=1"},
		"stats_timers,name=t,percentile=100.0,z=1 count=1,count_ps=0.1,lower=5,upper=5,mean=5")
}

func TestFlush_Histograms(t *testing.T) {
	rules := []HistogramRule{
		{Match: "lat_.*|duration", Lower: ptr(0), Bins: []Bin{
			{Name: "under_10", Upper: ptr(10)}, {Name: "under_100", Upper: ptr(100)}, {Name: "over_100"}}},
		// Never reached for lat_x: the first matching rule wins.
		{Match: "lat_x", Bins: []Bin{{Name: "all"}}},
		{Match: "closed", Bins: []Bin{{Name: "low", Upper: ptr(-1)}, {Name: "mid", Upper: ptr(1)}}},
	}
	f := func(thresholds []float64, lines []string, want ...string) {
		t.Helper()
		o := DefaultOptions()
		o.PercentileThresholds = thresholds
		o.Histograms = rules
		checkLines(t, o, lines, want...)
	}
	f(nil, []string{"lat_x:-5:1:5:10:50:150:1000|ms", "lat_x:0|h"},
		"stats_histograms,histogram=under_10,name=lat_x count=3,count_ps=0.3,lower=0,upper=5,mean=2,stdev=2.6457513110645907",
		"stats_histograms,histogram=under_100,name=lat_x count=2,count_ps=0.2,lower=10,upper=50,mean=30,stdev=28.284271247461902",
		"stats_histograms,histogram=over_100,name=lat_x count=2,count_ps=0.2,lower=150,upper=1000,mean=575,stdev=601.0407640085654")
	// Empty bins emit nothing; the match is anchored.
	f(nil, []string{"duration:20|d", "xduration:20|d", "duration_x:20|d"},
		"stats_histograms,histogram=under_100,name=duration count=1,count_ps=0.1,lower=20,upper=20,mean=20")
	// Without a lower bound every sample below the first upper is binned;
	// samples at or above a closed last bin's upper are in no bin.
	f(nil, []string{"closed:-100:-1:0.5:1:2|ms"},
		"stats_histograms,histogram=low,name=closed count=1,count_ps=0.1,lower=-100,upper=-100,mean=-100",
		"stats_histograms,histogram=mid,name=closed count=2,count_ps=0.2,lower=-1,upper=0.5,mean=-0.25,stdev=1.0606601717798212")
	// Percentiles and bins together, bucket tag applying to both.
	f([]float64{100}, []string{"duration:1:2|ms|#bucket=lat"},
		"lat,name=duration,percentile=100.0 count=2,count_ps=0.2,lower=1,upper=2,mean=1.5,stdev=0.7071067811865476",
		"lat,histogram=under_10,name=duration count=2,count_ps=0.2,lower=1,upper=2,mean=1.5,stdev=0.7071067811865476")
}

// refStats is §4.3's arithmetic done the obvious way, two-pass.
func refStats(x []float64) map[string]float64 {
	m := map[string]float64{"count": float64(len(x)), "lower": x[0], "upper": x[len(x)-1]}
	sum := 0.0
	for _, v := range x {
		sum += v
	}
	mean := sum / float64(len(x))
	m["mean"] = mean
	if len(x) > 1 {
		ss := 0.0
		for _, v := range x {
			ss += (v - mean) * (v - mean)
		}
		m["stdev"] = math.Sqrt(ss / float64(len(x)-1))
	}
	return m
}

func TestFlush_TimersReference(t *testing.T) {
	thresholds := []float64{10, 25, 50, 75, 90, 95, 99, 99.9, 100}
	bins := []float64{100, 250, 500}
	o := DefaultOptions()
	o.PercentileThresholds = thresholds
	o.Histograms = []HistogramRule{{Match: "t", Lower: ptr(10), Bins: []Bin{
		{Name: "a", Upper: ptr(bins[0])}, {Name: "b", Upper: ptr(bins[1])}, {Name: "c", Upper: ptr(bins[2])}, {Name: "d"}}}}
	rng := rand.New(rand.NewPCG(1, 2))
	samples := make([]float64, 3000)
	for i := range samples {
		samples[i] = math.Round(rng.ExpFloat64()*200*1000) / 1000
	}

	want := map[string]map[string]float64{}
	sorted := slices.Sorted(slices.Values(samples))
	for _, th := range thresholds {
		k := len(sorted)
		if th != 100 {
			k = max(int(math.Floor(th*float64(len(sorted))/100)), 1)
		}
		want["percentile="+percentileTag(th)] = refStats(sorted[:k])
	}
	binned := map[string][]float64{}
	for _, v := range samples {
		if v < 10 {
			continue
		}
		name := "d"
		for i, u := range bins {
			if v < u {
				name = string(rune('a' + i))
				break
			}
		}
		binned[name] = append(binned[name], v)
	}
	for name, x := range binned {
		slices.Sort(x)
		want["histogram="+name] = refStats(x)
	}

	synctest.Test(t, func(t *testing.T) {
		tbl, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		w := tbl.NewWriter()
		s := &parse.Sample{Name: []byte("t"), Type: parse.Timer, Rate: 1, Values: make([]float64, 1)}
		for _, v := range samples {
			s.Values[0] = v
			w.Add(s)
		}
		time.Sleep(4 * time.Second)
		got := tbl.Flush(time.Now())
		if len(got) != len(want) {
			t.Fatalf("got %d metrics, want %d: %q", len(got), len(want), renderAll(t, got))
		}
		for _, m := range got {
			var id string
			if v, ok := m.Tag("percentile"); ok {
				id = "percentile=" + v
			} else if v, ok := m.Tag("histogram"); ok {
				id = "histogram=" + v
			}
			ref, ok := want[id]
			if !ok {
				t.Fatalf("unexpected metric %s", render(t, m))
			}
			ref["count_ps"] = ref["count"] / 4
			if len(m.Fields) != len(ref) {
				t.Errorf("%s: fields %s, want %v", id, render(t, m), ref)
			}
			for name, wv := range ref {
				v, _ := m.Field(name)
				if math.Abs(v.Num-wv) > 1e-9*math.Max(1, math.Abs(wv)) {
					t.Errorf("%s %s = %v, want %v", id, name, v.Num, wv)
				}
			}
		}
	})
}

func TestFlush_Empty(t *testing.T) {
	tbl, err := New(DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if got := tbl.Flush(time.Now()); len(got) != 0 {
		t.Fatalf("Flush of an empty table = %q", renderAll(t, got))
	}
	w := tbl.NewWriter()
	if w.Add(&parse.Sample{Name: []byte("x"), Values: []float64{1}, Rate: 1}) {
		t.Fatal("Add accepted a sample of no type")
	}
	if got := tbl.Flush(time.Now()); len(got) != 0 || tbl.SeriesDropped() != 0 {
		t.Fatalf("a sample of no type was flushed (%q) or counted as dropped (%d)", renderAll(t, got), tbl.SeriesDropped())
	}
	w.Add(sampleOf(t, "c:1|c"))
	tbl.Flush(time.Now())
	if got := tbl.Flush(time.Now()); len(got) != 0 {
		t.Fatalf("second Flush = %q, want nothing", renderAll(t, got))
	}
}

// TestFlush_Forgets checks that nothing survives a flush, recycled slots
// included, and that the interval is the real time since the last flush.
func TestFlush_Forgets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := DefaultOptions()
		o.PercentileThresholds = []float64{100}
		o.Stripes = 1 // every series shares one stripe, so slots are reused across kinds
		tbl, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		w := tbl.NewWriter()
		flush := func(after time.Duration, lines []string, want ...string) {
			t.Helper()
			for _, l := range lines {
				w.Add(sampleOf(t, l))
			}
			time.Sleep(after)
			got := renderAll(t, tbl.Flush(time.Now()))
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("got  %q\nwant %q", got, want)
			}
		}
		flush(2*time.Second, []string{"t:1:2|ms", "s:a|s", "s:b|s", "g:5|g", "c:4|c|T7"},
			"stats_timers,name=t,percentile=100.0 count=2,count_ps=1,lower=1,upper=2,mean=1.5,stdev=0.7071067811865476",
			"stats_sets,name=s count=2",
			"stats_gauges,name=g value=5",
			"stats_counters,name=c count=4,rate=2 7")
		flush(4*time.Second, nil)
		// Live again: the series below take the recycled slots of the
		// same series in the first interval.
		flush(8*time.Second, []string{"t:3|ms", "s:c|s", "g:+1|g", "c:4|c"},
			"stats_counters,name=c count=4,rate=0.5",
			"stats_gauges,name=g value=1",
			"stats_sets,name=s count=1",
			"stats_timers,name=t,percentile=100.0 count=1,count_ps=0.125,lower=3,upper=3,mean=3")
		flush(time.Second, []string{"s:x|s", "g:-1|g", "t:9|ms", "c:1|c"},
			"stats_counters,name=c count=1,rate=1",
			"stats_gauges,name=g value=-1",
			"stats_sets,name=s count=1",
			"stats_timers,name=t,percentile=100.0 count=1,count_ps=1,lower=9,upper=9,mean=9")
	})
}

// TestFlush_IndependentSlices checks that metrics of one series can be
// modified (as relabelling does) without affecting each other.
func TestFlush_IndependentSlices(t *testing.T) {
	o := DefaultOptions()
	o.PercentileThresholds = []float64{50, 100}
	tbl, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	w := tbl.NewWriter()
	w.Add(sampleOf(t, "t:1:2|ms|#a=1"))
	w.Add(sampleOf(t, "c:1|c|#a=1"))
	ms := tbl.Flush(time.Now())
	if len(ms) != 3 {
		t.Fatalf("got %d metrics, want 3", len(ms))
	}
	for i := range ms {
		ms[i].SetTag("a", strconv.Itoa(i))
		ms[i].SetTag("zz", strconv.Itoa(i))
		ms[i].Fields = append(ms[i].Fields, engine.Field{Name: "x", Value: engine.Number(float64(i))})
	}
	for i, m := range ms {
		if a, _ := m.Tag("a"); a != strconv.Itoa(i) {
			t.Errorf("metric %d: tag a = %q", i, a)
		}
		if x, _ := m.Field("x"); x.Num != float64(i) {
			t.Errorf("metric %d: field x = %v", i, x)
		}
		if _, ok := m.Tag("name"); !ok {
			t.Errorf("metric %d lost its name tag: %v", i, m.Tags)
		}
	}
}

func TestMaxSeries(t *testing.T) {
	o := DefaultOptions()
	o.MaxSeries = 1000
	tbl, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	w := tbl.NewWriter()
	s := &parse.Sample{Type: parse.Counter, Rate: 1, Values: []float64{1}}
	name := []byte("series_")
	accepted := 0
	for i := range 1_000_000 {
		s.Name = strconv.AppendInt(name[:7], int64(i), 10)
		if w.Add(s) {
			accepted++
		}
	}
	if accepted != 1000 || tbl.SeriesDropped() != 999_000 {
		t.Fatalf("accepted %d, dropped %d; want 1000, 999000", accepted, tbl.SeriesDropped())
	}
	held := 0
	for i := range tbl.stripes {
		held += tbl.stripes[i].series.len() + len(tbl.stripes[i].index)
	}
	if held != 2000 {
		t.Fatalf("the table holds %d series and index entries, want 2000", held)
	}
	// Existing series keep aggregating.
	s.Name = []byte("series_7")
	if !w.Add(s) {
		t.Fatal("Add to an existing series was dropped")
	}
	ms := tbl.Flush(time.Now())
	if len(ms) != 1000 {
		t.Fatalf("Flush returned %d metrics, want 1000", len(ms))
	}
	for _, m := range ms {
		want := 1.0
		if name, _ := m.Tag("name"); name == "series_7" {
			want = 2
		}
		if c, _ := m.Field("count"); c.Num != want {
			t.Fatalf("%s", render(t, m))
		}
	}
	// A flush makes room again.
	s.Name = []byte("fresh")
	if !w.Add(s) || tbl.SeriesDropped() != 999_000 {
		t.Fatalf("Add after Flush dropped (dropped %d)", tbl.SeriesDropped())
	}
}

// TestCollisions forces every key to one hash: series must stay apart
// and still be found.
func TestCollisions(t *testing.T) {
	o := DefaultOptions()
	o.PercentileThresholds = []float64{100}
	tbl, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	tbl.sum64 = func([]byte) uint64 { return 42 }
	w := tbl.NewWriter()
	var lines, want []string
	for i := range 20 {
		lines = append(lines, fmt.Sprintf("c%d:%d|c", i, i+1), fmt.Sprintf("c%d:%d|g", i, i+1),
			fmt.Sprintf("c:1|c|#k=%d", i), fmt.Sprintf("c%d:x|s", i))
		want = append(want,
			fmt.Sprintf("stats_counters,name=c%d count=%d,rate=%d", i, 2*(i+1), 2*(i+1)),
			fmt.Sprintf("stats_gauges,name=c%d value=%d", i, i+1),
			fmt.Sprintf("stats_counters,k=%d,name=c count=2,rate=2", i),
			fmt.Sprintf("stats_sets,name=c%d count=1", i))
	}
	// Keys that only differ in where one field ends and the next begins.
	lines = append(lines, "ab:1|c|#c=d", "ab:1|c|#cd=", "a:1|c|#bc=d")
	want = append(want, "stats_counters,c=d,name=ab count=2,rate=2", "stats_counters,cd=,name=ab count=2,rate=2",
		"stats_counters,bc=d,name=a count=2,rate=2")
	for range 2 {
		for _, l := range lines {
			w.Add(sampleOf(t, l))
		}
	}
	if n := len(tbl.stripes[42&tbl.mask].index); n != 1 {
		t.Fatalf("the hash is in the index %d times, want once", n)
	}
	got := renderAll(t, tbl.Flush(tbl.last.Add(time.Second)))
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}

// TestConcurrent adds from several goroutines while another flushes; every
// sample must be counted exactly once across the flushes. Run it with -race.
func TestConcurrent(t *testing.T) {
	o := DefaultOptions()
	o.PercentileThresholds = []float64{100}
	o.Stripes = 4
	tbl, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	const writers, perWriter, seriesN = 4, 5000, 50
	totals := map[string]float64{}
	collect := func(ms []engine.Metric) {
		for _, m := range ms {
			c, ok := m.Field("count")
			if !ok {
				c, _ = m.Field("value")
			}
			totals[m.Bucket] += c.Num
		}
	}
	done := make(chan struct{})
	var flushes sync.WaitGroup
	flushes.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
				collect(tbl.Flush(time.Now()))
			}
		}
	})
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			w := tbl.NewWriter()
			samples := []*parse.Sample{
				{Type: parse.Counter, Rate: 0.5, Values: []float64{1}},
				{Type: parse.Timer, Rate: 1, Values: []float64{1, 2}},
				{Type: parse.Set, Rate: 1},
				{Type: parse.Gauge, Rate: 1, Values: []float64{1}, Delta: true},
			}
			// Odd writers add through Refs, kept across the flushes: one
			// per name and type, which i%100 decides.
			refs := map[int]*Ref{}
			for i := range perWriter {
				s := samples[i%len(samples)]
				s.Name = fmt.Appendf(s.Name[:0], "s%d", i%seriesN)
				s.Tags = []parse.Tag{{Key: []byte("host"), Value: []byte("h")}}
				s.SetMember = fmt.Appendf(s.SetMember[:0], "%d.%d", g, i)
				var ok bool
				switch ref := refs[i%100]; {
				case g%2 == 0:
					ok = w.Add(s)
				case ref == nil:
					ref = new(Ref)
					refs[i%100] = ref
					ok = w.AddRef(s, ref)
				default:
					ok = w.AddTo(ref, s)
				}
				if !ok {
					t.Errorf("Add dropped %s", s.Name)
				}
			}
		})
	}
	wg.Wait()
	close(done)
	flushes.Wait()
	collect(tbl.Flush(time.Now()))
	quarter := float64(writers * perWriter / 4)
	// Gauge deltas of 1 sum across intervals to the number of samples.
	want := map[string]float64{"stats_counters": 2 * quarter, "stats_timers": 2 * quarter, "stats_sets": quarter, "stats_gauges": quarter}
	for b, n := range want {
		if totals[b] != n {
			t.Errorf("%s: counted %v, want %v", b, totals[b], n)
		}
	}
	if tbl.live.Load() != 0 {
		t.Errorf("live series after the last flush = %d", tbl.live.Load())
	}
}

// FuzzKey checks that a series key decodes back to the name and tags it
// was built from, which makes keys of different series different.
func FuzzKey(f *testing.F) {
	f.Add("gorm", "host", "a", "zone", "b")
	f.Add("ab", "c", "d", "", "")
	f.Add("a", "bc", "d", "", "")
	f.Fuzz(func(t *testing.T, name, k1, v1, k2, v2 string) {
		s := &parse.Sample{Name: []byte(name), Type: parse.Gauge, Tags: []parse.Tag{
			{Key: []byte(k1), Value: []byte(v1)}, {Key: []byte(k2), Value: []byte(v2)}}}
		key := string(appendKey(nil, kindGauge, s))
		if kind(key[0]) != kindGauge {
			t.Fatalf("kind %d", key[0])
		}
		got, rest := cutField(key[1:])
		var fields []string
		for rest != "" {
			var field string
			field, rest = cutField(rest)
			fields = append(fields, field)
		}
		if want := []string{k1, v1, k2, v2}; got != name || !slices.Equal(fields, want) {
			t.Fatalf("key %q decodes to %q %q, want %q %q", key, got, fields, name, want)
		}
	})
}
