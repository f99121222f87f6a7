package udp

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/bucky3/bucky3/engine"
)

// defaultBatchWait and maxBatchWait are batch_wait's default and bound, in
// seconds. A longer pause needs a larger receive buffer to last at a given
// rate, and what it delays lands in the next flush (bench/RESULTS.md,
// Round 6).
const (
	defaultBatchWait = 0.3
	maxBatchWait     = 0.5
)

// ServerOptions are the socket options of the UDP source modules
// (statsd_server, jsond_server), decoded from their TOML tables.
type ServerOptions struct {
	// LocalHost is the UDP address to listen on, IPv4 or IPv6; "" means
	// none, and then LocalSocket is needed.
	LocalHost string `toml:"local_host"`
	// LocalSocket is the path of a unix datagram socket to listen on
	// ("@name": abstract); "" means none.
	LocalSocket string `toml:"local_socket"`
	// SocketMode is the permission of LocalSocket's file, in octal.
	SocketMode string `toml:"socket_mode"`
	// OriginDetection finds the container of each sender to LocalSocket
	// (Config.OriginDetection), for the source to tag its metrics with.
	OriginDetection bool `toml:"origin_detection"`
	// Readers is the number of SO_REUSEPORT sockets, each with its own
	// reader goroutine; 0 means one per CPU.
	Readers int `toml:"readers"`
	// BatchSize is the number of datagrams one recvmmsg call reads.
	BatchSize int `toml:"batch_size"`
	// MaxPacketSize is the largest datagram accepted whole, in [512, 65535].
	MaxPacketSize int `toml:"max_packet_size"`
	// ReceiveBuffer is the SO_RCVBUF requested for each socket, in bytes.
	ReceiveBuffer int `toml:"receive_buffer"`
	// TryDecompress inflates datagrams that are zlib or gzip streams.
	TryDecompress bool `toml:"try_decompress"`
	// MaxDecompressedBytes bounds what one datagram may inflate to.
	MaxDecompressedBytes int `toml:"max_decompressed_bytes"`
	// BatchWait is Config.BatchWait in seconds, in [0, 0.5]. Longer
	// pauses wake the process less often and take less CPU at moderate
	// rates (bench/RESULTS.md, Round 6 and "Design notes").
	BatchWait float64 `toml:"batch_wait"`
}

// DefaultServerOptions returns the defaults for a server on localHost.
func DefaultServerOptions(localHost string, tryDecompress bool) ServerOptions {
	return ServerOptions{
		LocalHost:            localHost,
		SocketMode:           "0660",
		BatchSize:            DefaultBatchSize,
		MaxPacketSize:        DefaultMaxPacketSize,
		ReceiveBuffer:        DefaultReceiveBuffer,
		TryDecompress:        tryDecompress,
		MaxDecompressedBytes: DefaultMaxInflated,
		BatchWait:            defaultBatchWait,
	}
}

// Validate checks the options; errors name the option at fault.
func (o *ServerOptions) Validate() error {
	if o.LocalHost == "" && o.LocalSocket == "" {
		return errors.New("local_host: must not be empty without local_socket")
	}
	if _, err := o.socketMode(); err != nil {
		return err
	}
	if o.OriginDetection && o.LocalSocket == "" {
		return errors.New("origin_detection: needs local_socket")
	}
	checks := []struct {
		name     string
		value    int
		min, max int
	}{
		{"readers", o.Readers, 0, 1024},
		{"batch_size", o.BatchSize, 1, maxBatchSize},
		{"max_packet_size", o.MaxPacketSize, minPacketSize, DefaultMaxPacketSize},
		{"receive_buffer", o.ReceiveBuffer, 4096, 1 << 30},
		{"max_decompressed_bytes", o.MaxDecompressedBytes, 1024, 64 << 20},
	}
	for _, c := range checks {
		if c.value < c.min || c.value > c.max {
			return fmt.Errorf("%s: must be in [%d, %d], got %d", c.name, c.min, c.max, c.value)
		}
	}
	if !(o.BatchWait >= 0 && o.BatchWait <= maxBatchWait) { // NaN too
		return fmt.Errorf("batch_wait: must be in [0, %v] seconds, got %v", maxBatchWait, o.BatchWait)
	}
	return nil
}

// socketMode parses socket_mode: octal, permission bits only, as chmod
// takes it ("0660", "660").
func (o *ServerOptions) socketMode() (os.FileMode, error) {
	m, err := strconv.ParseUint(o.SocketMode, 8, 32)
	if err != nil || m == 0 || m > 0o777 {
		return 0, fmt.Errorf("socket_mode: must be octal permissions in [1, 777] such as \"0660\", got %q", o.SocketMode)
	}
	return os.FileMode(m), nil
}

// Config returns the listener configuration of valid options.
func (o *ServerOptions) Config() Config {
	mode, _ := o.socketMode()
	return Config{
		Addr:            o.LocalHost,
		Socket:          o.LocalSocket,
		SocketMode:      mode,
		OriginDetection: o.OriginDetection,
		Readers:         o.Readers,
		BatchSize:       o.BatchSize,
		MaxPacketSize:   o.MaxPacketSize,
		ReceiveBuffer:   o.ReceiveBuffer,
		BatchWait:       engine.Seconds(o.BatchWait),
	}
}
