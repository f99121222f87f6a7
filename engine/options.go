package engine

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Seconds converts a time option (seconds, possibly fractional) to a
// Duration.
func Seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// CommonOptions are understood by every module type.
type CommonOptions struct {
	ModuleType     string `toml:"module_type"`
	ModuleInactive bool   `toml:"module_inactive"`
	// LogLevel is debug, info, warning or error; empty inherits the global.
	LogLevel string `toml:"log_level"`
	// FlushInterval is how often the module flushes, in seconds.
	FlushInterval float64 `toml:"flush_interval"`
	// SelfReport makes the module emit its counters in bucket bucky3.
	SelfReport         bool    `toml:"self_report"`
	SelfReportInterval float64 `toml:"self_report_interval"`
}

// Common returns the options shared by all modules; embedding
// CommonOptions gives every options struct this method.
func (c *CommonOptions) Common() *CommonOptions { return c }

// MinSeconds is the smallest time option accepted (1 ms) unless an option
// sets its own minimum: shorter ones are typing mistakes, and tickers and
// timers cannot keep them.
const MinSeconds = 0.001

// CheckSeconds checks a time option: at least minimum seconds (MinSeconds
// when minimum is 0) and finite. It names the option in its error.
func CheckSeconds(option string, v, minimum float64) error {
	if minimum <= 0 {
		minimum = MinSeconds
	}
	if !(v >= minimum) || math.IsInf(v, 0) {
		return fmt.Errorf("%s: must be at least %v s, got %v", option, minimum, v)
	}
	return nil
}

// ValidateCommon checks the shared options.
func (c *CommonOptions) ValidateCommon() error {
	if err := CheckSeconds("flush_interval", c.FlushInterval, 0); err != nil {
		return err
	}
	if err := CheckSeconds("self_report_interval", c.SelfReportInterval, 0); err != nil {
		return err
	}
	switch c.LogLevel {
	case "", "debug", "info", "warning", "error":
	default:
		return fmt.Errorf("log_level: must be debug, info, warning or error, got %q", c.LogLevel)
	}
	return nil
}

// SourceOptions are understood by every source module. The engine applies
// Metadata and MetricPostprocessor in the Emitter it gives the source, so
// sources themselves only read RandomizeStartup and FlushInterval.
type SourceOptions struct {
	CommonOptions
	// Metadata is merged into every emitted metric's tags; tags the metric
	// already has win.
	Metadata map[string]string `toml:"metadata"`
	// DestinationModules restricts the destinations this source feeds;
	// empty means all.
	DestinationModules []string `toml:"destination_modules"`
	// RandomizeStartup delays the first collection of a source whose
	// flush interval is above 3 s by a random 0…min(interval-1, 15) s.
	RandomizeStartup bool `toml:"randomize_startup"`
	// BucketTag makes a "bucket" tag (from a sender or from Metadata)
	// rename the metric's bucket; false keeps it an ordinary tag, so that
	// senders cannot choose buckets (and Elasticsearch indices).
	BucketTag bool `toml:"bucket_tag"`
	// MetricPostprocessor holds the relabel rules applied to each
	// emitted metric, in order.
	MetricPostprocessor []RelabelRule `toml:"metric_postprocessor"`
}

// Source returns the source options; embedding SourceOptions gives every
// source options struct this method.
func (s *SourceOptions) Source() *SourceOptions { return s }

// DefaultSourceOptions returns the defaults shared by sources.
func DefaultSourceOptions() SourceOptions {
	return SourceOptions{
		CommonOptions:    CommonOptions{FlushInterval: 10, SelfReportInterval: 60},
		RandomizeStartup: true,
		BucketTag:        true,
	}
}

// DestinationOptions are understood by every destination module.
type DestinationOptions struct {
	CommonOptions
}

// Destination returns the destination options.
func (d *DestinationOptions) Destination() *DestinationOptions { return d }

// DefaultDestinationOptions returns the defaults shared by destinations.
func DefaultDestinationOptions() DestinationOptions {
	return DestinationOptions{CommonOptions: CommonOptions{FlushInterval: 10, SelfReportInterval: 60}}
}

// StartupDelay returns the random wait of SPEC §2.1 before a source's first
// collection: 0…min(flush_interval−1, 15) s when randomize_startup is set
// and the interval is above 3 s, else 0. It spreads the flushes of a fleet
// of agents started together.
func (s *SourceOptions) StartupDelay() time.Duration {
	if !s.RandomizeStartup || s.FlushInterval <= 3 {
		return 0
	}
	return rand.N(Seconds(min(s.FlushInterval-1, 15)) + 1)
}

// WaitStartup sleeps for StartupDelay and reports whether the source should
// go on: false when ctx ended first.
func (s *SourceOptions) WaitStartup(ctx context.Context) bool {
	d := s.StartupDelay()
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
