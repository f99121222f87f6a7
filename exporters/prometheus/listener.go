package prometheus

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"

	"github.com/bucky3/bucky3/engine"
)

// limitListener caps the connections open at once. A connection beyond
// the cap is accepted and closed at once, counted, rather than left in the
// kernel's backlog: the client learns right away, and a flood of them
// costs an accept and a close each instead of filling the backlog that
// legitimate scrapers queue in.
type limitListener struct {
	net.Listener
	max     int64
	open    *engine.Gauge
	refused *engine.Counter
}

// Accept returns the next connection that fits under the cap. Only
// http.Server's accept loop calls it, so the check and the increment need
// no lock; Close of a connection decrements concurrently.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Load() >= l.max {
			_ = c.Close() // refused; the client sees the connection end
			l.refused.Inc()
			continue
		}
		l.open.Add(1)
		return &limitedConn{Conn: c, open: l.open}, nil
	}
}

// limitedConn gives its slot back on its first Close. After a write
// timeout every further write fails at once: otherwise TLS's close_notify
// at Close would wait up to 5 s more on a client that stopped reading,
// holding the slot past write_timeout.
type limitedConn struct {
	net.Conn
	once     sync.Once
	open     *engine.Gauge
	timedOut atomic.Bool
}

func (c *limitedConn) Write(b []byte) (int, error) {
	if c.timedOut.Load() {
		return 0, os.ErrDeadlineExceeded
	}
	n, err := c.Conn.Write(b)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		c.timedOut.Store(true)
	}
	return n, err
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.open.Add(-1) })
	return err
}
