//go:build linux

package udp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bucky3/bucky3/engine"
)

// Defaults applied by Listen to the zero fields of a Config.
const (
	DefaultBatchSize     = 32
	DefaultMaxPacketSize = 65535
	DefaultReceiveBuffer = 8 << 20
)

// maxBatchSize is the kernel's limit on messages per recvmmsg (UIO_MAXIOV).
// minPacketSize is the smallest MaxPacketSize, here and for the option
// max_packet_size: smaller buffers would truncate ordinary clients' datagrams.
const (
	maxBatchSize  = 1024
	minPacketSize = 512
)

// DefaultSocketMode is the permission of a unix socket's file: the owner
// and its group may send.
const DefaultSocketMode = 0o660

// Config describes a Listener: UDP sockets on Addr, a unix datagram socket
// at Socket, or both. Zero fields take the defaults above (Readers:
// runtime.NumCPU()), except BatchWait.
type Config struct {
	// Addr is host:port, IPv4 or IPv6: "127.0.0.1:8125", "[::1]:0", ":8125".
	// With port 0 the first socket picks a port and the others share it.
	// Empty means no UDP socket.
	Addr string
	// Readers is the number of UDP sockets, each drained by its own
	// goroutine.
	Readers int
	// Socket is the path of a unix datagram socket to bind ("@name" for
	// Linux's abstract namespace, which has no file). A stale socket file
	// there is removed first, and the file again when the Listener closes;
	// a file that is no socket, or a socket some process reads, is an error.
	Socket string
	// SocketMode is the permission of the socket's file; 0 is
	// DefaultSocketMode.
	SocketMode os.FileMode
	// SocketReaders is the number of goroutines reading the unix socket;
	// 0 is 1. There is no SO_REUSEPORT for unix sockets: they share the
	// one socket, each through its own descriptor, and the kernel gives
	// each datagram to one of them. An idle socket wakes them all for the
	// next datagram, so more than one pays only when one cannot keep up.
	SocketReaders int
	// OriginDetection makes the unix socket pass each sender's credentials
	// (SO_PASSCRED), which the readers map to the sender's container id
	// through <ProcRoot>/<pid>/cgroup, and hand to the handler (RunOrigin).
	// The pid is the sender's as this process sees it: a sender in another
	// pid namespace (the agent in a container without the host's) has none.
	OriginDetection bool
	// ProcRoot is where procfs is mounted; "" is /proc.
	ProcRoot string
	// BatchSize is the number of datagrams read by one recvmmsg call.
	BatchSize int
	// MaxPacketSize is the size of each receive buffer, at least 512. A
	// longer datagram is truncated by the kernel, then dropped and counted
	// (Truncated).
	MaxPacketSize int
	// ReceiveBuffer is the requested SO_RCVBUF of each socket, in bytes.
	// The kernel may cap it: see Listener.ReceiveBuffer.
	ReceiveBuffer int
	// BatchWait is how long a reader pauses after a read that drained its
	// socket, so that one wakeup reads all that gathered; nothing wakes the
	// process meanwhile. A pause ends early when the load stops or rises.
	// Zero reads through the runtime poller: a wakeup per burst.
	BatchWait time.Duration
	// Log receives the error of a handler that panicked, at most once a
	// second; nil is slog.Default().
	Log *slog.Logger
	// Gaps, if not nil, receives each reader's gaps between reads: the
	// time from one read that returned datagrams to the next, in seconds
	// (use GapBounds). Time a reader spends waiting on an empty socket is
	// no gap; a BatchWait pause, a slow handler or the reader waiting for
	// a CPU is. A gap longer than the receive buffer takes to fill at the
	// current rate loses datagrams.
	Gaps *engine.Histogram
}

// GapBounds are the bucket bounds for Config.Gaps: 100 µs to 3.3 s,
// doubling.
func GapBounds() []float64 { return engine.ExponentialBounds(100e-6, 2, 16) }

func (c *Config) setDefaults() error {
	if c.Addr == "" && c.Socket == "" {
		return errors.New("udp: neither an address nor a socket to listen on")
	}
	if c.SocketMode == 0 {
		c.SocketMode = DefaultSocketMode
	}
	if c.SocketReaders == 0 {
		c.SocketReaders = 1
	}
	if c.Readers == 0 {
		c.Readers = runtime.NumCPU()
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.MaxPacketSize == 0 {
		c.MaxPacketSize = DefaultMaxPacketSize
	}
	if c.ReceiveBuffer == 0 {
		c.ReceiveBuffer = DefaultReceiveBuffer
	}
	switch {
	case c.Readers < 0:
		return fmt.Errorf("udp: readers %d: must be positive", c.Readers)
	case c.SocketReaders < 0:
		return fmt.Errorf("udp: socket readers %d: must be positive", c.SocketReaders)
	case c.SocketMode&^os.ModePerm != 0:
		return fmt.Errorf("udp: socket_mode %#o: only permission bits", c.SocketMode)
	case c.BatchSize < 0 || c.BatchSize > maxBatchSize:
		return fmt.Errorf("udp: batch_size %d: must be in 1..%d", c.BatchSize, maxBatchSize)
	case c.MaxPacketSize < minPacketSize || c.MaxPacketSize > DefaultMaxPacketSize:
		return fmt.Errorf("udp: max_packet_size %d: must be in %d..%d", c.MaxPacketSize, minPacketSize, DefaultMaxPacketSize)
	case c.ReceiveBuffer < 0:
		return fmt.Errorf("udp: receive_buffer %d: must be positive", c.ReceiveBuffer)
	case c.BatchWait < 0:
		return fmt.Errorf("udp: batch_wait %v: must not be negative", c.BatchWait)
	}
	return nil
}

// Handler is called once per reader, before it starts, with the reader's
// index: [0, Readers) for the UDP sockets, then [Readers, Readers +
// SocketReaders) for the unix socket. The function it returns is called
// for every datagram that reader receives, on the reader's goroutine, so it
// may keep per-reader state (a parser, a scratch buffer) without locking.
//
// packet is valid only during the call, and its capacity is capped at its
// length. A slow function stalls its socket; the kernel then drops what no
// longer fits in a UDP socket's receive buffer (Dropped), or makes the
// senders to a unix socket wait.
type Handler func(reader int) func(packet []byte)

// OriginHandler is Handler for RunOrigin: its function also receives the
// container id of the datagram's sender, "" when there is none (a UDP
// datagram, a sender on the host, or OriginDetection off). containerID is
// shared by the sender's datagrams and may be kept.
type OriginHandler func(reader int) func(packet []byte, containerID string)

// Listener is a set of SO_REUSEPORT UDP sockets bound to one address, a
// unix datagram socket, or both. Its counters are safe for concurrent use.
type Listener struct {
	addr          net.Addr // the first UDP socket's, or the unix socket's
	unixAddr      *net.UnixAddr
	socket        *socketFile // nil without a socket file
	origin        bool
	readers       []*reader
	receiveBuffer int
	running       atomic.Bool
	closed        chan struct{} // closed by Close: ends the readers' pauses
	// wake is an eventfd that Close makes readable, to end the poll of
	// readers blocked on an idle socket; -1 without BatchWait.
	wake      int
	closeOnce sync.Once
	closeErr  error
	panicLog  *panicLog
}

// Listen opens cfg.Readers sockets bound to cfg.Addr with SO_REUSEPORT and
// the unix socket at cfg.Socket, and preallocates each reader's batch
// (BatchSize × MaxPacketSize bytes, whose unwritten pages stay untouched).
// Nothing is read until Run.
func Listen(cfg Config) (*Listener, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	l := &Listener{closed: make(chan struct{}), wake: -1, origin: cfg.OriginDetection, panicLog: &panicLog{log: cfg.Log}}
	if l.panicLog.log == nil {
		l.panicLog.log = slog.Default()
	}
	if cfg.Addr != "" {
		if err := l.listenUDP(&cfg); err != nil {
			l.Close()
			return nil, err
		}
	}
	if cfg.Socket != "" {
		if err := l.listenUnix(&cfg); err != nil {
			l.Close()
			return nil, fmt.Errorf("udp: listen on socket %q: %w", cfg.Socket, err)
		}
	}
	return l, nil
}

func (l *Listener) listenUDP(cfg *Config) error {
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return fmt.Errorf("udp: listen %q: %w", cfg.Addr, err)
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) { serr = setSockopts(int(fd), cfg.ReceiveBuffer) }); err != nil {
			return err
		}
		return serr
	}}
	if cfg.BatchWait > 0 {
		if l.wake, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
			return fmt.Errorf("udp: eventfd: %w", err)
		}
	}
	addr := cfg.Addr
	for i := range cfg.Readers {
		pc, err := lc.ListenPacket(context.Background(), "udp", addr)
		if err != nil {
			return fmt.Errorf("udp: listen %q: %w", addr, err)
		}
		conn := pc.(*net.UDPConn)
		if i == 0 {
			// Bind the other sockets to the port the first one got, keeping
			// the host as written so that ":0" stays dual-stack.
			l.addr = conn.LocalAddr()
			addr = net.JoinHostPort(host, strconv.Itoa(l.addr.(*net.UDPAddr).Port))
		}
		r, err := newReader(conn, cfg, l.closed, l.wake, l.panicLog)
		if err != nil {
			conn.Close()
			return fmt.Errorf("udp: listen %q: %w", addr, err)
		}
		l.readers = append(l.readers, r)
		if l.receiveBuffer == 0 || r.receiveBuffer < l.receiveBuffer {
			l.receiveBuffer = r.receiveBuffer
		}
	}
	return nil
}

// Addr returns the address the UDP sockets are bound to, with the actual
// port; without UDP, the unix socket's.
func (l *Listener) Addr() net.Addr { return l.addr }

// UnixAddr returns the unix socket's address, or nil without one.
func (l *Listener) UnixAddr() *net.UnixAddr { return l.unixAddr }

// ReceiveBuffer returns the effective SO_RCVBUF of the UDP sockets (the
// smallest), as the kernel reports it: twice the request, which is capped
// at net.core.rmem_max unless the process has CAP_NET_ADMIN. Less than
// twice Config.ReceiveBuffer means the kernel capped it: worth a log line.
// It is 0 without UDP: a unix socket's queue is bounded by
// net.unix.max_dgram_qlen datagrams, not by its receive buffer.
func (l *Listener) ReceiveBuffer() int { return l.receiveBuffer }

// Run reads datagrams and hands them to h until ctx is done or the Listener
// is closed, then closes the sockets and returns after every reader
// goroutine has exited. It returns nil on shutdown, or the error that
// stopped a reader (which stops the others too). Run, or RunOrigin, may
// be called once; with OriginDetection, only RunOrigin.
func (l *Listener) Run(ctx context.Context, h Handler) error {
	if l.origin {
		l.Close()
		return errors.New("udp: a Listener with OriginDetection is run by RunOrigin")
	}
	return l.run(ctx, func(i int, _ *reader) (func([]byte), func([]byte, string)) { return h(i), nil })
}

// RunOrigin is Run for a handler that takes each datagram's container id.
// Only the readers of a unix socket with OriginDetection look it up; the
// others pass "" and cost an extra call per datagram, no more.
func (l *Listener) RunOrigin(ctx context.Context, h OriginHandler) error {
	return l.run(ctx, func(i int, r *reader) (func([]byte), func([]byte, string)) {
		fn := h(i)
		if r.origins != nil {
			return nil, fn
		}
		return func(p []byte) { fn(p, "") }, nil
	})
}

// run runs the readers with the functions that handlers gives each: one
// for datagrams alone, or one for datagrams and their origin.
func (l *Listener) run(ctx context.Context, handlers func(int, *reader) (func([]byte), func([]byte, string))) error {
	if !l.running.CompareAndSwap(false, true) {
		return errors.New("udp: Run called twice")
	}
	select {
	case <-l.closed: // Close, seeing no Run, closed the sockets itself
		return nil
	default:
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(ctx, func() { l.Close() })()

	errs := make([]error, len(l.readers))
	var wg sync.WaitGroup
	for i, r := range l.readers {
		fn, originFn := handlers(i, r)
		wg.Go(func() {
			// A panic outside the handler (which deliver recovers) is a bug
			// of the reader: it stops Run with an error, and the module
			// supervisor restarts the module, instead of the process dying.
			defer func() {
				if v := recover(); v != nil {
					errs[i] = fmt.Errorf("udp: reader %d panicked: %v\n%s", i, v, debug.Stack())
					cancel()
				}
			}()
			if errs[i] = r.run(fn, originFn); errs[i] != nil {
				cancel()
			}
		})
	}
	wg.Wait()
	l.Close()
	if l.wake >= 0 {
		errs = append(errs, unix.Close(l.wake))
	}
	return errors.Join(errs...)
}

// Close closes the sockets, which makes Run return, and removes the unix
// socket's file. It is needed only when Run is never called; it is safe
// to call more than once.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		close(l.closed)
		// While Run runs, a polling reader (BatchWait) closes its own
		// socket and Run closes wake; before Run, nobody else would.
		running := l.running.Load()
		for _, r := range l.readers {
			if r.fd < 0 || !running {
				l.closeErr = errors.Join(l.closeErr, r.close())
			}
		}
		if l.wake >= 0 {
			if running {
				var one [8]byte
				binary.NativeEndian.PutUint64(one[:], 1)
				_, err := unix.Write(l.wake, one[:])
				l.closeErr = errors.Join(l.closeErr, err)
			} else {
				l.closeErr = errors.Join(l.closeErr, unix.Close(l.wake))
			}
		}
		if l.socket != nil {
			l.closeErr = errors.Join(l.closeErr, l.socket.remove())
		}
	})
	return l.closeErr
}

// Packets returns the number of datagrams handed to the handler.
func (l *Listener) Packets() uint64 { return l.sum(func(r *reader) uint64 { return r.packets.Load() }) }

// Bytes returns the number of payload bytes handed to the handler.
func (l *Listener) Bytes() uint64 { return l.sum(func(r *reader) uint64 { return r.bytes.Load() }) }

// Truncated returns the number of datagrams longer than MaxPacketSize,
// dropped without calling the handler.
func (l *Listener) Truncated() uint64 {
	return l.sum(func(r *reader) uint64 { return r.truncated.Load() })
}

// Panics returns the number of datagrams whose handler panicked: each was
// dropped, and its reader went on with the next datagram.
func (l *Listener) Panics() uint64 { return l.sum(func(r *reader) uint64 { return r.panics.Load() }) }

// Dropped returns the number of datagrams the kernel dropped because a
// UDP socket's receive buffer was full. A reader reads the kernel's count
// (SO_MEMINFO) when a read drains its socket and every 64 reads of one
// that stays full, so drops show up once the reader has caught up. A unix
// socket drops nothing: when its queue is full (net.unix.max_dgram_qlen
// datagrams), a sender waits, or its send fails with EAGAIN, which only
// the sender can count.
func (l *Listener) Dropped() uint64 { return l.sum(func(r *reader) uint64 { return r.dropped.Load() }) }

// QueuePeak returns the most bytes any UDP socket held queued (what the
// kernel charges against its receive buffer) when its reader looked since
// the previous call, and starts a new period. A reader looks when a read
// drains its socket, every 64 reads of a socket that stays full, during a
// BatchWait pause, and at the first read after a gap over a millisecond.
func (l *Listener) QueuePeak() int {
	peak := 0
	for _, r := range l.readers {
		peak = max(peak, int(r.queuePeak.Swap(0)))
	}
	return peak
}

// OriginLookups returns the number of cgroup files read to find senders'
// containers: the origin caches' misses.
func (l *Listener) OriginLookups() uint64 {
	return l.sum(func(r *reader) uint64 { return r.originLookups.Load() })
}

func (l *Listener) sum(f func(*reader) uint64) uint64 {
	var n uint64
	for _, r := range l.readers {
		n += f(r)
	}
	return n
}

// setSockopts prepares a socket before bind: SO_REUSEPORT so that the
// readers share the address, and the receive buffer — forced past
// rmem_max when the process is allowed to.
func setSockopts(fd, receiveBuffer int) error {
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		return fmt.Errorf("SO_REUSEPORT: %w", err)
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, receiveBuffer) == nil {
		return nil
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, receiveBuffer); err != nil {
		return fmt.Errorf("SO_RCVBUF: %w", err)
	}
	return nil
}
