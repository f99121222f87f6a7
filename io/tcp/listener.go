package tcp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Defaults applied by Listen to the zero fields of a Config.
const (
	DefaultMaxConnections = 256
	DefaultIdleTimeout    = 5 * time.Minute
	DefaultMaxLineSize    = 65535
)

// MinLineSize is the smallest MaxLineSize: a read buffer holds one line
// of that length at most, and smaller reads would cost a syscall per line.
const MinLineSize = 512

// Config describes a Listener. Zero fields take the defaults above.
type Config struct {
	// Addr is host:port, IPv4 or IPv6; port 0 picks one (see Addr).
	Addr string
	// MaxConnections bounds the connections open at once; another is
	// closed as soon as it is accepted, and counted (Refused).
	MaxConnections int
	// IdleTimeout closes a connection that sent nothing for that long.
	IdleTimeout time.Duration
	// MaxLineSize is the longest line accepted, without its newline. Each
	// connection slot's buffer is one byte longer, so a line that does not
	// end within one buffer is too long: the limit costs no scan.
	MaxLineSize int
	// Log receives the error of a handler that panicked, at most once a
	// second; nil is slog.Default().
	Log *slog.Logger
}

func (c *Config) setDefaults() error {
	if c.MaxConnections == 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxLineSize == 0 {
		c.MaxLineSize = DefaultMaxLineSize
	}
	switch {
	case c.MaxConnections < 0:
		return fmt.Errorf("tcp: max_connections %d: must be positive", c.MaxConnections)
	case c.IdleTimeout < 0:
		return fmt.Errorf("tcp: idle timeout %v: must be positive", c.IdleTimeout)
	case c.MaxLineSize < MinLineSize || c.MaxLineSize > 1<<24:
		return fmt.Errorf("tcp: max line size %d: must be in %d..%d", c.MaxLineSize, MinLineSize, 1<<24)
	}
	return nil
}

// Handler is called once per connection slot, in [0, MaxConnections), the
// first time a connection takes that slot. The function it returns is
// called with the whole lines of each read of that slot's connections,
// newlines included (the last line of a connection's stream may lack
// one), on the connection's goroutine. A slot serves one connection at a
// time, so the function may keep state (a parser, a scratch buffer)
// without locking; later connections on the slot reuse it.
//
// lines is valid only during the call, and its capacity is capped at its
// length. A slow function stalls its connection only.
type Handler func(slot int) func(lines []byte)

// Listener is a TCP listener for newline-delimited lines. Its counters
// are safe for concurrent use.
type Listener struct {
	cfg     Config
	ln      *net.TCPListener
	running atomic.Bool

	mu      sync.Mutex // guards the fields below
	slots   []slot
	free    []int // indices of slots without a connection
	closing bool

	closed    chan struct{} // closed by Close: ends an accept backoff
	closeOnce sync.Once
	closeErr  error

	accepted, refused, closedIdle, tooLong, batches, bytes, panics, acceptErrors atomic.Uint64
	active                                                                       atomic.Int64
	lastPanicLog                                                                 atomic.Int64
}

// slot is the state one connection at a time reads with. conn is guarded
// by Listener.mu; fn and buf belong to the connection's goroutine.
type slot struct {
	conn net.Conn
	fn   func(lines []byte)
	buf  []byte // MaxLineSize+1 bytes, allocated at the slot's first use
}

// Listen binds cfg.Addr. Nothing is accepted until Run.
func Listen(cfg Config) (*Listener, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("tcp: listen %q: %w", cfg.Addr, err)
	}
	l := &Listener{cfg: cfg, ln: ln.(*net.TCPListener), slots: make([]slot, cfg.MaxConnections), closed: make(chan struct{})}
	// Popped from the end: slot 0 is taken first.
	l.free = make([]int, cfg.MaxConnections)
	for i := range l.free {
		l.free[i] = cfg.MaxConnections - 1 - i
	}
	return l, nil
}

// Addr returns the address the listener is bound to, with the actual port.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Run accepts connections and hands their lines to h until ctx is done or
// the Listener is closed; then it closes the listener and every
// connection, and returns after all their goroutines have exited. It
// returns nil on shutdown, or the error that stopped the accept loop. Run
// may be called once.
func (l *Listener) Run(ctx context.Context, h Handler) error {
	if !l.running.CompareAndSwap(false, true) {
		return errors.New("tcp: Run called twice")
	}
	defer context.AfterFunc(ctx, func() { l.Close() })()
	var wg sync.WaitGroup
	err := l.accept(h, &wg)
	l.Close()
	wg.Wait()
	return err
}

// accept runs the accept loop: each connection takes a free slot and gets
// its goroutine, or is refused. Errors that running out of descriptors or
// memory cause are waited out, as net/http does; a panic stops Run.
func (l *Listener) accept(h Handler, wg *sync.WaitGroup) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("tcp: accept loop panicked: %v\n%s", v, debug.Stack())
		}
	}()
	var backoff time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			if !transient(err) {
				return fmt.Errorf("tcp: accept: %w", err)
			}
			l.acceptErrors.Add(1)
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			select {
			case <-time.After(backoff):
			case <-l.closed:
				return nil
			}
			continue
		}
		backoff = 0
		i, ok := l.take(c)
		if !ok {
			l.refused.Add(1)
			c.Close()
			continue
		}
		l.accepted.Add(1)
		s := &l.slots[i]
		if s.fn == nil {
			s.fn = h(i)
			s.buf = make([]byte, l.cfg.MaxLineSize+1)
		}
		wg.Go(func() { l.serve(i, s, c) })
	}
}

// transient reports whether an accept error passes by itself.
func transient(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// take gives c a free slot, or false when there is none or the Listener
// is closing.
func (l *Listener) take(c net.Conn) (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing || len(l.free) == 0 {
		return 0, false
	}
	i := l.free[len(l.free)-1]
	l.free = l.free[:len(l.free)-1]
	l.slots[i].conn = c
	l.active.Add(1)
	return i, true
}

// release closes slot i's connection and frees the slot.
func (l *Listener) release(i int) {
	l.mu.Lock()
	c := l.slots[i].conn
	l.slots[i].conn = nil
	l.free = append(l.free, i)
	l.mu.Unlock()
	l.active.Add(-1)
	c.Close()
}

// serve reads connection c on slot s until it ends, is idle for
// IdleTimeout or the Listener closes. A panic here, outside the handler,
// closes the connection only.
func (l *Listener) serve(i int, s *slot, c net.Conn) {
	defer l.release(i)
	defer func() {
		if v := recover(); v != nil {
			l.panics.Add(1)
			l.logPanic("tcp: connection panicked; connection closed", v, nil)
		}
	}()
	if err := l.read(s, c); errors.Is(err, os.ErrDeadlineExceeded) {
		l.closedIdle.Add(1)
	}
}

// read is the read loop of one connection. buf[start:end] is what was
// read and not delivered: part of a line, never a newline, and never more
// than MaxLineSize bytes, so the buffer always has room for one more.
func (l *Listener) read(s *slot, c net.Conn) error {
	buf, idle := s.buf, l.cfg.IdleTimeout
	start, end := 0, 0
	skipping := false // dropping a too-long line up to its newline
	var deadline time.Time
	for {
		if end == len(buf) {
			end = copy(buf, buf[start:end])
			start = 0
		}
		// Moving the deadline costs a timer update: only when a sixteenth
		// of the timeout has passed, so an idle connection is closed
		// between 15/16 and all of IdleTimeout after its last byte.
		if now := time.Now(); now.Add(idle).Sub(deadline) > idle/16 {
			deadline = now.Add(idle)
			if err := c.SetReadDeadline(deadline); err != nil {
				return err
			}
		}
		n, err := c.Read(buf[end:])
		scan := end // new bytes start here
		end += n
		if n > 0 && skipping {
			i := bytes.IndexByte(buf[scan:end], '\n')
			if i < 0 {
				start, end = 0, 0
			} else {
				skipping, start, scan = false, scan+i+1, scan+i+1
			}
		}
		if n > 0 && !skipping {
			if i := bytes.LastIndexByte(buf[scan:end], '\n'); i >= 0 {
				l.deliver(s, buf[start:scan+i+1])
				start = scan + i + 1
			}
			if end-start > l.cfg.MaxLineSize {
				l.tooLong.Add(1)
				skipping, start, end = true, 0, 0
			}
		}
		if err != nil {
			if end > start && !skipping && errors.Is(err, io.EOF) {
				l.deliver(s, buf[start:end]) // the last line, unterminated
			}
			return err
		}
	}
}

// deliver hands lines to the slot's function and counts them. A panic in
// the function loses only these lines, counted in Panics, and the
// connection goes on.
func (l *Listener) deliver(s *slot, lines []byte) {
	defer func() {
		if v := recover(); v != nil {
			l.panics.Add(1)
			l.logPanic("tcp: line handler panicked; lines dropped", v, lines)
		}
	}()
	l.batches.Add(1)
	l.bytes.Add(uint64(len(lines)))
	s.fn(lines[:len(lines):len(lines)])
}

// logPanic logs a recovered panic, at most once a second per Listener: a
// client that trips a bug with every line must not flood the log.
func (l *Listener) logPanic(msg string, v any, lines []byte) {
	now := time.Now().UnixNano()
	last := l.lastPanicLog.Load()
	if now-last < int64(time.Second) || !l.lastPanicLog.CompareAndSwap(last, now) {
		return
	}
	attrs := []any{"panic", v, "stack", string(debug.Stack())}
	if lines != nil {
		attrs = append(attrs, "lines", strconv.Quote(string(lines[:min(len(lines), 64)])), "bytes", len(lines))
	}
	l.cfg.Log.Error(msg, attrs...)
}

// Close closes the listener and every connection, which makes Run
// return. It is needed only when Run is never called; it is safe to call
// more than once.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		close(l.closed)
		l.closeErr = l.ln.Close()
		l.mu.Lock()
		l.closing = true
		for i := range l.slots {
			if c := l.slots[i].conn; c != nil {
				c.Close() // its goroutine's Read returns net.ErrClosed
			}
		}
		l.mu.Unlock()
	})
	return l.closeErr
}

// Accepted returns the number of connections accepted and served.
func (l *Listener) Accepted() uint64 { return l.accepted.Load() }

// Refused returns the number of connections closed at once because
// MaxConnections were open.
func (l *Listener) Refused() uint64 { return l.refused.Load() }

// ClosedIdle returns the number of connections closed for sending nothing
// for IdleTimeout.
func (l *Listener) ClosedIdle() uint64 { return l.closedIdle.Load() }

// Active returns the number of connections open now.
func (l *Listener) Active() int64 { return l.active.Load() }

// LinesTooLong returns the number of lines longer than MaxLineSize,
// dropped.
func (l *Listener) LinesTooLong() uint64 { return l.tooLong.Load() }

// Batches returns the number of handler calls; Bytes the bytes they got.
func (l *Listener) Batches() uint64 { return l.batches.Load() }

// Bytes returns the number of bytes handed to the handler.
func (l *Listener) Bytes() uint64 { return l.bytes.Load() }

// Panics returns the number of panics recovered: a handler's (its lines
// dropped) or a connection's (it was closed).
func (l *Listener) Panics() uint64 { return l.panics.Load() }

// AcceptErrors returns the number of accept errors waited out (out of
// file descriptors or memory).
func (l *Listener) AcceptErrors() uint64 { return l.acceptErrors.Load() }
