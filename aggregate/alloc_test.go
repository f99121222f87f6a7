//go:build !race

package aggregate

import (
	"strconv"
	"testing"
	"time"
)

// TestAllocs_KnownSeries checks that adding to a series that already
// exists in the interval does not allocate, for every type.
func TestAllocs_KnownSeries(t *testing.T) {
	f := func(line string) {
		t.Helper()
		o := DefaultOptions()
		o.PercentileThresholds = []float64{50, 100}
		o.Histograms = []HistogramRule{{Match: ".*", Bins: []Bin{{Name: "all"}}}}
		tbl, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		w := tbl.NewWriter()
		s := sampleOf(t, line)
		// Timer samples grow a slice; a slot recycled by a flush keeps its
		// capacity. The spare state becomes live again on the second flush.
		for range 2000 {
			w.Add(s)
		}
		tbl.Flush(time.Now())
		tbl.Flush(time.Now())
		w.Add(s)
		add := func() {
			if !w.Add(s) {
				t.Fatal("Add dropped the sample")
			}
		}
		// One run per measurement: AllocsPerRun rounds its average down,
		// which would hide an occasional slice growth.
		for range 500 {
			if n := testing.AllocsPerRun(1, add); n != 0 {
				t.Fatalf("Add(%q) of a known series: %v allocations, want 0", line, n)
			}
		}
	}
	f("c:1|c")
	f("requests:1:2|c|@0.5|#env=prod,host=web_01,region=eu_west_1")
	f("g:1|g|#a=b")
	f("g:+1|g|T1700000000000")
	f("t:12.5|ms|#a=b")
	f("h:1:2:3|h")
	f("d:7|d|#a=b,c=d")
	f("s:member_1|s|#a=b")
}

// TestAllocs_AddTo checks that adding through a Ref does not allocate,
// neither within an interval nor when the first AddTo after a Flush
// starts the series again in a recycled slot.
func TestAllocs_AddTo(t *testing.T) {
	tbl, err := New(DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	w := tbl.NewWriter()
	s := sampleOf(t, "requests:1|c|@0.5|#env=prod,host=web_01")
	var ref Ref
	w.AddRef(s, &ref)
	tbl.Flush(time.Now())
	w.AddTo(&ref, s)
	tbl.Flush(time.Now())
	for i := range 500 {
		if n := testing.AllocsPerRun(1, func() { w.AddTo(&ref, s) }); n != 0 {
			t.Fatalf("AddTo: %v allocations, want 0", n)
		}
		if i%100 == 0 {
			tbl.Flush(time.Now())
		}
	}
}

// TestAllocs_PastCaps checks that a timer past MaxTimerSamples and a set
// past MaxSetSize take further samples, new set members included, without
// allocating, and that a new series refused while memory is tight
// allocates nothing either.
func TestAllocs_PastCaps(t *testing.T) {
	b := &budget{}
	o := DefaultOptions()
	o.PercentileThresholds = []float64{50, 100}
	o.Histograms = []HistogramRule{{Match: ".*", Lower: ptr(0), Bins: []Bin{{Name: "low", Upper: ptr(10)}, {Name: "high"}}}}
	o.MaxTimerSamples = 1000
	o.MaxSetSize = 1000
	o.Memory = b
	tbl, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	w := tbl.NewWriter()
	timer := sampleOf(t, "t:12.5:3|ms|#a=b")
	set := sampleOf(t, "s:member_0000|s|#a=b")
	member := func(i int) { set.SetMember = strconv.AppendInt(set.SetMember[:7], int64(i), 10) }
	for i := range 2000 {
		w.Add(timer)
		member(i)
		w.Add(set)
	}
	if tbl.TimersSampled() != 1 || tbl.SetsEstimated() != 1 {
		t.Fatalf("TimersSampled %d, SetsEstimated %d; want both past their cap", tbl.TimersSampled(), tbl.SetsEstimated())
	}
	i := 2000
	for range 500 {
		if n := testing.AllocsPerRun(1, func() { w.Add(timer) }); n != 0 {
			t.Fatalf("timer Add past the cap: %v allocations, want 0", n)
		}
		member(i)
		i++
		if n := testing.AllocsPerRun(1, func() { w.Add(set) }); n != 0 {
			t.Fatalf("set Add of a new member past the cap: %v allocations, want 0", n)
		}
	}
	b.tight = true
	fresh := sampleOf(t, "fresh_series:1|c|#a=b")
	if n := testing.AllocsPerRun(100, func() { w.Add(fresh) }); n != 0 || tbl.MemoryDropped() != 101 {
		t.Fatalf("refusing a new series: %v allocations, %d dropped; want 0, 101", n, tbl.MemoryDropped())
	}
}

// TestAllocs_Typed checks that adding to a known series of a typed table
// does not allocate, through AddTyped and AddTo, for counters, gauges and
// histogram timers with classic and native buckets whose values fall in
// buckets already populated.
func TestAllocs_Typed(t *testing.T) {
	o := DefaultOptions()
	o.Typed = true
	tbl, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	w := tbl.NewWriter()
	hist := &SeriesType{Buckets: []float64{0.005, 0.01, 0.1, 1}, NativeFactor: 1.1, Scale: 0.001}
	for _, line := range []string{
		"requests:1|c|@0.5|#env=prod,host=web_01",
		"queue:+3|g|#env=prod",
		"queue_abs:3|g|#env=prod",
		"latency:12.5:3:-1:0|ms|@0.1|#env=prod,host=web_01",
		"latency_h:1200|h|#env=prod",
		"latency_d:0.2|d",
	} {
		s := sampleOf(t, line)
		var ref Ref
		w.AddTyped(s, hist, &ref)
		tbl.Flush(time.Now())
		w.AddTo(&ref, s)
		tbl.Flush(time.Now())
		for i := range 300 {
			if n := testing.AllocsPerRun(1, func() { w.AddTyped(s, hist, &ref) }); n != 0 {
				t.Fatalf("AddTyped(%q) of a known series: %v allocations, want 0", line, n)
			}
			if n := testing.AllocsPerRun(1, func() { w.AddTo(&ref, s) }); n != 0 {
				t.Fatalf("AddTo(%q) of a known series: %v allocations, want 0", line, n)
			}
			if n := testing.AllocsPerRun(1, func() { w.Add(s) }); n != 0 {
				t.Fatalf("Add(%q) of a known series: %v allocations, want 0", line, n)
			}
			if i%100 == 0 {
				tbl.Flush(time.Now())
			}
		}
	}
}
