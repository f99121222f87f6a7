package mapping

import (
	"errors"
	"fmt"
	"math"
	"os"
	"regexp"
	"slices"
	"sort"
	"time"

	"go.yaml.in/yaml/v2"

	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/parse"
)

// Observer is how a timer, histogram or distribution is exposed.
type Observer uint8

const (
	// ObserverSummary is statsd_exporter's choice when neither the mapping
	// nor the defaults set observer_type.
	ObserverSummary Observer = iota
	ObserverHistogram
)

func (o Observer) String() string {
	if o == ObserverHistogram {
		return "histogram"
	}
	return "summary"
}

// MetricType is the statsd_exporter metric type a rule filters on
// (match_metric_type); MatchAny matches every type.
type MetricType uint8

const (
	MatchAny MetricType = iota
	MatchCounter
	MatchGauge
	MatchObserver
)

func (t MetricType) String() string {
	switch t {
	case MatchCounter:
		return "counter"
	case MatchGauge:
		return "gauge"
	case MatchObserver:
		return "observer"
	}
	return ""
}

// Action is what a matching rule does with the metric.
type Action uint8

const (
	ActionMap Action = iota
	ActionDrop
)

// Rule is one mapping of the file, or the defaults for unmatched metrics,
// with every option resolved the way statsd_exporter resolves it when it
// creates the series. Rules are shared and read-only.
type Rule struct {
	// Index is the rule's position in mappings, -1 for Defaults.
	Index int
	// Match is the glob or regex, empty for Defaults; Regex tells which.
	Match string
	Regex bool
	// Name is the name template.
	Name            string
	Action          Action
	MatchMetricType MetricType
	// HonorLabels keeps a tag of the metric over a mapped label of the
	// same name (statsd_exporter's honor_labels).
	HonorLabels bool
	Help        string
	// TTL expires an idle series; 0 never.
	TTL time.Duration
	// Scale multiplies every value (after a timer's ms→s); 1 when unset.
	Scale float64

	ObserverType Observer
	// Buckets are the classic histogram bounds, ascending, without +Inf.
	Buckets []float64
	// NativeFactor > 1 asks for native buckets (statsd_exporter's default
	// is 1.1, so histograms carry native buckets unless a file sets <= 1).
	NativeFactor     float64
	NativeMaxBuckets int
	// Quantiles are the summary objectives, ascending by Q.
	Quantiles []engine.Quantile
	// MaxAge, AgeBuckets and BufCap are the summary window; 0 leaves the
	// destination's default (client_golang: 10m, 5, 500).
	MaxAge     time.Duration
	AgeBuckets int
	BufCap     int

	meta      *engine.TypeMeta
	re        *regexp.Regexp
	name      template
	labelKeys []string // sorted
	labelRaw  []string // regex rules: the expressions, by labelKeys
	labelTpls []template
}

// TypeMeta returns the rule's engine.TypeMeta, shared and read-only.
func (r *Rule) TypeMeta() *engine.TypeMeta { return r.meta }

// Label is one mapped label.
type Label struct {
	Name, Value string
}

// Result is a matched rule applied to one metric name.
type Result struct {
	// Drop is set by action: drop; Name and Labels are then empty.
	Drop bool
	// Name is the expanded name, not escaped. It can be empty (a template
	// of empty captures): statsd_exporter drops such an event as an error.
	Name string
	// Labels are sorted by name.
	Labels []Label
	Rule   *Rule
}

// Mapper maps metric names by a statsd_exporter mapping file. It is
// immutable and safe for concurrent use.
type Mapper struct {
	rules    []*Rule
	regex    []*Rule // regex rules in file order
	glob     *globFSM
	defaults *Rule
}

var (
	// A glob's first component cannot start with a digit, later ones can.
	globRE = regexp.MustCompile(`^(\*|[a-zA-Z_][a-zA-Z0-9_\-]*)(\.\*|\.[a-zA-Z0-9_][a-zA-Z0-9_\-]*)*$`)
	// A name is a Prometheus name in which $n and ${n} may stand anywhere.
	nameRE = regexp.MustCompile(`^([a-zA-Z_]|(\$\{?\d+\}?))([a-zA-Z0-9_]|(\$\{?\d+\}?))*$`)
	// statsd_exporter wants at least two characters in a label name.
	labelRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]+$`)
)

// defBuckets are client_golang's prometheus.DefBuckets, statsd_exporter's
// default histogram bounds.
var defBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

var defQuantiles = []objective{{0.5, 0.05}, {0.9, 0.01}, {0.99, 0.001}}

// Load reads and parses the mapping file at path. Its errors start with
// "mapping: <path>: ".
func Load(path string) (*Mapper, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("mapping: %w", err)
	}
	m, err := parseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("mapping: %s: %w", path, err)
	}
	return m, nil
}

// Parse builds a Mapper from the YAML of a statsd_exporter mapping file.
// Its errors start with "mapping: " and name the offending mapping by
// index and match.
func Parse(yamlBytes []byte) (*Mapper, error) {
	m, err := parseConfig(yamlBytes)
	if err != nil {
		return nil, fmt.Errorf("mapping: %w", err)
	}
	return m, nil
}

func parseConfig(yamlBytes []byte) (*Mapper, error) {
	var c fileConfig
	if err := yaml.UnmarshalStrict(yamlBytes, &c); err != nil {
		return nil, err
	}
	d := &c.Defaults
	// statsd_exporter v0.30.0 took the old keys when the new ones were unset.
	if d.ObserverType == observerUnset {
		d.ObserverType = d.TimerType
	}
	if len(d.SummaryOptions.Quantiles) == 0 && len(d.Quantiles) > 0 {
		d.SummaryOptions = summaryOptions{Quantiles: d.Quantiles}
	}
	if len(d.HistogramOptions.Buckets) == 0 && len(d.Buckets) > 0 {
		d.HistogramOptions = histogramOptions{Buckets: d.Buckets}
	}
	if len(d.HistogramOptions.Buckets) == 0 {
		d.HistogramOptions.Buckets = defBuckets
	}
	if d.HistogramOptions.NativeHistogramBucketFactor == 0 {
		d.HistogramOptions.NativeHistogramBucketFactor = 1.1
	}
	if d.HistogramOptions.NativeHistogramMaxBuckets == 0 {
		d.HistogramOptions.NativeHistogramMaxBuckets = 256
	}
	if len(d.SummaryOptions.Quantiles) == 0 {
		d.SummaryOptions.Quantiles = defQuantiles
	}
	if d.MatchType == matchUnset {
		d.MatchType = matchGlob
	}
	if err := checkOptions(&d.HistogramOptions, &d.SummaryOptions); err != nil {
		return nil, fmt.Errorf("defaults: %w", err)
	}

	m := &Mapper{rules: make([]*Rule, 0, len(c.Mappings))}
	fsm := newGlobFSM(!d.GlobDisableOrdering)
	var globs []string
	for i := range c.Mappings {
		mc := &c.Mappings[i]
		r, err := buildRule(i, mc, d, fsm)
		if err != nil {
			return nil, fmt.Errorf("mappings[%d] (match %q): %w", i, mc.Match, err)
		}
		m.rules = append(m.rules, r)
		if r.Regex {
			m.regex = append(m.regex, r)
		} else {
			globs = append(globs, mc.Match)
		}
	}
	if len(globs) > 0 {
		fsm.backtrack = needBacktracking(globs, fsm.ordered)
		m.glob = fsm
	}
	m.defaults = resolve(-1, &mappingConfig{TTL: d.TTL}, d)
	return m, nil
}

// buildRule validates mapping i the way statsd_exporter does, in its order,
// and resolves its options.
func buildRule(i int, mc *mappingConfig, d *defaultsConfig, fsm *globFSM) (*Rule, error) {
	keys := make([]string, 0, len(mc.Labels))
	for k := range mc.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !labelRE.MatchString(k) {
			return nil, fmt.Errorf("invalid label key: %s", k)
		}
	}
	if mc.Name == "" {
		return nil, errors.New("metric mapping didn't set a metric name")
	}
	if !nameRE.MatchString(mc.Name) {
		return nil, fmt.Errorf("metric name '%s' doesn't match regex '%s'", mc.Name, nameRE)
	}
	if mc.MatchType == matchUnset {
		mc.MatchType = d.MatchType
	}
	if mc.ObserverType == observerUnset {
		mc.ObserverType = mc.TimerType
	}

	var re *regexp.Regexp
	captures := 0
	if mc.MatchType == matchGlob {
		if !globRE.MatchString(mc.Match) {
			return nil, fmt.Errorf("invalid match: %s", mc.Match)
		}
	} else {
		var err error
		if re, err = regexp.Compile(mc.Match); err != nil {
			return nil, fmt.Errorf("invalid regex %s in mapping: %v", mc.Match, err)
		}
	}

	if mc.ObserverType == observerUnset {
		mc.ObserverType = d.ObserverType
	}
	if mc.SummaryOptions != nil && mc.Quantiles != nil && mc.SummaryOptions.Quantiles != nil {
		return nil, fmt.Errorf("cannot use quantiles in both the top level and summary options at the same time in %s", mc.Match)
	}
	if mc.HistogramOptions != nil && mc.Buckets != nil && mc.HistogramOptions.Buckets != nil {
		return nil, fmt.Errorf("cannot use buckets in both the top level and histogram options at the same time in %s", mc.Match)
	}
	switch mc.ObserverType {
	case observerHistogram:
		if mc.SummaryOptions != nil {
			return nil, errors.New("cannot use histogram observer and summary options at the same time")
		}
		if mc.HistogramOptions == nil {
			mc.HistogramOptions = &histogramOptions{}
		}
		if len(mc.Buckets) != 0 {
			mc.HistogramOptions.Buckets = mc.Buckets
		}
		if len(mc.HistogramOptions.Buckets) == 0 {
			mc.HistogramOptions.Buckets = d.HistogramOptions.Buckets
		}
	case observerSummary:
		if mc.HistogramOptions != nil {
			return nil, errors.New("cannot use summary observer and histogram options at the same time")
		}
		so := mc.SummaryOptions
		if so == nil {
			so = &summaryOptions{}
			mc.SummaryOptions = so
		}
		if len(mc.Quantiles) != 0 {
			so.Quantiles = mc.Quantiles
		}
		if len(so.Quantiles) == 0 {
			so.Quantiles = d.SummaryOptions.Quantiles
		}
		if so.MaxAge == 0 {
			so.MaxAge = d.SummaryOptions.MaxAge
		}
		if so.AgeBuckets == 0 {
			so.AgeBuckets = d.SummaryOptions.AgeBuckets
		}
		if so.BufCap == 0 {
			so.BufCap = d.SummaryOptions.BufCap
		}
	}
	if err := checkOptions(mc.HistogramOptions, mc.SummaryOptions); err != nil {
		return nil, err
	}
	if mc.TTL == 0 && d.TTL > 0 {
		mc.TTL = d.TTL
	}

	r := resolve(i, mc, d)
	r.re = re
	r.labelKeys = keys
	if re != nil {
		r.labelRaw = make([]string, len(keys))
		for j, k := range keys {
			r.labelRaw[j] = mc.Labels[k]
		}
		return r, nil
	}
	captures = fsm.add(mc.Match, r.MatchMetricType, r)
	r.name = newTemplate(mc.Name, captures)
	r.labelTpls = make([]template, len(keys))
	for j, k := range keys {
		r.labelTpls[j] = newTemplate(mc.Labels[k], captures)
	}
	return r, nil
}

// checkOptions rejects what client_golang would panic on when the series is
// created: statsd_exporter loads such a file and then crashes.
func checkOptions(h *histogramOptions, s *summaryOptions) error {
	if h != nil {
		for i, b := range h.Buckets {
			if math.IsNaN(b) || i > 0 && b <= h.Buckets[i-1] {
				return fmt.Errorf("histogram buckets must be in increasing order: %v", h.Buckets)
			}
		}
	}
	if s != nil {
		for _, q := range s.Quantiles {
			if !(q.Quantile >= 0 && q.Quantile <= 1) || !(q.Error >= 0) {
				return fmt.Errorf("invalid quantile %v with error %v", q.Quantile, q.Error)
			}
		}
	}
	return nil
}

// resolve turns a validated mapping into the options statsd_exporter's
// registry gives its series (mapping value if set, else the default).
func resolve(i int, mc *mappingConfig, d *defaultsConfig) *Rule {
	r := &Rule{
		Index:       i,
		Match:       mc.Match,
		Regex:       mc.MatchType == matchRegex,
		Name:        mc.Name,
		HonorLabels: mc.HonorLabels,
		Help:        mc.Help,
		TTL:         mc.TTL,
		Scale:       1,
	}
	if mc.Action == "drop" {
		r.Action = ActionDrop
	}
	switch mc.MatchMetricType {
	case "counter":
		r.MatchMetricType = MatchCounter
	case "gauge":
		r.MatchMetricType = MatchGauge
	case "observer":
		r.MatchMetricType = MatchObserver
	}
	if mc.Scale.Set {
		r.Scale = mc.Scale.Val
	}
	ot := mc.ObserverType
	if ot == observerUnset {
		ot = d.ObserverType
	}
	if ot == observerHistogram {
		r.ObserverType = ObserverHistogram
	}

	h := mc.HistogramOptions
	buckets := d.HistogramOptions.Buckets
	r.NativeFactor = d.HistogramOptions.NativeHistogramBucketFactor
	r.NativeMaxBuckets = int(d.HistogramOptions.NativeHistogramMaxBuckets)
	if h != nil {
		if len(h.Buckets) > 0 {
			buckets = h.Buckets
		}
		if h.NativeHistogramBucketFactor > 0 {
			r.NativeFactor = h.NativeHistogramBucketFactor
		}
		if h.NativeHistogramMaxBuckets > 0 {
			r.NativeMaxBuckets = int(h.NativeHistogramMaxBuckets)
		}
	}
	// client_golang drops a last +Inf bound: it is implied.
	if n := len(buckets); n > 0 && math.IsInf(buckets[n-1], 1) {
		buckets = buckets[:n-1]
	}
	r.Buckets = slices.Clone(buckets)

	s := mc.SummaryOptions
	quantiles := d.SummaryOptions.Quantiles
	so := d.SummaryOptions
	if s != nil {
		if len(s.Quantiles) > 0 {
			quantiles = s.Quantiles
		}
		so = *s
	}
	r.Quantiles = objectives(quantiles)
	r.MaxAge, r.AgeBuckets, r.BufCap = so.MaxAge, int(so.AgeBuckets), int(so.BufCap)

	r.meta = &engine.TypeMeta{
		Help:             r.Help,
		TTL:              r.TTL,
		Quantiles:        r.Quantiles,
		MaxAge:           r.MaxAge,
		AgeBuckets:       r.AgeBuckets,
		NativeMaxBuckets: r.NativeMaxBuckets,
	}
	return r
}

// objectives returns the quantiles as client_golang's objectives map sees
// them: one per quantile (the last one wins), in ascending order.
func objectives(in []objective) []engine.Quantile {
	out := make([]engine.Quantile, 0, len(in))
	for _, o := range in {
		j := slices.IndexFunc(out, func(q engine.Quantile) bool { return q.Q == o.Quantile })
		if j >= 0 {
			out[j].Error = o.Error
			continue
		}
		out = append(out, engine.Quantile{Q: o.Quantile, Error: o.Error})
	}
	slices.SortFunc(out, func(a, b engine.Quantile) int {
		switch {
		case a.Q < b.Q:
			return -1
		case a.Q > b.Q:
			return 1
		}
		return 0
	})
	return out
}

// Defaults returns the rule statsd_exporter applies to a metric no mapping
// matched: the defaults section's observer type, buckets, quantiles and TTL.
func (m *Mapper) Defaults() *Rule { return m.defaults }

// Rules returns the file's mappings in order. The slice is shared.
func (m *Mapper) Rules() []*Rule { return m.rules }

// metricTypeOf maps a StatsD type to the statsd_exporter type rules filter
// on. statsd_exporter rejects sets; here they match as gauges, which is
// what a set becomes in the typed layout.
func metricTypeOf(t parse.Type) MetricType {
	switch t {
	case parse.Counter:
		return MatchCounter
	case parse.Gauge, parse.Set:
		return MatchGauge
	case parse.Timer, parse.Histogram, parse.Distribution:
		return MatchObserver
	}
	return MatchAny
}

// Map returns the result of the first rule matching name and type t, as
// statsd_exporter picks it: glob rules first (through their trie), then
// regex rules in file order. ok is false when no rule matches; the caller
// then applies Defaults to the unmapped name. The result never aliases
// name, so name may be a view of a buffer the caller reuses.
func (m *Mapper) Map(name string, t parse.Type) (res Result, ok bool) {
	mt := metricTypeOf(t)
	if mt == MatchAny {
		return Result{}, false
	}
	if m.glob != nil {
		var buf [3 * 8]string
		if r, caps := m.glob.find(name, mt, buf[:]); r != nil {
			if r.Action == ActionDrop {
				return Result{Drop: true, Rule: r}, true
			}
			res = Result{Name: r.name.format(name, caps), Rule: r}
			if len(r.labelKeys) > 0 {
				res.Labels = make([]Label, len(r.labelKeys))
				for j, k := range r.labelKeys {
					res.Labels[j] = Label{Name: k, Value: r.labelTpls[j].format(name, caps)}
				}
			}
			return res, true
		}
	}
	for _, r := range m.regex {
		loc := r.re.FindStringSubmatchIndex(name)
		if loc == nil {
			continue
		}
		if r.MatchMetricType != MatchAny && r.MatchMetricType != mt {
			continue
		}
		if r.Action == ActionDrop {
			return Result{Drop: true, Rule: r}, true
		}
		res = Result{Name: string(r.re.ExpandString(nil, r.Name, name, loc)), Rule: r}
		if len(r.labelKeys) > 0 {
			res.Labels = make([]Label, len(r.labelKeys))
			for j, k := range r.labelKeys {
				res.Labels[j] = Label{Name: k, Value: string(r.re.ExpandString(nil, r.labelRaw[j], name, loc))}
			}
		}
		return res, true
	}
	return Result{}, false
}
