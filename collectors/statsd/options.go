package statsd

import (
	"fmt"

	"github.com/bucky3/bucky3/aggregate"
	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/io/udp"
)

// Options are the statsd_server options: the socket options of
// udp.ServerOptions, the aggregation options of aggregate.Options
// (buckets, percentile_thresholds, histograms, max_series,
// add_timestamps) and the parser's.
type Options struct {
	engine.SourceOptions
	udp.ServerOptions
	aggregate.Options

	// MaxTags is the most tags one line may carry.
	MaxTags int `toml:"max_tags"`
	// TimestampWindow is how far (seconds) a sample's own timestamp may be
	// from now.
	TimestampWindow float64 `toml:"timestamp_window"`
	// SanitizeNames maps characters outside [A-Za-z0-9_] in names and tag
	// keys to '_' instead of rejecting the line.
	SanitizeNames bool `toml:"sanitize_names"`
}

// DefaultOptions returns the statsd_server defaults.
func DefaultOptions() Options {
	return Options{
		SourceOptions:   engine.DefaultSourceOptions(),
		ServerOptions:   udp.DefaultServerOptions("0.0.0.0:8125", false),
		Options:         aggregate.DefaultOptions(),
		MaxTags:         64,
		TimestampWindow: 600,
	}
}

// Validate checks the options; errors name the option at fault.
func (o *Options) Validate() error {
	if err := o.ServerOptions.Validate(); err != nil {
		return err
	}
	if err := o.Options.Validate(); err != nil {
		return err
	}
	if o.MaxTags < 1 || o.MaxTags > 1024 {
		return fmt.Errorf("max_tags: must be in [1, 1024], got %d", o.MaxTags)
	}
	if o.TimestampWindow <= 0 {
		return fmt.Errorf("timestamp_window: must be above 0, got %v", o.TimestampWindow)
	}
	return nil
}
