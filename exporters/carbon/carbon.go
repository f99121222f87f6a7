package carbon

import (
	"context"
	"fmt"
	"net"
	"syscall"
	"time"

	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/io/push"
	"golang.org/x/sys/unix"
)

// DefaultPort is carbon's plaintext receiver port, used for remote_hosts
// entries without one.
const DefaultPort = 2003

// Options configure a carbon_client module.
type Options struct {
	push.Options
	// NameMapping lists the keys whose values start a metric's path, in
	// order; "bucket" and "value" (the field name) are keys too.
	NameMapping []string `toml:"name_mapping"`
}

// DefaultOptions returns the defaults of carbon_client.
func DefaultOptions() Options {
	return Options{Options: push.DefaultOptions(DefaultPort), NameMapping: []string{"bucket"}}
}

// Validate checks o.
func (o *Options) Validate() error {
	if err := o.Options.Validate(); err != nil {
		return err
	}
	for i, k := range o.NameMapping {
		if k == "" {
			return fmt.Errorf("name_mapping: empty key at position %d", i)
		}
	}
	return nil
}

// Client is a carbon_client module.
type Client struct {
	m        engine.Module
	o        Options
	resolver *push.Resolver

	conn     net.Conn
	dialedAt time.Time
	buf      []byte           // reused across pushes
	flat     engine.Flattener // renders typed histograms and summaries
	noFields *engine.Counter
}

// New returns a client for o, which must have passed Validate. It does no
// I/O: names are resolved and connections made by Run.
func New(m engine.Module, o Options) (*Client, error) {
	r, err := push.NewResolver(o.RemoteHosts, o.DefaultPort)
	if err != nil {
		return nil, err
	}
	return &Client{m: m, o: o, resolver: r, noFields: m.Stats.Counter("metrics_dropped_no_fields")}, nil
}

// Run pushes the batches read from in until in is closed (after a final
// push) or ctx is cancelled. It implements engine.Destination.
func (c *Client) Run(ctx context.Context, in <-chan *engine.Batch) error {
	defer c.disconnect()
	return push.Run(ctx, in, c.m, c.o.Options, push.PushFunc(c.push))
}

// push writes chunk as one stream of lines. A failed write loses track of
// how much the server read, so the whole chunk stays queued: carbon keeps
// the last value per path and second, so a resent line is harmless.
func (c *Client) push(ctx context.Context, chunk []engine.Metric) (sent, dropped int, err error) {
	now := time.Now().Unix()
	c.buf = c.buf[:0]
	for i := range chunk {
		n := len(c.buf)
		c.buf = AppendLinesFlat(c.buf, &chunk[i], c.o.NameMapping, now, &c.flat)
		if len(c.buf) == n {
			dropped++
		}
	}
	if len(c.buf) > 0 {
		if err := c.write(ctx, c.buf); err != nil {
			return 0, 0, err
		}
	}
	c.noFields.Add(uint64(dropped))
	return len(chunk) - dropped, dropped, nil
}

func (c *Client) write(ctx context.Context, b []byte) error {
	if err := c.connect(ctx); err != nil {
		return err
	}
	if err := c.conn.SetWriteDeadline(time.Now().Add(engine.Seconds(c.o.SocketTimeout))); err != nil {
		c.disconnect()
		return err
	}
	if _, err := c.conn.Write(b); err != nil {
		c.disconnect()
		return err
	}
	return nil
}

// connect makes sure c.conn is usable: it reconnects after ReresolveInterval
// (to spread load over the resolved addresses) and when the server has
// closed the connection; without that check the first write after a server
// restart would vanish into a dead socket.
func (c *Client) connect(ctx context.Context) error {
	if c.conn != nil && time.Since(c.dialedAt) >= push.ReresolveInterval {
		c.disconnect()
	}
	if c.conn != nil && peerClosed(c.conn) {
		c.disconnect()
	}
	if c.conn != nil {
		return nil
	}
	addr, err := c.resolver.Pick(ctx)
	if err != nil {
		return err
	}
	d := net.Dialer{Timeout: engine.Seconds(c.o.SocketTimeout)}
	conn, err := d.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return err
	}
	c.conn, c.dialedAt = conn, time.Now()
	return nil
}

func (c *Client) disconnect() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// peerClosed reports whether the server has closed or reset conn. Carbon
// never writes to its clients, so a non-blocking peek that finds end of
// stream or an error (rather than "nothing yet") means the peer is gone.
func peerClosed(conn net.Conn) bool {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	closed := false
	err = raw.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		closed = n == 0 && err == nil || err != nil && err != unix.EAGAIN
		return true // never wait for readiness: this is a probe
	})
	return closed || err != nil
}
