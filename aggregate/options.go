package aggregate

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/bucky3/bucky3/parse"
)

// Options configure a Table. The statsd module decodes them from its TOML
// table; the tags carry the spec's option names.
type Options struct {
	CountersBucket   string `toml:"counters_bucket"`
	GaugesBucket     string `toml:"gauges_bucket"`
	TimersBucket     string `toml:"timers_bucket"`
	HistogramsBucket string `toml:"histograms_bucket"`
	SetsBucket       string `toml:"sets_bucket"`
	// PercentileThresholds are the timer percentiles to emit. Validate
	// rounds them to 2 decimals, sorts them and removes duplicates. Empty
	// means timers produce only histogram bins.
	PercentileThresholds []float64 `toml:"percentile_thresholds"`
	// Histograms are tried in order; the first rule whose Match fully
	// matches a timer series' name bins that series.
	Histograms []HistogramRule `toml:"histograms"`
	// MaxSeries caps the series of one flush interval; a new series beyond
	// it is dropped and counted, existing series keep aggregating.
	MaxSeries int `toml:"max_series"`
	// MaxTimerSamples caps the samples a timer series keeps per interval.
	// Beyond it a uniform reservoir of that many samples feeds the
	// percentiles, while counts, lower, upper, mean, stdev and histogram
	// bins stay exact.
	MaxTimerSamples int `toml:"max_timer_samples"`
	// MaxSetSize caps the members a set series counts exactly per
	// interval; beyond it the count is a HyperLogLog++ estimate.
	MaxSetSize int `toml:"max_set_size"`
	// Memory is the agent's memory budget (an *engine.Memory): while it
	// is tight, a new series is dropped and counted (MemoryDropped); known
	// series keep aggregating. Nil means no budget.
	Memory Budget `toml:"-"`
	// AddTimestamps stamps series that carried no timestamp with the flush
	// time instead of leaving the timestamp to the destination.
	AddTimestamps bool `toml:"add_timestamps"`
	// Stripes is the number of independently locked parts of the table, a
	// power of two. It is a tuning knob, not a configuration option.
	Stripes int `toml:"-"`
	// Typed makes every series emit one typed metric (typed.go) instead
	// of the bucky3 layout; statsd sets it from its layout option.
	Typed bool `toml:"-"`
	// DefaultBuckets are the classic histogram bounds of a typed timer
	// series whose SeriesType does not come from a mapping. Validate
	// drops a trailing +Inf; empty means the default.
	DefaultBuckets []float64 `toml:"default_buckets"`
}

// Budget is what a Table asks of a memory budget; *engine.Memory is one,
// and tests use their own.
type Budget interface {
	// Tight reports whether growth must be refused now.
	Tight() bool
}

// HistogramRule bins the timer series whose name Match fully matches.
type HistogramRule struct {
	// Match is a regular expression, anchored at both ends.
	Match string `toml:"match"`
	// Lower, when set, is the bound below which samples fall in no bin.
	Lower *float64 `toml:"lower"`
	// Bins are in ascending order of Upper; only the last may omit it.
	Bins []Bin `toml:"bins"`
}

// Bin is one histogram bin: it takes the samples below Upper that no
// earlier bin took. A nil Upper (last bin only) takes all the rest.
type Bin struct {
	Name  string   `toml:"name"`
	Upper *float64 `toml:"upper"`
}

// DefaultOptions returns the spec's defaults.
func DefaultOptions() Options {
	return Options{
		CountersBucket:   "stats_counters",
		GaugesBucket:     "stats_gauges",
		TimersBucket:     "stats_timers",
		HistogramsBucket: "stats_histograms",
		SetsBucket:       "stats_sets",
		MaxSeries:        1_000_000,
		MaxTimerSamples:  1 << 16,
		MaxSetSize:       100_000,
		Stripes:          256,
		DefaultBuckets:   slices.Clone(defaultBuckets),
	}
}

// defaultBuckets are client_golang's DefBuckets, which statsd_exporter
// uses when its mapping sets none: response times in seconds.
var defaultBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Validate checks o and normalises PercentileThresholds and
// DefaultBuckets in place. Errors name the offending option.
func (o *Options) Validate() error {
	for _, b := range []struct{ option, value string }{
		{"counters_bucket", o.CountersBucket},
		{"gauges_bucket", o.GaugesBucket},
		{"timers_bucket", o.TimersBucket},
		{"histograms_bucket", o.HistogramsBucket},
		{"sets_bucket", o.SetsBucket},
	} {
		if !parse.ValidName([]byte(b.value)) {
			return fmt.Errorf("%s: %q is not a valid bucket name (a letter, then letters, digits or _)", b.option, b.value)
		}
	}
	thresholds := make([]float64, 0, len(o.PercentileThresholds))
	for _, t := range o.PercentileThresholds {
		r := math.Round(t*100) / 100
		if !(t > 0 && t <= 100) || r == 0 {
			return fmt.Errorf("percentile_thresholds: %v is not in (0, 100]", t)
		}
		thresholds = append(thresholds, r)
	}
	slices.Sort(thresholds)
	o.PercentileThresholds = slices.Compact(thresholds)
	for i := range o.Histograms {
		if _, err := compileRule(&o.Histograms[i]); err != nil {
			return fmt.Errorf("histograms[%d].%w", i, err)
		}
	}
	// A stripe addresses its series with int32 positions.
	if o.MaxSeries <= 0 || o.MaxSeries > math.MaxInt32 {
		return fmt.Errorf("max_series: must be in [1, %d], got %d", math.MaxInt32, o.MaxSeries)
	}
	if o.MaxTimerSamples < 1 || o.MaxTimerSamples > maxTimerSamples {
		return fmt.Errorf("max_timer_samples: must be in [1, %d], got %d", maxTimerSamples, o.MaxTimerSamples)
	}
	if o.MaxSetSize < 1 || o.MaxSetSize > math.MaxInt32 {
		return fmt.Errorf("max_set_size: must be in [1, %d], got %d", math.MaxInt32, o.MaxSetSize)
	}
	if o.Stripes <= 0 || o.Stripes&(o.Stripes-1) != 0 {
		return fmt.Errorf("stripes: must be a power of two, got %d", o.Stripes)
	}
	if len(classicBounds(o.DefaultBuckets)) == 0 {
		o.DefaultBuckets = slices.Clone(defaultBuckets)
	}
	o.DefaultBuckets = classicBounds(o.DefaultBuckets)
	st := SeriesType{Buckets: o.DefaultBuckets}
	if err := st.Validate(); err != nil {
		return fmt.Errorf("default_%w", err)
	}
	return nil
}

// maxTimerSamples bounds max_timer_samples: 128 MiB of samples for one
// series is already more than any percentile needs.
const maxTimerSamples = 1 << 24

// histRule is a validated HistogramRule. lower is -Inf and the open last
// bin's upper +Inf, so that binning needs no special cases.
type histRule struct {
	re    *regexp.Regexp
	lower float64
	bins  []histBin
}

type histBin struct {
	name  string
	upper float64
}

// compileRule validates r. Its errors start with the field name so that
// the caller can prefix the rule's position.
func compileRule(r *HistogramRule) (*histRule, error) {
	re, err := regexp.Compile("^(?:" + r.Match + ")$")
	if err != nil {
		return nil, fmt.Errorf("match: %w", err)
	}
	h := &histRule{re: re, lower: math.Inf(-1)}
	if r.Lower != nil {
		if math.IsNaN(*r.Lower) || math.IsInf(*r.Lower, 0) {
			return nil, fmt.Errorf("lower: must be finite, got %v", *r.Lower)
		}
		h.lower = *r.Lower
	}
	if len(r.Bins) == 0 {
		return nil, fmt.Errorf("bins: at least one bin is needed")
	}
	prev := h.lower
	for i, b := range r.Bins {
		if b.Name == "" || !utf8.ValidString(b.Name) {
			return nil, fmt.Errorf("bins[%d].name: %q is not a valid bin name", i, b.Name)
		}
		if slices.ContainsFunc(h.bins, func(o histBin) bool { return o.name == b.Name }) {
			return nil, fmt.Errorf("bins[%d].name: %q is repeated", i, b.Name)
		}
		upper := math.Inf(1)
		switch {
		case b.Upper != nil:
			upper = *b.Upper
			if math.IsNaN(upper) || math.IsInf(upper, 0) {
				return nil, fmt.Errorf("bins[%d].upper: must be finite, got %v", i, upper)
			}
			if upper <= prev {
				return nil, fmt.Errorf("bins[%d].upper: %v is not above the previous bound %v", i, upper, prev)
			}
		case i != len(r.Bins)-1:
			return nil, fmt.Errorf("bins[%d].upper: only the last bin may omit upper", i)
		}
		h.bins = append(h.bins, histBin{name: b.Name, upper: upper})
		prev = upper
	}
	return h, nil
}

// percentileTag writes a threshold with at least one decimal (50.0, 99.9).
func percentileTag(t float64) string {
	s := strconv.FormatFloat(t, 'f', -1, 64)
	if strings.Contains(s, ".") {
		return s
	}
	return s + ".0"
}
