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
	"github.com/bucky3/bucky3/io/tcp"
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
	// OriginLookups counts the cgroup files read to find senders'
	// containers (origin_detection only; nil otherwise).
	OriginLookups *engine.Counter // origin_lookups
	// ReaderGaps are the times between the readers' reads (see
	// udp.Config.Gaps); QueueBytes is the most any UDP socket held queued
	// when its reader looked during the last publish period (a second).
	ReaderGaps *engine.Histogram // reader_gap_seconds
	QueueBytes *engine.Gauge     // socket_queue_bytes
}

// TCPCounters are the connection counters of a source with local_tcp. A
// batch of lines (one read) counts as one packet in Counters.
type TCPCounters struct {
	Accepted     *engine.Counter // connections_accepted
	Refused      *engine.Counter // connections_refused: max_connections were open
	ClosedIdle   *engine.Counter // connections_closed_idle: silent for idle_timeout
	AcceptErrors *engine.Counter // connections_accept_errors: out of descriptors or memory, waited out
	TooLong      *engine.Counter // lines_dropped_too_long: longer than max_packet_size
	Active       *engine.Gauge   // connections: open now
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
	m engine.Module
	o udp.ServerOptions
	t tcp.ServerOptions // t.LocalTCP is "" without TCP
	c Counters
	// tc is nil without TCP.
	tc *TCPCounters

	// bound is closed when Run first bound its sockets; addrs are the
	// addresses of the latest Run.
	bound     chan struct{}
	boundOnce sync.Once
	addrs     Addrs
	// ready tells the agent the sockets are bound; flush is the flush
	// loop's liveness.
	ready func()
	flush *engine.Beat

	mu        sync.Mutex // guards addrs and the panic log's rate limit
	lastLog   time.Time
	unlogged  int
	logPeriod time.Duration
}

// New returns the Source of module m with socket options o. It registers
// the packet counters, the flush loop's liveness and makes the agent's
// readiness wait for the sockets; it does no I/O. Call it once per module
// (in its constructor), not per Run.
func New(m engine.Module, o udp.ServerOptions) *Source {
	s := &Source{
		m:     m,
		o:     o,
		bound: make(chan struct{}),
		c: Counters{
			Packets:  m.Stats.Counter("packets_received"),
			Dropped:  m.Stats.Counter("packets_dropped"),
			TooLarge: m.Stats.Counter("packets_dropped_too_large"),
			Corrupt:  m.Stats.Counter("packets_dropped_corrupt"),
			Panic:    m.Stats.Counter("packets_dropped_panic"),
			Kernel:   m.Stats.Counter("packets_dropped_kernel"),
			Panics:   m.Stats.Counter("panics"),

			ReaderGaps: m.Stats.Histogram("reader_gap_seconds", udp.GapBounds()),
			QueueBytes: m.Stats.Gauge("socket_queue_bytes"),
		},
		ready:     m.AwaitReady(),
		flush:     m.Beat("flush"),
		logPeriod: engine.LossWarnInterval,
	}
	if o.OriginDetection {
		s.c.OriginLookups = m.Stats.Counter("origin_lookups")
	}
	return s
}

// WithTCP makes s listen on t.LocalTCP too, if not empty, and registers
// the connection counters. Call it in the module's constructor, before
// Run; max_packet_size is the longest line.
func (s *Source) WithTCP(t tcp.ServerOptions) *Source {
	if t.LocalTCP == "" {
		return s
	}
	s.t = t
	st := s.m.Stats
	s.tc = &TCPCounters{
		Accepted:     st.Counter("connections_accepted"),
		Refused:      st.Counter("connections_refused"),
		ClosedIdle:   st.Counter("connections_closed_idle"),
		AcceptErrors: st.Counter("connections_accept_errors"),
		TooLong:      st.Counter("lines_dropped_too_long"),
		Active:       st.Gauge("connections"),
	}
	return s
}

// Counters returns the packet counters.
func (s *Source) Counters() *Counters { return &s.c }

// Addrs are the addresses a Source listens on, "" for none.
type Addrs struct {
	UDP, Unix, TCP string
}

// Addrs waits for Run to bind and returns the bound addresses, with the
// actual ports, for tests that listen on port 0.
func (s *Source) Addrs(ctx context.Context) (Addrs, error) {
	select {
	case <-s.bound:
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.addrs, nil
	case <-ctx.Done():
		return Addrs{}, ctx.Err()
	}
}

// Addr waits for Run to bind and returns the UDP address, or the unix
// socket's without UDP.
func (s *Source) Addr(ctx context.Context) (string, error) {
	a, err := s.Addrs(ctx)
	if a.UDP != "" {
		return a.UDP, err
	}
	return a.Unix, err
}

// Loop is what a module does around the reads.
type Loop struct {
	// Handler gives each reader its function for datagrams (see
	// udp.Handler); it typically starts with a Decoder.
	Handler udp.Handler
	// OriginHandler replaces Handler when origin_detection is on: its
	// function also gets the sender's container id (udp.OriginHandler).
	OriginHandler udp.OriginHandler
	// TCPHandler gives each TCP connection slot its function for lines
	// (tcp.Handler); needed with local_tcp.
	TCPHandler tcp.Handler
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
// flushes once more and returns the listeners' error (nil on a clean
// shutdown). If a listener stops on its own, Run stops the other, flushes
// and returns its error.
func (s *Source) Run(ctx context.Context, l Loop) error {
	if s.o.OriginDetection && l.OriginHandler == nil {
		return errors.New("origin_detection: the module has no origin handler")
	}
	if s.tc != nil && l.TCPHandler == nil {
		return errors.New("local_tcp: the module has no line handler")
	}
	cfg := s.o.Config()
	cfg.Log = s.m.Log // a handler's panic is logged as the module's
	cfg.Gaps = s.c.ReaderGaps
	ln, err := udp.Listen(cfg)
	if err != nil {
		return err
	}
	var tln *tcp.Listener
	if s.tc != nil {
		tcfg := s.t.Config(s.o.MaxPacketSize)
		tcfg.Log = s.m.Log
		if tln, err = tcp.Listen(tcfg); err != nil {
			ln.Close()
			return err
		}
	}
	s.logListening(ln, tln)
	s.ready() // every socket is bound: each Listen binds all of its own

	// The readers get their own context, so that a cancelled ctx stops
	// them only here, before the last flush.
	readCtx, stopReading := context.WithCancel(context.Background())
	defer stopReading()
	done := make(chan error, 2)
	running := 1
	// Each listener recovers its readers' panics; one of its own ends Run
	// with an error, and the supervisor restarts the module.
	go s.runListener(done, ln.Close, func() error {
		if s.o.OriginDetection {
			return ln.RunOrigin(readCtx, l.OriginHandler)
		}
		return ln.Run(readCtx, l.Handler)
	})
	if tln != nil {
		running++
		go s.runListener(done, tln.Close, func() error { return tln.Run(readCtx, l.TCPHandler) })
	}
	// stop stops the listeners still running, waits for them and returns
	// err, or else their first error.
	stop := func(err error) error {
		stopReading()
		for ; running > 0; running-- {
			if e := <-done; err == nil {
				err = e
			}
		}
		return err
	}

	var last drops
	var lastTCP tcpCounts
	publish := func() {
		s.guard("publish", func() {
			last.publish(ln, &s.c)
			if tln != nil {
				lastTCP.publish(tln, &s.c, s.tc)
			}
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
			err := stop(nil)
			publish()
			flush()
			return err
		case err := <-done:
			running--
			if err == nil {
				err = errors.New("listener stopped")
			}
			err = stop(err)
			publish()
			flush()
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

// runListener sends run's error to done, or an error for its panic after
// closing the listener.
func (s *Source) runListener(done chan<- error, closeListener func() error, run func() error) {
	defer func() {
		if v := recover(); v != nil {
			s.recovered("listener", v)
			err := fmt.Errorf("listener panicked: %v", v)
			if cerr := closeListener(); cerr != nil {
				err = fmt.Errorf("%w; closing it: %v", err, cerr)
			}
			done <- err
		}
	}()
	done <- run()
}

// logListening logs where Run listens, warns about a capped receive
// buffer and records the addresses for Addrs.
func (s *Source) logListening(ln *udp.Listener, tln *tcp.Listener) {
	var a Addrs
	attrs := []any{}
	if s.o.LocalHost != "" {
		a.UDP = ln.Addr().String()
		attrs = append(attrs, "addr", a.UDP, "readers", Readers(s.o.Readers), "receive_buffer", ln.ReceiveBuffer())
		if got := ln.ReceiveBuffer(); got < s.o.ReceiveBuffer {
			s.m.Log.Warn("kernel capped the receive buffer; raise it with sysctl net.core.rmem_max (the package ships /usr/lib/sysctl.d/60-bucky3.conf)",
				"requested", s.o.ReceiveBuffer, "effective", got, "sysctl", fmt.Sprintf("net.core.rmem_max=%d", s.o.ReceiveBuffer))
		}
	}
	if ua := ln.UnixAddr(); ua != nil {
		a.Unix = ua.Name
		attrs = append(attrs, "socket", a.Unix, "origin_detection", s.o.OriginDetection)
	}
	if tln != nil {
		a.TCP = tln.Addr().String()
		attrs = append(attrs, "tcp", a.TCP, "max_connections", s.t.MaxConnections)
	}
	s.m.Log.Info("listening", attrs...)
	s.mu.Lock()
	s.addrs = a
	s.mu.Unlock()
	s.boundOnce.Do(func() { close(s.bound) })
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
	kernel, truncated, panics, lookups uint64
}

func (d *drops) publish(ln *udp.Listener, c *Counters) {
	kernel, truncated, panics := ln.Dropped(), ln.Truncated(), ln.Panics()
	if c.OriginLookups != nil {
		lookups := ln.OriginLookups()
		c.OriginLookups.Add(lookups - d.lookups)
		d.lookups = lookups
	}
	c.Kernel.Add(kernel - d.kernel)
	c.QueueBytes.Set(int64(ln.QueuePeak()))
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

// tcpCounts are the TCP listener's counts already published, as drops
// are the UDP listener's.
type tcpCounts struct {
	accepted, refused, idle, acceptErrors, tooLong, panics uint64
}

func (p *tcpCounts) publish(ln *tcp.Listener, c *Counters, tc *TCPCounters) {
	add := func(last *uint64, now uint64, to ...*engine.Counter) {
		if d := now - *last; d > 0 {
			for _, c := range to {
				c.Add(d)
			}
		}
		*last = now
	}
	add(&p.accepted, ln.Accepted(), tc.Accepted)
	add(&p.refused, ln.Refused(), tc.Refused)
	add(&p.idle, ln.ClosedIdle(), tc.ClosedIdle)
	add(&p.acceptErrors, ln.AcceptErrors(), tc.AcceptErrors)
	add(&p.tooLong, ln.LinesTooLong(), tc.TooLong)
	// A handler's panic loses its batch, a packet; a connection's (rarer,
	// outside the handler) loses what the connection had not delivered.
	add(&p.panics, ln.Panics(), c.Panic, c.Dropped, c.Panics)
	tc.Active.Set(ln.Active())
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

// NewLineDecoder returns a Decoder for one TCP connection slot: it counts
// each batch of lines as a packet and never inflates (a stream carries
// plain lines).
func (s *Source) NewLineDecoder() Decoder {
	return Decoder{c: &s.c}
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
