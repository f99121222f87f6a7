package aggregate

import (
	"slices"
	"strings"
	"testing"
)

func ptr(f float64) *float64 { return &f }

func TestOptionsValidate_Success(t *testing.T) {
	f := func(thresholds []float64, want ...float64) {
		t.Helper()
		o := DefaultOptions()
		o.PercentileThresholds = thresholds
		if err := o.Validate(); err != nil {
			t.Fatalf("Validate(%v): %v", thresholds, err)
		}
		if !slices.Equal(o.PercentileThresholds, want) {
			t.Fatalf("Validate(%v) thresholds = %v, want %v", thresholds, o.PercentileThresholds, want)
		}
		// Validate is idempotent.
		if err := o.Validate(); err != nil || !slices.Equal(o.PercentileThresholds, want) {
			t.Fatalf("second Validate(%v) = %v, %v", thresholds, o.PercentileThresholds, err)
		}
	}
	f(nil)
	f([]float64{50}, 50)
	f([]float64{100, 50, 90}, 50, 90, 100)
	f([]float64{50.001, 50, 99.999, 100}, 50, 100)
	f([]float64{99.9, 99.95, 0.01}, 0.01, 99.9, 99.95)
	f([]float64{12.345}, 12.35)

	o := DefaultOptions()
	o.Histograms = []HistogramRule{
		{Match: "lat_.*", Lower: ptr(0), Bins: []Bin{{Name: "fast", Upper: ptr(10)}, {Name: "slow"}}},
		{Match: "x", Bins: []Bin{{Name: "a", Upper: ptr(-1)}, {Name: "b", Upper: ptr(1)}}},
	}
	if err := o.Validate(); err != nil {
		t.Fatalf("Validate(histograms): %v", err)
	}

	// default_buckets: a trailing +Inf is implied, empty is the default.
	for _, c := range []struct{ in, want []float64 }{
		{nil, defaultBuckets},
		{[]float64{}, defaultBuckets},
		{[]float64{inf}, defaultBuckets},
		{[]float64{-1, 0, 2.5, inf}, []float64{-1, 0, 2.5}},
		{[]float64{3}, []float64{3}},
	} {
		o := DefaultOptions()
		o.DefaultBuckets = c.in
		if err := o.Validate(); err != nil || !slices.Equal(o.DefaultBuckets, c.want) {
			t.Fatalf("Validate(default_buckets %v) = %v, %v; want %v", c.in, o.DefaultBuckets, err, c.want)
		}
	}
	if d := DefaultOptions(); !slices.Equal(d.DefaultBuckets, []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}) {
		t.Fatalf("DefaultBuckets %v, want statsd_exporter's", d.DefaultBuckets)
	}
}

func TestOptionsValidate_Failure(t *testing.T) {
	f := func(change func(o *Options), want string) {
		t.Helper()
		o := DefaultOptions()
		change(&o)
		err := o.Validate()
		if err == nil {
			t.Fatalf("Validate: no error, want %q", want)
		}
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("Validate: %q, want it to contain %q", err, want)
		}
		if _, err := New(o); err == nil {
			t.Fatalf("New accepted options Validate rejects (%q)", want)
		}
	}
	f(func(o *Options) { o.CountersBucket = "" }, "counters_bucket: ")
	f(func(o *Options) { o.GaugesBucket = "1x" }, "gauges_bucket: ")
	f(func(o *Options) { o.TimersBucket = "a.b" }, "timers_bucket: ")
	f(func(o *Options) { o.HistogramsBucket = "_h" }, "histograms_bucket: ")
	f(func(o *Options) { o.SetsBucket = "s-s" }, "sets_bucket: ")
	f(func(o *Options) { o.PercentileThresholds = []float64{50, 150} }, "percentile_thresholds: 150 is not in (0, 100]")
	f(func(o *Options) { o.PercentileThresholds = []float64{0} }, "percentile_thresholds: 0 is not in (0, 100]")
	f(func(o *Options) { o.PercentileThresholds = []float64{-1} }, "percentile_thresholds: -1 is not in (0, 100]")
	f(func(o *Options) { o.PercentileThresholds = []float64{0.001} }, "percentile_thresholds: 0.001 is not in (0, 100]")
	f(func(o *Options) { o.PercentileThresholds = []float64{100.001} }, "percentile_thresholds: 100.001 is not in (0, 100]")
	f(func(o *Options) { o.MaxSeries = 0 }, "max_series: ")
	f(func(o *Options) { o.MaxSeries = 1 << 31 }, "max_series: ")
	f(func(o *Options) { o.MaxTimerSamples = 0 }, "max_timer_samples: ")
	f(func(o *Options) { o.MaxTimerSamples = 1<<24 + 1 }, "max_timer_samples: ")
	f(func(o *Options) { o.MaxSetSize = 0 }, "max_set_size: ")
	f(func(o *Options) { o.MaxSetSize = 1 << 31 }, "max_set_size: ")
	f(func(o *Options) { o.Stripes = 0 }, "stripes: ")
	f(func(o *Options) { o.Stripes = 3 }, "stripes: ")
	rule := func(r HistogramRule) func(o *Options) {
		return func(o *Options) {
			o.Histograms = []HistogramRule{{Match: "ok", Bins: []Bin{{Name: "all"}}}, r}
		}
	}
	f(rule(HistogramRule{Match: "(", Bins: []Bin{{Name: "a"}}}), "histograms[1].match: ")
	f(rule(HistogramRule{Match: "a"}), "histograms[1].bins: ")
	f(rule(HistogramRule{Match: "a", Bins: []Bin{{Name: ""}}}), "histograms[1].bins[0].name: ")
	f(rule(HistogramRule{Match: "a", Bins: []Bin{{Name: "\xff"}}}), "histograms[1].bins[0].name: ")
	f(rule(HistogramRule{Match: "a", Bins: []Bin{{Name: "a", Upper: ptr(1)}, {Name: "a"}}}), "histograms[1].bins[1].name: \"a\" is repeated")
	f(rule(HistogramRule{Match: "a", Bins: []Bin{{Name: "a"}, {Name: "b"}}}), "histograms[1].bins[0].upper: only the last bin")
	f(rule(HistogramRule{Match: "a", Bins: []Bin{{Name: "a", Upper: ptr(5)}, {Name: "b", Upper: ptr(5)}}}), "histograms[1].bins[1].upper: 5 is not above")
	f(rule(HistogramRule{Match: "a", Lower: ptr(10), Bins: []Bin{{Name: "a", Upper: ptr(5)}}}), "histograms[1].bins[0].upper: 5 is not above the previous bound 10")
	f(rule(HistogramRule{Match: "a", Lower: ptr(inf), Bins: []Bin{{Name: "a"}}}), "histograms[1].lower: ")
	f(rule(HistogramRule{Match: "a", Bins: []Bin{{Name: "a", Upper: ptr(inf)}}}), "histograms[1].bins[0].upper: ")
	f(func(o *Options) { o.DefaultBuckets = []float64{1, 0.5} }, "default_buckets: 0.5 is not above the previous bound 1")
	f(func(o *Options) { o.DefaultBuckets = []float64{-inf, 1} }, "default_buckets: ")
	f(func(o *Options) { o.DefaultBuckets = []float64{1, 1, inf} }, "default_buckets: ")
}

func TestPercentileTag(t *testing.T) {
	f := func(p float64, want string) {
		t.Helper()
		if got := percentileTag(p); got != want {
			t.Fatalf("percentileTag(%v) = %q, want %q", p, got, want)
		}
	}
	f(50, "50.0")
	f(100, "100.0")
	f(99.9, "99.9")
	f(99.99, "99.99")
	f(0.01, "0.01")
	f(5, "5.0")
}
