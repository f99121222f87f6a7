package influxdb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/io/push"
)

// DefaultPort is InfluxDB's UDP service port used for remote_hosts
// entries without one.
const DefaultPort = 8086

// Options configure an influxdb_client module.
type Options struct {
	push.Options
	// MaxDatagramSize bounds a datagram's payload (bytes). A line longer
	// than it is dropped (metrics_dropped_too_large), never retried. 1400
	// keeps datagrams under a 1500-byte path MTU, at the cost of dropping
	// longer lines.
	MaxDatagramSize int `toml:"max_datagram_size"`
}

// DefaultMaxDatagramSize is the largest payload a UDP datagram carries over
// IPv4 (65507), rounded down.
const DefaultMaxDatagramSize = 65000

// DefaultOptions returns the defaults of influxdb_client.
func DefaultOptions() Options {
	return Options{Options: push.DefaultOptions(DefaultPort), MaxDatagramSize: DefaultMaxDatagramSize}
}

// Validate checks o.
func (o *Options) Validate() error {
	if err := o.Options.Validate(); err != nil {
		return err
	}
	if o.MaxDatagramSize < 64 || o.MaxDatagramSize > 65507 {
		return fmt.Errorf("max_datagram_size: must be within 64…65507, got %d", o.MaxDatagramSize)
	}
	return nil
}

// Client is an influxdb_client module.
type Client struct {
	m        engine.Module
	o        Options
	resolver *push.Resolver

	conn     *net.UDPConn
	datagram []byte           // reused across pushes
	flat     engine.Flattener // renders typed histograms and summaries
	noFields *engine.Counter
	tooLarge *engine.Counter
	connErrs *engine.Counter
}

// New returns a client for o, which must have passed Validate. It does no
// I/O: names are resolved and the socket opened by Run.
func New(m engine.Module, o Options) (*Client, error) {
	r, err := push.NewResolver(o.RemoteHosts, o.DefaultPort)
	if err != nil {
		return nil, err
	}
	return &Client{
		m:        m,
		o:        o,
		resolver: r,
		datagram: make([]byte, 0, o.MaxDatagramSize),
		noFields: m.Stats.Counter("metrics_dropped_no_fields"),
		tooLarge: m.Stats.Counter("metrics_dropped_too_large"),
		connErrs: m.Stats.Counter("connection_errors"),
	}, nil
}

// Run pushes the batches read from in until in is closed (after a final
// push) or ctx is cancelled. It implements engine.Destination.
func (c *Client) Run(ctx context.Context, in <-chan *engine.Batch) error {
	defer func() {
		if c.conn != nil {
			c.conn.Close()
			c.conn = nil
		}
	}()
	return push.Run(ctx, in, c.m, c.o.Options, push.PushFunc(c.push))
}

// push packs chunk into datagrams of at most chunk_size lines and
// max_datagram_size bytes and sends each to every resolved address.
// Metrics with nothing to write, or a line longer than max_datagram_size,
// are dropped; a drop is reported only once every metric before it is
// sent, as Pusher requires. A datagram the network refuses for good
// (EMSGSIZE) fails the push with a permanent error, which push.Run
// isolates.
func (c *Client) push(ctx context.Context, chunk []engine.Metric) (sent, dropped int, err error) {
	addrs, err := c.resolver.Addrs(ctx)
	if err != nil {
		return 0, 0, err
	}
	if c.conn == nil {
		if c.conn, err = net.ListenUDP("udp", nil); err != nil {
			return 0, 0, err
		}
	}
	// A too-large line grew the buffer: do not keep that much between pushes.
	if cap(c.datagram) > 2*c.o.MaxDatagramSize {
		c.datagram = make([]byte, 0, c.o.MaxDatagramSize)
	}
	var lines, noFields, tooLarge int // not yet reported
	commit := func() {
		sent += lines
		dropped += noFields + tooLarge
		c.noFields.Add(uint64(noFields))
		c.tooLarge.Add(uint64(tooLarge))
		lines, noFields, tooLarge = 0, 0, 0
		c.datagram = c.datagram[:0]
	}
	for i := range chunk {
		start := len(c.datagram)
		c.datagram = AppendLineFlat(c.datagram, &chunk[i], &c.flat)
		switch n := len(c.datagram) - start; {
		case n == 0:
			noFields++
			continue
		case n > c.o.MaxDatagramSize:
			c.datagram = c.datagram[:start]
			tooLarge++
			continue
		}
		if lines > 0 && (lines == c.o.ChunkSize || len(c.datagram) > c.o.MaxDatagramSize) {
			if err := c.send(addrs, c.datagram[:start]); err != nil {
				return sent, dropped, err
			}
			// Every metric before chunk[i] is now done, drops included;
			// the new line moves to the start of the next datagram.
			line := c.datagram[start:]
			commit()
			c.datagram = append(c.datagram, line...)
		}
		lines++
	}
	if lines > 0 {
		if err := c.send(addrs, c.datagram); err != nil {
			return sent, dropped, err
		}
	}
	commit()
	return sent, dropped, nil
}

// send writes one datagram to every address. It fails only when no address
// took it: a retry would duplicate the datagram at the others, which is
// worse for points without a timestamp than one lost copy.
func (c *Client) send(addrs []netip.AddrPort, datagram []byte) error {
	if err := c.conn.SetWriteDeadline(time.Now().Add(engine.Seconds(c.o.SocketTimeout))); err != nil {
		return err
	}
	var errs []error
	for _, a := range addrs {
		if _, err := c.conn.WriteToUDPAddrPort(datagram, a); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == len(addrs) {
		err := errors.Join(errs...)
		for _, e := range errs {
			if !errors.Is(e, syscall.EMSGSIZE) {
				return err
			}
		}
		// Every address refused the size: a retry would too.
		return push.Permanent(err)
	}
	if len(errs) > 0 {
		c.connErrs.Add(uint64(len(errs)))
	}
	return nil
}
