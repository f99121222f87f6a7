package udpsource

import (
	"context"
	"errors"
	"runtime"
	"time"

	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/io/udp"
)

// Counters are the packet counters of a UDP source's self report.
type Counters struct {
	Packets  *engine.Counter // packets_received
	Dropped  *engine.Counter // packets_dropped: too large or corrupt
	TooLarge *engine.Counter // packets_dropped_too_large
	Corrupt  *engine.Counter // packets_dropped_corrupt
	Kernel   *engine.Counter // packets_dropped_kernel: the socket buffer overflowed
}

// Source is the listening part of one UDP source module. Its methods are
// safe for concurrent use; Run may be called again after it returned (the
// supervisor restarts a module that failed).
type Source struct {
	m    engine.Module
	o    udp.ServerOptions
	addr chan string
	c    Counters
}

// New returns the Source of module m with socket options o. It registers
// the packet counters and does no I/O.
func New(m engine.Module, o udp.ServerOptions) *Source {
	return &Source{
		m:    m,
		o:    o,
		addr: make(chan string, 1),
		c: Counters{
			Packets:  m.Stats.Counter("packets_received"),
			Dropped:  m.Stats.Counter("packets_dropped"),
			TooLarge: m.Stats.Counter("packets_dropped_too_large"),
			Corrupt:  m.Stats.Counter("packets_dropped_corrupt"),
			Kernel:   m.Stats.Counter("packets_dropped_kernel"),
		},
	}
}

// Counters returns the packet counters.
func (s *Source) Counters() *Counters { return &s.c }

// Addr waits for Run to bind and returns the bound address, for tests that
// listen on port 0.
func (s *Source) Addr(ctx context.Context) (string, error) {
	select {
	case a := <-s.addr:
		return a, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// Loop is what a module does around the reads.
type Loop struct {
	// Handler gives each reader its function for datagrams (see
	// udp.Handler); it typically starts with a Decoder.
	Handler udp.Handler
	// FirstFlush is when the first flush comes, FlushEvery the time
	// between the others.
	FirstFlush, FlushEvery time.Duration
	// Flush emits what the module holds. Run calls it at each flush time
	// and once more after the readers have stopped.
	Flush func()
	// Publish, if not nil, moves the module's own counts into its
	// counters: every second and before each flush.
	Publish func()
}

// Run listens and reads until ctx is cancelled, then stops the readers,
// flushes once more and returns the listener's error (nil on a clean
// shutdown). If the listener stops on its own, Run flushes and returns
// its error.
func (s *Source) Run(ctx context.Context, l Loop) error {
	ln, err := udp.Listen(s.o.Config())
	if err != nil {
		return err
	}
	if got := ln.ReceiveBuffer(); got < s.o.ReceiveBuffer {
		s.m.Log.Warn("kernel capped the receive buffer; raise net.core.rmem_max or run with CAP_NET_ADMIN",
			"requested", s.o.ReceiveBuffer, "effective", got)
	}
	s.m.Log.Info("listening", "addr", ln.Addr().String(), "readers", Readers(s.o.Readers), "receive_buffer", ln.ReceiveBuffer())
	select {
	case s.addr <- ln.Addr().String():
	default:
	}

	// The readers get their own context, so that a cancelled ctx stops
	// them only here, before the last flush.
	readCtx, stopReading := context.WithCancel(context.Background())
	defer stopReading()
	done := make(chan error, 1)
	go func() { done <- ln.Run(readCtx, l.Handler) }()

	var last drops
	publish := func() {
		last.publish(ln, &s.c)
		if l.Publish != nil {
			l.Publish()
		}
	}
	next := time.NewTimer(l.FirstFlush)
	defer next.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			stopReading()
			err := <-done
			publish()
			l.Flush()
			return err
		case err := <-done:
			publish()
			l.Flush()
			if err == nil {
				err = errors.New("listener stopped")
			}
			return err
		case <-tick.C:
			publish()
		case <-next.C:
			publish()
			l.Flush()
			next.Reset(l.FlushEvery)
		}
	}
}

// Readers returns the number of readers of the readers option: n, or one
// per CPU for 0.
func Readers(n int) int {
	if n == 0 {
		return runtime.NumCPU()
	}
	return n
}

// drops are the listener's counts already published: they are added as
// deltas, so the report stays cumulative across restarts of the module.
type drops struct {
	kernel, truncated uint64
}

func (d *drops) publish(ln *udp.Listener, c *Counters) {
	kernel, truncated := ln.Dropped(), ln.Truncated()
	c.Kernel.Add(kernel - d.kernel)
	if n := truncated - d.truncated; n > 0 {
		c.TooLarge.Add(n)
		c.Dropped.Add(n)
	}
	d.kernel, d.truncated = kernel, truncated
}

// Decoder counts the datagrams of one reader and inflates them when
// try_decompress is on. It must not be shared between goroutines.
type Decoder struct {
	c        *Counters
	inflate  bool
	inflater udp.Inflater
}

// NewDecoder returns a Decoder for one reader.
func (s *Source) NewDecoder() Decoder {
	return Decoder{c: &s.c, inflate: s.o.TryDecompress, inflater: udp.Inflater{MaxBytes: s.o.MaxDecompressedBytes}}
}

// Decode counts packet and returns its content: packet itself, or what it
// inflates to, valid until the next Decode. ok is false when the datagram
// is dropped, counted as too large or corrupt. It is called once per
// datagram, not per line, so it need not inline.
func (d *Decoder) Decode(packet []byte) (content []byte, ok bool) {
	d.c.Packets.Inc()
	if !d.inflate {
		return packet, true
	}
	out, _, err := d.inflater.Inflate(packet)
	if err != nil {
		d.c.Dropped.Inc()
		if errors.Is(err, udp.ErrTooLarge) {
			d.c.TooLarge.Inc()
		} else {
			d.c.Corrupt.Inc()
		}
		return nil, false
	}
	return out, true
}
