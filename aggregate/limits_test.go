package aggregate

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/parse"
)

// The agent's budget is a Budget.
var _ Budget = (*engine.Memory)(nil)

// budget is a Budget a test sets tight at will.
type budget struct{ tight bool }

func (b *budget) Tight() bool { return b.tight }

// A timer past its cap gives the same exact statistics as one below it,
// also when one sample's values straddle the cap.
func TestMaxTimerSamples_Exact(t *testing.T) {
	lines := []string{"t:1:2:3|ms", "t:4:5:6|ms"}
	want := []string{
		"stats_timers,name=t,percentile=100.0 count=6,count_ps=0.6,lower=1,upper=6,mean=3.5,stdev=1.8708286933869707",
		"stats_histograms,histogram=a,name=t count=2,count_ps=0.2,lower=2,upper=3,mean=2.5,stdev=0.7071067811865476",
		"stats_histograms,histogram=b,name=t count=3,count_ps=0.3,lower=4,upper=6,mean=5,stdev=1",
	}
	for _, max := range []int{6, 4, 1} {
		o := DefaultOptions()
		o.PercentileThresholds = []float64{100}
		o.MaxTimerSamples = max
		o.Histograms = []HistogramRule{{Match: "t", Lower: ptr(2), Bins: []Bin{{Name: "a", Upper: ptr(4)}, {Name: "b"}}}}
		checkLines(t, o, lines, want...)
	}
}

// TestMaxTimerSamples_Reservoir adds 10× the default cap of samples 1…N in
// random order. Counts, bounds, means, deviations and bins must be exact
// (to float rounding); the percentiles' upper, mean and stdev come from a
// uniform sample of R = 65536, whose p-quantile has a rank error of
// sqrt(p(1-p)/R) ≤ 0.2% of N: a tolerance of 1.2% of N is 6 of those.
func TestMaxTimerSamples_Reservoir(t *testing.T) {
	const n = 10 << 16
	o := DefaultOptions()
	o.PercentileThresholds = []float64{50, 90, 99, 100}
	o.Histograms = []HistogramRule{{Match: "t", Lower: ptr(100), Bins: []Bin{
		{Name: "a", Upper: ptr(n / 4)}, {Name: "b", Upper: ptr(n / 2)}, {Name: "c"}}}}
	values := make([]float64, n)
	for i := range values {
		values[i] = float64(i + 1)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	rng.Shuffle(n, func(i, j int) { values[i], values[j] = values[j], values[i] })

	// Of the values lo…hi: count, lower, upper, mean, stdev.
	exact := func(lo, hi float64) map[string]float64 {
		k := hi - lo + 1
		return map[string]float64{"count": k, "count_ps": k / 10, "lower": lo, "upper": hi,
			"mean": (lo + hi) / 2, "stdev": math.Sqrt(k * (k + 1) / 12)}
	}
	synctest.Test(t, func(t *testing.T) {
		tbl, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		w := tbl.NewWriter()
		s := &parse.Sample{Name: []byte("t"), Type: parse.Timer, Rate: 1, Values: make([]float64, 1)}
		small := &parse.Sample{Name: []byte("small"), Type: parse.Timer, Rate: 1, Values: []float64{1}}
		for interval := 1; interval <= 2; interval++ {
			for _, v := range values {
				s.Values[0] = v
				w.Add(s)
			}
			w.Add(small)
			time.Sleep(10 * time.Second)
			got := tbl.Flush(time.Now())
			if len(got) != 4+3+4 {
				t.Fatalf("got %d metrics, want 11", len(got))
			}
			if tbl.TimersSampled() != uint64(interval) {
				t.Fatalf("TimersSampled = %d after interval %d", tbl.TimersSampled(), interval)
			}
			for _, m := range got {
				if name, _ := m.Tag("name"); name != "t" {
					continue
				}
				var want map[string]float64
				tol := 1e-9 * n // float rounding only
				estimated := map[string]bool{}
				if p, ok := m.Tag("percentile"); ok {
					th, _ := strconv.ParseFloat(p, 64)
					k := math.Floor(th * n / 100)
					want = exact(1, k)
					if th != 100 {
						tol = 0.012 * n
						estimated = map[string]bool{"upper": true, "mean": true, "stdev": true}
					}
				} else {
					bin, _ := m.Tag("histogram")
					want = map[string]map[string]float64{"a": exact(100, n/4-1), "b": exact(n/4, n/2-1), "c": exact(n/2, n)}[bin]
				}
				if len(m.Fields) != len(want) {
					t.Fatalf("%s: want %v", render(t, m), want)
				}
				for f, wv := range want {
					v, _ := m.Field(f)
					if d := math.Abs(v.Num - wv); (estimated[f] && d > tol) || (!estimated[f] && d > 1e-9*math.Max(1, math.Abs(wv))) {
						t.Errorf("%s: %s = %v, want %v", render(t, m), f, v.Num, wv)
					}
				}
			}
		}
	})
}

// A set counts exactly up to its cap, then estimates, never below the
// exact count it had.
func TestMaxSetSize(t *testing.T) {
	o := DefaultOptions()
	o.MaxSetSize = 1000
	tbl, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	w := tbl.NewWriter()
	s := &parse.Sample{Name: []byte("s"), Type: parse.Set}
	count := func(members int) float64 {
		t.Helper()
		for i := range members {
			s.SetMember = strconv.AppendInt(s.SetMember[:0], int64(i), 10)
			w.Add(s)
			w.Add(s) // repeated members count once
		}
		ms := tbl.Flush(time.Now())
		if len(ms) != 1 {
			t.Fatalf("got %d metrics", len(ms))
		}
		c, _ := ms[0].Field("count")
		return c.Num
	}
	if c := count(1000); c != 1000 || tbl.SetsEstimated() != 0 {
		t.Fatalf("count %v, estimated %d; want 1000 exact", c, tbl.SetsEstimated())
	}
	if c := count(1001); c < 1001 || c > 1001*1.03 || tbl.SetsEstimated() != 1 {
		t.Fatalf("count %v, estimated %d; want at least 1001, 1 estimated", c, tbl.SetsEstimated())
	}
	if c := count(999); c != 999 || tbl.SetsEstimated() != 1 {
		t.Fatalf("count %v, estimated %d; want 999 exact again", c, tbl.SetsEstimated())
	}
}

// At 1M members with the default cap, the estimate is within 3% (the
// sketch's standard error is 0.8%).
func TestMaxSetSize_Estimate(t *testing.T) {
	const n = 1_000_000
	tbl, err := New(DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	w := tbl.NewWriter()
	s := &parse.Sample{Name: []byte("s"), Type: parse.Set, SetMember: []byte("user_")}
	for i := range n {
		s.SetMember = strconv.AppendInt(s.SetMember[:5], int64(i), 10)
		w.Add(s)
	}
	ms := tbl.Flush(time.Now())
	c, _ := ms[0].Field("count")
	if math.Abs(c.Num-n) > 0.03*n || tbl.SetsEstimated() != 1 {
		t.Fatalf("count %v, estimated %d; want %d ± 3%%, 1 estimated", c.Num, tbl.SetsEstimated(), n)
	}
	t.Logf("estimate %v, error %.3f%%", c.Num, 100*(c.Num-n)/n)
}

// While memory is tight, new series are refused and counted apart from
// max_series; known series keep aggregating, through Add and AddTo.
func TestMemoryTight(t *testing.T) {
	b := &budget{}
	o := DefaultOptions()
	o.Memory = b
	tbl, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	w := tbl.NewWriter()
	var ref Ref
	if !w.AddRef(sampleOf(t, "known:1|c"), &ref) {
		t.Fatal("dropped while not tight")
	}
	b.tight = true
	for i := range 10 {
		if w.Add(sampleOf(t, "new_"+strconv.Itoa(i)+":1|c")) {
			t.Fatal("a new series was kept while tight")
		}
		if !w.Add(sampleOf(t, "known:1|c")) || !w.AddTo(&ref, sampleOf(t, "known:1|c")) {
			t.Fatal("a known series was dropped while tight")
		}
	}
	if tbl.MemoryDropped() != 10 || tbl.SeriesDropped() != 0 {
		t.Fatalf("MemoryDropped %d, SeriesDropped %d; want 10, 0", tbl.MemoryDropped(), tbl.SeriesDropped())
	}
	got := renderAll(t, tbl.Flush(tbl.last.Add(time.Second)))
	if len(got) != 1 || got[0] != "stats_counters,name=known count=21,rate=21" {
		t.Fatalf("got %q", got)
	}
	// After a flush the series is new again: refused while tight.
	if w.AddTo(&ref, sampleOf(t, "known:1|c")) || tbl.MemoryDropped() != 11 {
		t.Fatalf("AddTo after Flush while tight kept the sample (dropped %d)", tbl.MemoryDropped())
	}
	b.tight = false
	if !w.AddTo(&ref, sampleOf(t, "known:1|c")) || tbl.MemoryDropped() != 11 {
		t.Fatal("AddTo dropped once memory is no longer tight")
	}
}
