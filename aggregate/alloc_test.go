//go:build !race

package aggregate

import (
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
