package mapping

import (
	"fmt"
	"time"
)

// The YAML shapes below mirror statsd_exporter's so that yaml.UnmarshalStrict
// accepts and rejects the same documents, plus the keys v0.31.0 dropped
// (timer_type, top-level buckets and quantiles), kept for older files.

type fileConfig struct {
	Defaults defaultsConfig  `yaml:"defaults"`
	Mappings []mappingConfig `yaml:"mappings"`
}

type defaultsConfig struct {
	ObserverType        observerType     `yaml:"observer_type"`
	TimerType           observerType     `yaml:"timer_type"` // before v0.31.0
	Buckets             []float64        `yaml:"buckets"`    // before v0.31.0
	Quantiles           []objective      `yaml:"quantiles"`  // before v0.31.0
	MatchType           matchType        `yaml:"match_type"`
	GlobDisableOrdering bool             `yaml:"glob_disable_ordering"`
	TTL                 time.Duration    `yaml:"ttl"`
	SummaryOptions      summaryOptions   `yaml:"summary_options"`
	HistogramOptions    histogramOptions `yaml:"histogram_options"`
}

type mappingConfig struct {
	Match            string            `yaml:"match"`
	Name             string            `yaml:"name"`
	Labels           map[string]string `yaml:"labels"`
	HonorLabels      bool              `yaml:"honor_labels"`
	ObserverType     observerType      `yaml:"observer_type"`
	TimerType        observerType      `yaml:"timer_type"` // before v0.31.0
	Buckets          []float64         `yaml:"buckets"`    // before v0.31.0
	Quantiles        []objective       `yaml:"quantiles"`  // before v0.31.0
	MatchType        matchType         `yaml:"match_type"`
	Help             string            `yaml:"help"`
	Action           actionType        `yaml:"action"`
	MatchMetricType  metricType        `yaml:"match_metric_type"`
	TTL              time.Duration     `yaml:"ttl"`
	SummaryOptions   *summaryOptions   `yaml:"summary_options"`
	HistogramOptions *histogramOptions `yaml:"histogram_options"`
	Scale            maybeFloat        `yaml:"scale"`
}

type summaryOptions struct {
	Quantiles  []objective   `yaml:"quantiles"`
	MaxAge     time.Duration `yaml:"max_age"`
	AgeBuckets uint32        `yaml:"age_buckets"`
	BufCap     uint32        `yaml:"buf_cap"`
}

type histogramOptions struct {
	Buckets                     []float64 `yaml:"buckets"`
	NativeHistogramBucketFactor float64   `yaml:"native_histogram_bucket_factor"`
	NativeHistogramMaxBuckets   uint32    `yaml:"native_histogram_max_buckets"`
}

type objective struct {
	Quantile float64 `yaml:"quantile"`
	Error    float64 `yaml:"error"`
}

// maybeFloat tells an absent scale from an explicit one (scale: 0 is legal).
type maybeFloat struct {
	Set bool
	Val float64
}

func (m *maybeFloat) UnmarshalYAML(unmarshal func(any) error) error {
	if err := unmarshal(&m.Val); err != nil {
		return err
	}
	m.Set = true
	return nil
}

// observerType is "", "histogram" or "summary". As in statsd_exporter, an
// explicit empty string means summary; an absent key stays "".
type observerType string

const (
	observerUnset     observerType = ""
	observerHistogram observerType = "histogram"
	observerSummary   observerType = "summary"
)

func (t *observerType) UnmarshalYAML(unmarshal func(any) error) error {
	var v string
	if err := unmarshal(&v); err != nil {
		return err
	}
	switch observerType(v) {
	case observerHistogram:
		*t = observerHistogram
	case observerSummary, observerUnset:
		*t = observerSummary
	default:
		return fmt.Errorf("invalid observer type '%s'", v)
	}
	return nil
}

type matchType string

const (
	matchUnset matchType = ""
	matchGlob  matchType = "glob"
	matchRegex matchType = "regex"
)

func (t *matchType) UnmarshalYAML(unmarshal func(any) error) error {
	var v string
	if err := unmarshal(&v); err != nil {
		return err
	}
	switch matchType(v) {
	case matchRegex:
		*t = matchRegex
	case matchGlob, matchUnset:
		*t = matchGlob
	default:
		return fmt.Errorf("invalid match type %q", v)
	}
	return nil
}

type actionType string

func (t *actionType) UnmarshalYAML(unmarshal func(any) error) error {
	var v string
	if err := unmarshal(&v); err != nil {
		return err
	}
	switch v {
	case "drop":
		*t = "drop"
	case "map", "":
		*t = "map"
	default:
		return fmt.Errorf("invalid action type %q", v)
	}
	return nil
}

type metricType string

func (t *metricType) UnmarshalYAML(unmarshal func(any) error) error {
	var v string
	if err := unmarshal(&v); err != nil {
		return err
	}
	switch v {
	case "counter", "gauge", "observer":
		*t = metricType(v)
	case "timer": // before v0.31.0
		*t = "observer"
	default:
		return fmt.Errorf("invalid metric type '%s'", v)
	}
	return nil
}
