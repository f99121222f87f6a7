package statsd

import (
	"fmt"

	"github.com/bucky3/bucky3/aggregate"
	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/io/udp"
)

// Options are the statsd_server options. The aggregation options
// (buckets, percentile_thresholds, histograms, max_series,
// add_timestamps) come from the embedded aggregate.Options.
type Options struct {
	engine.SourceOptions
	aggregate.Options

	// LocalHost is the UDP address to listen on, IPv4 or IPv6.
	LocalHost string `toml:"local_host"`
	// Readers is the number of SO_REUSEPORT sockets, each with its own
	// reader goroutine; 0 means one per CPU.
	Readers int `toml:"readers"`
	// BatchSize is the number of datagrams one recvmmsg call reads.
	BatchSize int `toml:"batch_size"`
	// MaxPacketSize is the largest datagram accepted whole.
	MaxPacketSize int `toml:"max_packet_size"`
	// ReceiveBuffer is the SO_RCVBUF requested for each socket, in bytes.
	ReceiveBuffer int `toml:"receive_buffer"`
	// MaxTags is the most tags one line may carry.
	MaxTags int `toml:"max_tags"`
	// TimestampWindow is how far (seconds) a sample's own timestamp may be
	// from now.
	TimestampWindow float64 `toml:"timestamp_window"`
	// TryDecompress inflates datagrams that are zlib or gzip streams.
	TryDecompress bool `toml:"try_decompress"`
	// MaxDecompressedBytes bounds what one datagram may inflate to.
	MaxDecompressedBytes int `toml:"max_decompressed_bytes"`
	// SanitizeNames maps characters outside [A-Za-z0-9_] in names and tag
	// keys to '_' instead of rejecting the line.
	SanitizeNames bool `toml:"sanitize_names"`
}

// DefaultOptions returns the statsd_server defaults.
func DefaultOptions() Options {
	return Options{
		SourceOptions:        engine.DefaultSourceOptions(),
		Options:              aggregate.DefaultOptions(),
		LocalHost:            "0.0.0.0:8125",
		BatchSize:            udp.DefaultBatchSize,
		MaxPacketSize:        udp.DefaultMaxPacketSize,
		ReceiveBuffer:        udp.DefaultReceiveBuffer,
		MaxTags:              64,
		TimestampWindow:      600,
		MaxDecompressedBytes: udp.DefaultMaxInflated,
	}
}

// Validate checks the options; errors name the option at fault.
func (o *Options) Validate() error {
	if err := o.Options.Validate(); err != nil {
		return err
	}
	if o.LocalHost == "" {
		return fmt.Errorf("local_host: must not be empty")
	}
	checks := []struct {
		name     string
		value    int
		min, max int
	}{
		{"readers", o.Readers, 0, 1024},
		{"batch_size", o.BatchSize, 1, 1024},
		{"max_packet_size", o.MaxPacketSize, 512, udp.DefaultMaxPacketSize},
		{"receive_buffer", o.ReceiveBuffer, 4096, 1 << 30},
		{"max_tags", o.MaxTags, 1, 1024},
		{"max_decompressed_bytes", o.MaxDecompressedBytes, 1024, 64 << 20},
	}
	for _, c := range checks {
		if c.value < c.min || c.value > c.max {
			return fmt.Errorf("%s: must be in [%d, %d], got %d", c.name, c.min, c.max, c.value)
		}
	}
	if o.TimestampWindow <= 0 {
		return fmt.Errorf("timestamp_window: must be above 0, got %v", o.TimestampWindow)
	}
	return nil
}
