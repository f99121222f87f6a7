package statsd

import (
	"errors"
	"fmt"

	"github.com/bucky3/bucky3/aggregate"
	"github.com/bucky3/bucky3/collectors/internal/udpsource"
	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/io/tcp"
	"github.com/bucky3/bucky3/io/udp"
	"github.com/bucky3/bucky3/parse"
	"github.com/bucky3/bucky3/parse/mapping"
)

// TCPOptions are the options of statsd_server's TCP listener (local_tcp,
// max_connections, idle_timeout). The alias gives the embedded field a
// name of its own beside udp.ServerOptions, with the keys still flat.
type TCPOptions = tcp.ServerOptions

// Options are the statsd_server options: the socket options of
// udp.ServerOptions and tcp.ServerOptions, the aggregation options of
// aggregate.Options (buckets, percentile_thresholds, histograms,
// max_series, add_timestamps) and the parser's.
type Options struct {
	engine.SourceOptions
	udp.ServerOptions
	TCPOptions
	aggregate.Options

	// MaxTags is the most tags one line may carry.
	MaxTags int `toml:"max_tags"`
	// MaxNameLength, MaxTagLength (key plus value) and MaxValuesPerLine
	// bound one line, in bytes as sent and packed values: a line over one
	// is dropped and counted, the rest of its datagram kept.
	MaxNameLength    int `toml:"max_name_length"`
	MaxTagLength     int `toml:"max_tag_length"`
	MaxValuesPerLine int `toml:"max_values_per_line"`
	// TimestampWindow is how far (seconds) a sample's own timestamp may be
	// from now.
	TimestampWindow float64 `toml:"timestamp_window"`
	// NameRule is the rule of names and tag keys: "statsd" (any UTF-8
	// but ':', '|', '@', '#', whitespace and control characters),
	// "bucky3" (a letter, then letters, digits and '_') or "sanitize"
	// ("bucky3" with other characters mapped to '_'). "" is "statsd", or
	// "sanitize" under sanitize_names = true.
	NameRule string `toml:"name_rule"`
	// SanitizeNames = true is the older spelling of name_rule =
	// "sanitize"; nil when the configuration does not set it, so that a
	// conflict with name_rule can be told from the default.
	SanitizeNames *bool `toml:"sanitize_names"`
	// TagAllowlist keeps only the tags with these keys, TagDenylist drops
	// the tags with these keys, before the series key is built: lines
	// that differ only in dropped tags feed one series. At most one of
	// the two may be set.
	TagAllowlist []string `toml:"tag_allowlist"`
	TagDenylist  []string `toml:"tag_denylist"`
	// Layout is the table's output: "bucky3" (the stats_* buckets) or
	// "typed" (one typed metric per series, for Prometheus-native output).
	Layout string `toml:"layout"`
	// MappingConfig is the path of a statsd_exporter mapping file, read
	// once at start; "" for none.
	MappingConfig string `toml:"mapping_config"`

	// mapper is MappingConfig loaded by Validate, so that a bad file fails
	// the configuration and New does not read it again.
	mapper *mapping.Mapper
}

// The layouts.
const (
	layoutBucky3 = "bucky3"
	layoutTyped  = "typed"
)

// DefaultOptions returns the statsd_server defaults.
func DefaultOptions() Options {
	return Options{
		SourceOptions:    engine.DefaultSourceOptions(),
		ServerOptions:    udp.DefaultServerOptions("0.0.0.0:8125", false),
		TCPOptions:       tcp.DefaultServerOptions(""),
		Options:          aggregate.DefaultOptions(),
		MaxTags:          64,
		MaxNameLength:    256,
		MaxTagLength:     1024,
		MaxValuesPerLine: 64,
		TimestampWindow:  600,
		Layout:           layoutBucky3,
	}
}

// Validate checks the options; errors name the option at fault.
func (o *Options) Validate() error {
	if err := udpsource.ValidateOptions(&o.ServerOptions); err != nil {
		return err
	}
	if err := o.TCPOptions.Validate(); err != nil {
		return err
	}
	if err := o.Options.Validate(); err != nil {
		return err
	}
	limits := []struct {
		name     string
		value    int
		min, max int
	}{
		{"max_tags", o.MaxTags, 1, 1024},
		// A line fits in a datagram, so larger limits would mean nothing.
		{"max_name_length", o.MaxNameLength, 1, 65535},
		{"max_tag_length", o.MaxTagLength, 1, 65535},
		{"max_values_per_line", o.MaxValuesPerLine, 1, 65535},
	}
	for _, l := range limits {
		if l.value < l.min || l.value > l.max {
			return fmt.Errorf("%s: must be in [%d, %d], got %d", l.name, l.min, l.max, l.value)
		}
	}
	if err := engine.CheckSeconds("timestamp_window", o.TimestampWindow, 0); err != nil {
		return err
	}
	rule, err := o.nameRule()
	if err != nil {
		return err
	}
	if err := validateTagList("tag_allowlist", o.TagAllowlist, rule); err != nil {
		return err
	}
	if err := validateTagList("tag_denylist", o.TagDenylist, rule); err != nil {
		return err
	}
	if len(o.TagAllowlist) > 0 && len(o.TagDenylist) > 0 {
		return errors.New("tag_allowlist, tag_denylist: set one of them, not both")
	}
	if o.Layout != layoutBucky3 && o.Layout != layoutTyped {
		return fmt.Errorf("layout: must be %q or %q, got %q", layoutBucky3, layoutTyped, o.Layout)
	}
	o.mapper = nil
	if o.MappingConfig != "" {
		m, err := mapping.Load(o.MappingConfig)
		if err != nil {
			return fmt.Errorf("mapping_config: %w", err)
		}
		if _, err := newLineMapper(m); err != nil {
			return err
		}
		o.mapper = m
	}
	return nil
}

// nameRule returns the parser's rule for name_rule and sanitize_names.
func (o *Options) nameRule() (parse.NameRule, error) {
	sanitize := o.SanitizeNames != nil && *o.SanitizeNames
	if o.NameRule == "" {
		if sanitize {
			return parse.RuleSanitize, nil
		}
		return parse.RuleStatsD, nil
	}
	rule, ok := parse.ParseNameRule(o.NameRule)
	if !ok {
		return 0, fmt.Errorf("name_rule: must be \"statsd\", \"bucky3\" or \"sanitize\", got %q", o.NameRule)
	}
	if o.SanitizeNames != nil && sanitize != (rule == parse.RuleSanitize) {
		return 0, fmt.Errorf("sanitize_names: %v contradicts name_rule = %q (sanitize_names = true is the older spelling of name_rule = \"sanitize\"; set only name_rule)", sanitize, o.NameRule)
	}
	return rule, nil
}

// validateTagList checks the tag keys of option: each must be a key the
// name rule can let through (a key it would reject or rewrite can never
// match), and timestamp is never a tag.
func validateTagList(option string, keys []string, rule parse.NameRule) error {
	for _, k := range keys {
		if !parse.ValidTagKey([]byte(k), rule) || k == "timestamp" {
			return fmt.Errorf("%s: %q is no tag key under name_rule = %q", option, k, rule)
		}
	}
	return nil
}
