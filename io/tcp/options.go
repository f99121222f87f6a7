package tcp

import (
	"fmt"

	"github.com/bucky3/bucky3/engine"
)

// ServerOptions are the TCP options of a line-protocol source module,
// decoded from its TOML table. The line limit is the module's
// max_packet_size, shared with its UDP side: see Config.
type ServerOptions struct {
	// LocalTCP is the TCP address to listen on, IPv4 or IPv6; "" means
	// none.
	LocalTCP string `toml:"local_tcp"`
	// MaxConnections bounds the connections open at once.
	MaxConnections int `toml:"max_connections"`
	// IdleTimeout closes a connection silent for that long, in seconds.
	IdleTimeout float64 `toml:"idle_timeout"`
}

// DefaultServerOptions returns the defaults for a server on addr ("" for
// none).
func DefaultServerOptions(addr string) ServerOptions {
	return ServerOptions{
		LocalTCP:       addr,
		MaxConnections: DefaultMaxConnections,
		IdleTimeout:    DefaultIdleTimeout.Seconds(),
	}
}

// Validate checks the options; errors name the option at fault.
func (o *ServerOptions) Validate() error {
	if o.MaxConnections < 1 || o.MaxConnections > 65536 {
		return fmt.Errorf("max_connections: must be in [1, 65536], got %d", o.MaxConnections)
	}
	return engine.CheckSeconds("idle_timeout", o.IdleTimeout, 0)
}

// Config returns the listener configuration of the options, with lines
// up to maxLineSize bytes (max_packet_size).
func (o *ServerOptions) Config(maxLineSize int) Config {
	return Config{
		Addr:           o.LocalTCP,
		MaxConnections: o.MaxConnections,
		IdleTimeout:    engine.Seconds(o.IdleTimeout),
		MaxLineSize:    maxLineSize,
	}
}
