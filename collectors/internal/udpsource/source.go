package udpsource

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
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
	Panic    *engine.Counter // packets_dropped_panic: the handler panicked on it
	Kernel   *engine.Counter // packets_dropped_kernel: the socket buffer overflowed
	// Panics counts every panic recovered in the module's loops: a
	// handler's (one datagram lost), a flush's, a publish's.
	Panics *engine.Counter // panics
}

// ValidateOptions checks o: io/udp's checks, then batch_wait by the rule
// of every time option (engine.CheckSeconds) unless it is 0, which turns
// the pause off.
func ValidateOptions(o *udp.ServerOptions) error {
	if err := o.Validate(); err != nil {
		return err
	}
	if o.BatchWait != 0 {
		return engine.CheckSeconds("batch_wait", o.BatchWait, 0)
	}
	return nil
}

// Source is the listening part of one UDP source module. Its methods are
// safe for concurrent use; Run may be called again after it returned (the
// supervisor restarts a module that failed).
type Source struct {
	m    engine.Module
	o    udp.ServerOptions
	addr chan string
	c    Counters
	// ready tells the agent the sockets are bound; flush is the flush
	// loop's liveness.
	ready func()
	flush *engine.Beat

	mu        sync.Mutex // guards the panic log's rate limit
	lastLog   time.Time
	unlogged  int
	logPeriod time.Duration
}

// New returns the Source of module m with socket options o. It registers
// the packet counters, the flush loop's liveness and makes the agent's
// readiness wait for the sockets; it does no I/O. Call it once per module
// (in its constructor), not per Run.
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
			Panic:    m.Stats.Counter("packets_dropped_panic"),
			Kernel:   m.Stats.Counter("packets_dropped_kernel"),
			Panics:   m.Stats.Counter("panics"),
		},
		ready:     m.AwaitReady(),
		flush:     m.Beat("flush"),
		logPeriod: engine.LossWarnInterval,
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
	// and once more after the readers have stopped. A panic in it is
	// recovered and counted, and the next flush comes as usual.
	Flush func()
	// Publish, if not nil, moves the module's own counts into its
	// counters: every second and before each flush. Panics are recovered
	// as Flush's are.
	Publish func()
}

// Run listens and reads until ctx is cancelled, then stops the readers,
// flushes once more and returns the listener's error (nil on a clean
// shutdown). If the listener stops on its own, Run flushes and returns
// its error.
func (s *Source) Run(ctx context.Context, l Loop) error {
	cfg := s.o.Config()
	cfg.Log = s.m.Log // a handler's panic is logged as the module's
	ln, err := udp.Listen(cfg)
	if err != nil {
		return err
	}
	if got := ln.ReceiveBuffer(); got < s.o.ReceiveBuffer {
		s.m.Log.Warn("kernel capped the receive buffer; raise it with sysctl net.core.rmem_max (the package ships /usr/lib/sysctl.d/60-bucky3.conf)",
			"requested", s.o.ReceiveBuffer, "effective", got, "sysctl", fmt.Sprintf("net.core.rmem_max=%d", s.o.ReceiveBuffer))
	}
	s.m.Log.Info("listening", "addr", ln.Addr().String(), "readers", Readers(s.o.Readers), "receive_buffer", ln.ReceiveBuffer())
	s.ready() // every socket is bound: Listen binds them all
	select {
	case s.addr <- ln.Addr().String():
	default:
	}

	// The readers get their own context, so that a cancelled ctx stops
	// them only here, before the last flush.
	readCtx, stopReading := context.WithCancel(context.Background())
	defer stopReading()
	done := make(chan error, 1)
	go func() {
		// ln.Run recovers its readers' panics; one of its own ends Run
		// with an error, and the supervisor restarts the module.
		defer func() {
			if v := recover(); v != nil {
				s.recovered("listener", v)
				ln.Close()
				done <- fmt.Errorf("listener panicked: %v", v)
			}
		}()
		done <- ln.Run(readCtx, l.Handler)
	}()

	var last drops
	publish := func() {
		s.guard("publish", func() {
			last.publish(ln, &s.c)
			if l.Publish != nil {
				l.Publish()
			}
		})
	}
	flush := func() {
		s.flush.Begin()
		defer s.flush.End()
		s.guard("flush", l.Flush)
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
			flush()
			return err
		case err := <-done:
			publish()
			flush()
			if err == nil {
				err = errors.New("listener stopped")
			}
			return err
		case <-tick.C:
			publish()
		case <-next.C:
			publish()
			flush()
			next.Reset(l.FlushEvery)
		}
	}
}

// guard runs f and recovers its panic, counted and logged (see
// recovered), so that the loop calling it goes on.
func (s *Source) guard(where string, f func()) {
	defer func() {
		if v := recover(); v != nil {
			s.recovered(where, v)
		}
	}()
	f()
}

// recovered counts a recovered panic and logs it with its stack, at most
// once per logPeriod: a panic that repeats every flush must not flood the
// log. The count says how many went unlogged since.
func (s *Source) recovered(where string, v any) {
	s.c.Panics.Inc()
	s.mu.Lock()
	now := time.Now()
	if !s.lastLog.IsZero() && now.Sub(s.lastLog) < s.logPeriod {
		s.unlogged++
		s.mu.Unlock()
		return
	}
	unlogged := s.unlogged
	s.lastLog, s.unlogged = now, 0
	s.mu.Unlock()
	s.m.Log.Error("panic recovered, going on", "in", where, "panic", fmt.Sprint(v),
		"unlogged_before", unlogged, "stack", string(debug.Stack()))
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
	kernel, truncated, panics uint64
}

func (d *drops) publish(ln *udp.Listener, c *Counters) {
	kernel, truncated, panics := ln.Dropped(), ln.Truncated(), ln.Panics()
	c.Kernel.Add(kernel - d.kernel)
	if n := truncated - d.truncated; n > 0 {
		c.TooLarge.Add(n)
		c.Dropped.Add(n)
	}
	if n := panics - d.panics; n > 0 {
		c.Panic.Add(n)
		c.Dropped.Add(n)
		c.Panics.Add(n)
	}
	d.kernel, d.truncated, d.panics = kernel, truncated, panics
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
