package push

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/bucky3/bucky3/engine"
)

// Options are the options shared by the push destinations. Each client embeds
// them in its own Options struct.
type Options struct {
	engine.DestinationOptions
	// RemoteHosts are host[:port] entries; a missing port is DefaultPort.
	RemoteHosts []string `toml:"remote_hosts"`
	// ChunkSize is the number of metrics handed to the Pusher at once.
	ChunkSize int `toml:"chunk_size"`
	// BufferLimit bounds the queue; above it the queue keeps its newest half.
	BufferLimit int `toml:"buffer_limit"`
	// MaxFlushInterval (seconds) caps the interval doubled by failed pushes.
	MaxFlushInterval float64 `toml:"max_flush_interval"`
	// PushCountLimit caps the metrics pushed per flush.
	PushCountLimit int `toml:"push_count_limit"`
	// PushTimeLimit (seconds) stops a flush from starting new chunks after
	// this long; the rest waits for the next flush.
	PushTimeLimit float64 `toml:"push_time_limit"`
	// SocketTimeout (seconds) bounds each connect, write and HTTP request.
	SocketTimeout float64 `toml:"socket_timeout"`

	// DefaultPort is the client's port for entries without one; it is not
	// an option.
	DefaultPort int `toml:"-"`
}

// MinBufferLimit is the smallest accepted buffer_limit.
const MinBufferLimit = 100

// ReresolveInterval is how often remote_hosts are resolved again and, for
// TCP and HTTP, how often a client reconnects to spread load.
const ReresolveInterval = 180 * time.Second

// DefaultOptions returns the shared defaults for a client whose protocol
// listens on defaultPort.
func DefaultOptions(defaultPort int) Options {
	return Options{
		DestinationOptions: engine.DefaultDestinationOptions(),
		RemoteHosts:        []string{"127.0.0.1"},
		ChunkSize:          300,
		BufferLimit:        10000,
		MaxFlushInterval:   600,
		PushCountLimit:     10000,
		PushTimeLimit:      5,
		SocketTimeout:      5,
		DefaultPort:        defaultPort,
	}
}

// Validate checks the push options. The engine's registry checks the
// common ones (flush_interval among them) before it, once. Error messages
// start with the option name so that the config loader can prefix the
// module name.
func (o *Options) Validate() error {
	if len(o.RemoteHosts) == 0 {
		return fmt.Errorf("remote_hosts: at least one host is required")
	}
	for _, h := range o.RemoteHosts {
		if _, _, err := SplitHostPort(h, o.DefaultPort); err != nil {
			return fmt.Errorf("remote_hosts: %w", err)
		}
	}
	switch {
	case o.ChunkSize < 1:
		return fmt.Errorf("chunk_size: must be at least 1, got %d", o.ChunkSize)
	case o.BufferLimit < MinBufferLimit:
		return fmt.Errorf("buffer_limit: must be at least %d, got %d", MinBufferLimit, o.BufferLimit)
	case o.MaxFlushInterval < o.FlushInterval:
		return fmt.Errorf("max_flush_interval: must be at least flush_interval (%v), got %v", o.FlushInterval, o.MaxFlushInterval)
	case o.PushCountLimit < 1:
		return fmt.Errorf("push_count_limit: must be at least 1, got %d", o.PushCountLimit)
	case o.PushTimeLimit <= 0:
		return fmt.Errorf("push_time_limit: must be above 0, got %v", o.PushTimeLimit)
	case o.SocketTimeout <= 0:
		return fmt.Errorf("socket_timeout: must be above 0, got %v", o.SocketTimeout)
	}
	return nil
}

// SplitHostPort splits a host[:port] entry, IPv6 literals in brackets,
// using defaultPort when the entry has none.
func SplitHostPort(entry string, defaultPort int) (host string, port int, err error) {
	if entry == "" {
		return "", 0, fmt.Errorf("empty host")
	}
	h, p, err := net.SplitHostPort(entry)
	if err != nil {
		// No port: a bare name, IPv4 or IPv6 literal (bracketed or not).
		h = entry
		if len(h) > 1 && h[0] == '[' && h[len(h)-1] == ']' {
			h = h[1 : len(h)-1]
		}
		return h, defaultPort, nil
	}
	if h == "" {
		return "", 0, fmt.Errorf("%q: empty host", entry)
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return "", 0, fmt.Errorf("%q: bad port %q", entry, p)
	}
	return h, n, nil
}
