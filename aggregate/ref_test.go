package aggregate

import (
	"slices"
	"testing"
	"time"

	"github.com/bucky3/bucky3/parse"
)

// TestAddTo adds through Refs across flushes with every key forced to one
// hash: a Ref must keep feeding its own series, find it again after a
// Flush whether another Writer started it first or not, and count a drop
// when MaxSeries leaves no room for it.
func TestAddTo(t *testing.T) {
	o := DefaultOptions()
	o.PercentileThresholds = []float64{100}
	o.MaxSeries = 3
	tbl, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	tbl.sum64 = func([]byte) uint64 { return 42 }
	w, other := tbl.NewWriter(), tbl.NewWriter()
	lines := []string{"a:1|c|#k=v", "a:2|g|#k=v", "t:3|ms"}
	refs := make([]Ref, len(lines))
	for i, l := range lines {
		if !w.AddRef(sampleOf(t, l), &refs[i]) {
			t.Fatalf("AddRef(%q) dropped", l)
		}
	}
	addAll := func() {
		t.Helper()
		for i, l := range lines {
			if !w.AddTo(&refs[i], sampleOf(t, l)) {
				t.Fatalf("AddTo(%q) dropped", l)
			}
		}
	}
	flush := func(want ...string) {
		t.Helper()
		got := renderAll(t, tbl.Flush(tbl.last.Add(time.Second)))
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("got  %q\nwant %q", got, want)
		}
	}
	addAll()
	flush("stats_counters,k=v,name=a count=2,rate=2", "stats_gauges,k=v,name=a value=2",
		"stats_timers,name=t,percentile=100.0 count=2,count_ps=2,lower=3,upper=3,mean=3,stdev=0")

	// Another Writer starts the gauge first: the stale Ref must find it.
	other.Add(sampleOf(t, "a:+5|g|#k=v"))
	addAll()
	flush("stats_counters,k=v,name=a count=1,rate=1", "stats_gauges,k=v,name=a value=2",
		"stats_timers,name=t,percentile=100.0 count=1,count_ps=1,lower=3,upper=3,mean=3")

	// Three other series fill the table: the stale Refs find no room.
	for _, l := range []string{"x:1|c", "y:1|c", "z:1|c"} {
		other.Add(sampleOf(t, l))
	}
	if w.AddTo(&refs[0], sampleOf(t, lines[0])) || tbl.SeriesDropped() != 1 {
		t.Fatalf("AddTo into a full table: not dropped (dropped %d)", tbl.SeriesDropped())
	}
	flush("stats_counters,name=x count=1,rate=1", "stats_counters,name=y count=1,rate=1", "stats_counters,name=z count=1,rate=1")
	addAll()
	flush("stats_counters,k=v,name=a count=1,rate=1", "stats_gauges,k=v,name=a value=2",
		"stats_timers,name=t,percentile=100.0 count=1,count_ps=1,lower=3,upper=3,mean=3")
}

// TestAddRef_Drops checks that a dropped sample leaves the Ref untouched.
func TestAddRef_Drops(t *testing.T) {
	o := DefaultOptions()
	o.MaxSeries = 1
	tbl, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	w := tbl.NewWriter()
	var ref Ref
	if !w.AddRef(sampleOf(t, "a:1|c"), &ref) || w.AddRef(sampleOf(t, "b:1|c"), &ref) {
		t.Fatal("want the first series accepted and the second dropped")
	}
	if !w.AddTo(&ref, &parse.Sample{Type: parse.Counter, Rate: 1, Values: []float64{2}}) {
		t.Fatal("AddTo dropped")
	}
	if got := renderAll(t, tbl.Flush(tbl.last.Add(time.Second))); !slices.Equal(got, []string{"stats_counters,name=a count=3,rate=3"}) {
		t.Fatalf("got %q", got)
	}
}
