package statsd

import (
	"fmt"

	"github.com/bucky3/bucky3/aggregate"
	"github.com/bucky3/bucky3/collectors/internal/udpsource"
	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/io/tcp"
	"github.com/bucky3/bucky3/io/udp"
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
	// SanitizeNames maps characters outside [A-Za-z0-9_] in names and tag
	// keys to '_' instead of rejecting the line.
	SanitizeNames bool `toml:"sanitize_names"`
}

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
	return engine.CheckSeconds("timestamp_window", o.TimestampWindow, 0)
}
