package udp

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/bucky3/bucky3/engine"
)

// This file holds the package's only use of unsafe: recv, recvUnix and
// meminfo pass addresses to raw syscalls, each converted to uintptr in the
// call's argument list, which keeps its referent alive and in place for
// the call (unsafe.Pointer rule 4). msgs reaches its iovecs, buffers and
// control buffers through typed pointers, which the garbage collector sees.

// reader drains one socket. Its batch is preallocated: msgs[i] points at
// buf[i*size:(i+1)*size], and recvmmsg fills as many as are queued.
type reader struct {
	// Without BatchWait the reader reads conn through the runtime poller
	// (rc); with it, fd, a duplicate of the socket the poller does not watch.
	conn socket
	rc   syscall.RawConn
	fd   int // -1 without BatchWait
	size int
	buf  []byte
	msgs []unix.Mmsghdr

	// A unix socket's reader with origin detection: msgs[i]'s control
	// data goes to ctrl[i*credSpace:], whose pids origins resolves.
	ctrl    []byte
	origins *origins

	// readCost is what the kernel charged for the datagrams read since
	// drainedAt (the previous wait), which gives the rate; woke is set
	// when the last wait was on an idle socket (a poll of pollFds).
	wait      time.Duration
	timer     *time.Timer
	closed    <-chan struct{}
	readCost  int
	drainedAt time.Time
	sinceWait int
	woke      bool
	pollFds   [2]unix.PollFd
	closeOnce sync.Once
	closeErr  error

	// recvFn is recv bound once, so that RawConn.Read does not allocate.
	recvFn func(fd uintptr) bool
	n      int
	errno  syscall.Errno

	receiveBuffer int
	// lastDrops is the kernel's drop count as last read (sample).
	lastDrops      uint32
	readsUnsampled int

	// gaps receives the time between reads that returned datagrams (nil:
	// not measured); lastRead is when the last one did, zero after a read
	// found the socket empty, as waiting on an idle socket is no gap.
	// queuePeak is the largest queue sample seen since Listener.QueuePeak.
	gaps      *engine.Histogram
	lastRead  time.Time
	queuePeak atomic.Int64

	packets, bytes, truncated, dropped, panics, originLookups atomic.Uint64
	panicLog                                                  *panicLog
}

// socket is what a reader needs of its *net.UDPConn or *net.UnixConn.
type socket interface {
	SyscallConn() (syscall.RawConn, error)
	Close() error
}

func newReader(conn socket, cfg *Config, closed <-chan struct{}, wake int, pl *panicLog) (*reader, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	_, isUnix := conn.(*net.UnixConn)
	batch, size := cfg.BatchSize, cfg.MaxPacketSize
	r := &reader{
		conn:     conn,
		rc:       rc,
		fd:       -1,
		size:     size,
		buf:      make([]byte, batch*size),
		msgs:     make([]unix.Mmsghdr, batch),
		wait:     cfg.BatchWait,
		closed:   closed,
		panicLog: pl,
		gaps:     cfg.Gaps,
	}
	if r.wait > 0 {
		r.timer = time.NewTimer(r.wait)
		r.timer.Stop()
	}
	iovs := make([]unix.Iovec, batch)
	for i := range r.msgs {
		iovs[i].Base = &r.buf[i*size]
		iovs[i].SetLen(size)
		r.msgs[i].Hdr.Iov = &iovs[i]
		r.msgs[i].Hdr.SetIovlen(1)
	}
	r.recvFn = r.recv
	if isUnix {
		r.recvFn = r.recvUnix
		if cfg.OriginDetection {
			r.ctrl = make([]byte, batch*credSpace)
			for i := range r.msgs {
				r.msgs[i].Hdr.Control = &r.ctrl[i*credSpace]
			}
			r.origins = newOrigins(cfg.ProcRoot)
		}
		return r, nil
	}
	var serr error
	var drops bool
	err = rc.Control(func(fd uintptr) {
		r.receiveBuffer, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
		_, r.lastDrops, drops = meminfo(fd)
	})
	if err = errors.Join(err, serr); err != nil {
		return nil, fmt.Errorf("SO_RCVBUF: %w", err)
	}
	if !drops {
		return nil, errors.New("SO_MEMINFO: the kernel does not report the socket's drop count (SK_MEMINFO_DROPS)")
	}
	if r.wait > 0 {
		// The poller's epoll set would wake the process for every datagram
		// during a pause: keep a duplicate that was never in it.
		var derr error
		if err := rc.Control(func(fd uintptr) { r.fd, derr = unix.Dup(int(fd)) }); err != nil {
			return nil, err
		}
		if derr != nil {
			return nil, fmt.Errorf("dup: %w", derr)
		}
		if err := conn.Close(); err != nil {
			unix.Close(r.fd)
			return nil, err
		}
		r.pollFds = [2]unix.PollFd{{Fd: int32(r.fd), Events: unix.POLLIN}, {Fd: int32(wake), Events: unix.POLLIN}}
	}
	return r, nil
}

// recv is the RawConn.Read callback: one non-blocking recvmmsg. It returns
// false when nothing is queued, so that the runtime poller parks the
// goroutine until the socket is readable (or closed, which is how Run stops).
// The call is raw, as it never blocks: one the scheduler sees wakes its
// sysmon thread after every idle spell (bench/RESULTS.md, "Hot path" 7).
// Drops are sampled, not read per datagram (Round 6).
func (r *reader) recv(fd uintptr) bool {
	now, long := r.clock()
	if long {
		// What gathered during the gap, before this read takes some.
		r.sample(fd)
	}
	n, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, fd,
		uintptr(unsafe.Pointer(&r.msgs[0])), uintptr(len(r.msgs)), unix.MSG_DONTWAIT, 0, 0)
	if errno == 0 {
		r.readsUnsampled++
		r.gap(now)
	}
	drained := errno == unix.EAGAIN || errno == 0 && int(n) < len(r.msgs)
	if r.readsUnsampled > 0 && drained || r.readsUnsampled >= sampleEvery {
		r.sample(fd)
	}
	if errno == unix.EAGAIN {
		r.lastRead = time.Time{}
		return false
	}
	r.n, r.errno = int(n), errno
	if errno != 0 {
		r.n = 0
	}
	return true
}

// recvUnix is recv for a unix socket, which has no drop count to sample.
// With origin detection, each message's control buffer is reset first:
// the kernel writes back the length it used.
func (r *reader) recvUnix(fd uintptr) bool {
	if r.ctrl != nil {
		for i := range r.msgs {
			r.msgs[i].Hdr.SetControllen(credSpace)
		}
	}
	now, _ := r.clock()
	n, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, fd,
		uintptr(unsafe.Pointer(&r.msgs[0])), uintptr(len(r.msgs)), unix.MSG_DONTWAIT, 0, 0)
	if errno == unix.EAGAIN {
		r.lastRead = time.Time{}
		return false
	}
	if errno == 0 {
		r.gap(now)
	}
	r.n, r.errno = int(n), errno
	if errno != 0 {
		r.n = 0
	}
	return true
}

// clock reads the time before a read, once per batch, when gaps are
// measured; long reports a gap over longGap since the last read that
// returned datagrams, after which the socket's fill is worth a look.
func (r *reader) clock() (now time.Time, long bool) {
	if r.gaps == nil {
		return now, false
	}
	now = time.Now()
	return now, !r.lastRead.IsZero() && now.Sub(r.lastRead) > longGap
}

// gap records the time since the previous read that returned datagrams,
// at a read (begun at now) that returned some.
func (r *reader) gap(now time.Time) {
	if r.gaps == nil {
		return
	}
	if !r.lastRead.IsZero() {
		r.gaps.Observe(now.Sub(r.lastRead).Seconds())
	}
	r.lastRead = now
}

// longGap: a read after a gap this long samples the socket's queue first.
const longGap = time.Millisecond

// sampleEvery bounds the reads between two readings of the drop count on
// a socket that never drains.
const sampleEvery = 64

// run reads batches and calls h for each datagram, or originH with its
// container id when it is set, until the socket is closed; with BatchWait,
// it waits (waitMore) after a read that drained it.
func (r *reader) run(h func(packet []byte), originH func(packet []byte, containerID string)) error {
	if r.fd >= 0 {
		defer r.close()
		r.drainedAt = time.Now()
	}
	for {
		if r.fd >= 0 {
			select {
			case <-r.closed:
				r.drain(h)
				return nil
			default:
			}
			if !r.recv(uintptr(r.fd)) {
				r.n, r.errno = 0, 0
			}
		} else if err := r.rc.Read(r.recvFn); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("udp: recvmmsg: %w", err)
		}
		switch r.errno {
		case 0:
		case unix.EINTR, unix.ENOMEM, unix.ENOBUFS:
			continue // transient: the datagrams stay queued
		default:
			return fmt.Errorf("udp: recvmmsg: %w", r.errno)
		}
		if originH != nil {
			r.deliverOrigin(originH)
		} else {
			r.deliver(h)
		}
		r.sinceWait += r.n
		if r.wait > 0 && r.n < len(r.msgs) {
			if err := r.waitMore(); err != nil {
				return err
			}
			r.sinceWait = 0
		}
	}
}

// deliver hands the r.n datagrams of the last read to h and counts them.
// A panic in h loses only the datagram in flight, counted in panics, and
// delivery goes on with the next one.
func (r *reader) deliver(h func(packet []byte)) {
	for i := 0; i < r.n; {
		i = r.deliverFrom(h, i)
	}
}

// deliverFrom delivers the datagrams of the last read from i on and
// returns r.n, or after a panic in h the index after the datagram that
// caused it. The recovery is deferred once per batch, not per datagram,
// so the loop costs what it did without it.
func (r *reader) deliverFrom(h func(packet []byte), i int) (next int) {
	var packets, bytes, truncated uint64
	defer func() {
		r.packets.Add(packets)
		r.bytes.Add(bytes)
		if truncated > 0 {
			r.truncated.Add(truncated)
		}
		if v := recover(); v != nil {
			r.recovered(i, v)
			next = i + 1
		}
	}()
	for ; i < r.n; i++ {
		m := &r.msgs[i]
		r.readCost += 2*int(m.Len) + queuedOverhead
		if m.Hdr.Flags&unix.MSG_TRUNC != 0 {
			truncated++
			continue
		}
		off, end := i*r.size, i*r.size+int(m.Len)
		// Counted before h runs: a datagram whose handler panicked was
		// handed over too.
		packets++
		bytes += uint64(m.Len)
		h(r.buf[off:end:end])
	}
	return r.n
}

// deliverOrigin is deliver for a reader with origin detection: h also
// gets the container id of each datagram's sender.
func (r *reader) deliverOrigin(h func(packet []byte, containerID string)) {
	now := int64(time.Since(r.origins.epoch)) // one clock read per batch
	for i := 0; i < r.n; {
		i = r.deliverOriginFrom(h, i, now)
	}
}

// deliverOriginFrom is deliverFrom with origins, for a unix socket.
func (r *reader) deliverOriginFrom(h func(packet []byte, containerID string), i int, now int64) (next int) {
	var packets, bytes, truncated uint64
	lookups := r.origins.lookups
	defer func() {
		r.packets.Add(packets)
		r.bytes.Add(bytes)
		if truncated > 0 {
			r.truncated.Add(truncated)
		}
		if n := r.origins.lookups - lookups; n > 0 {
			r.originLookups.Add(n)
		}
		if v := recover(); v != nil {
			r.recovered(i, v)
			next = i + 1
		}
	}()
	for ; i < r.n; i++ {
		m := &r.msgs[i]
		if m.Hdr.Flags&unix.MSG_TRUNC != 0 {
			truncated++
			continue
		}
		ctrl := r.ctrl[i*credSpace : i*credSpace+min(int(m.Hdr.Controllen), credSpace)]
		id := r.origins.lookup(credPID(ctrl), now)
		off, end := i*r.size, i*r.size+int(m.Len)
		packets++
		bytes += uint64(m.Len)
		h(r.buf[off:end:end], id)
	}
	return r.n
}

// recovered counts the datagram i of the last read, whose handler panicked
// with v, and logs it, at most once a second per Listener: a sender that
// trips a bug with every datagram must not flood the log.
func (r *reader) recovered(i int, v any) {
	r.panics.Add(1)
	now := time.Now().UnixNano()
	last := r.panicLog.last.Load()
	if now-last < int64(panicLogEvery) || !r.panicLog.last.CompareAndSwap(last, now) {
		return
	}
	p := r.buf[i*r.size : i*r.size+int(r.msgs[i].Len)]
	r.panicLog.log.Error("udp: datagram handler panicked; datagram dropped",
		"panic", v, "datagram", strconv.Quote(string(p[:min(len(p), panicQuoteBytes)])), "bytes", len(p),
		"stack", string(debug.Stack()))
}

// panicLogEvery is the shortest time between two panic logs of one
// Listener; panicQuoteBytes is how much of the datagram they quote.
const (
	panicLogEvery   = time.Second
	panicQuoteBytes = 64
)

// panicLog is where a Listener's readers log a handler's panic.
type panicLog struct {
	log  *slog.Logger
	last atomic.Int64 // time of the last log, in Unix nanoseconds
}

// drain reads what a pause left queued when the Listener closes, which
// closing the socket would lose; no more than the receive buffer holds, so
// that a flood cannot hold shutdown up.
func (r *reader) drain(h func(packet []byte)) {
	for left := r.receiveBuffer / queuedOverhead; left > 0; left -= r.n {
		if !r.recv(uintptr(r.fd)) || r.errno != 0 {
			return
		}
		r.deliver(h)
		if r.n < len(r.msgs) {
			return
		}
	}
}

// waitMore waits after a read that drained the socket: a pause of up to
// r.wait, or until the socket is readable when it is idle.
//
// What arrives during a pause must fit in the receive buffer, so a pause
// runs in steps, each as long as 1/pauseShare of the room left takes to
// fill at the last rate seen (read before the pause, then the queue's);
// a load rising pauseShare-fold within a step still fits. The pause ends
// when the queue is empty (the load stopped) or holds over 1/queueShare of
// the buffer. After an idle spell the old rate says nothing, so the pause
// is one step of at most firstPause, whose rate sizes the next.
func (r *reader) waitMore() error {
	now := time.Now()
	idle := r.sinceWait == 0
	step := r.wait
	if r.woke {
		step = min(step, firstPause)
	} else if fill := time.Duration(float64(now.Sub(r.drainedAt)) * float64(r.receiveBuffer/pauseShare) / float64(max(r.readCost, 1))); fill < step {
		step = fill
	}
	afterIdle := r.woke
	r.woke, r.readCost, r.drainedAt = idle, 0, now
	if idle {
		return r.poll()
	}
	for {
		if !r.pause(step) || afterIdle {
			return nil
		}
		// The queue gives the rate since the pause began, in the kernel's
		// own units; nothing queued means the load has stopped.
		queued, ok := r.sample(uintptr(r.fd))
		elapsed := time.Since(now)
		left := r.wait - elapsed
		if !ok || queued == 0 || queued > r.receiveBuffer/queueShare || left <= 0 {
			return nil
		}
		room := r.receiveBuffer - queued
		step = min(left, time.Duration(float64(elapsed)*float64(room/pauseShare)/float64(queued)))
	}
}

// sample reads the socket's memory counters: it adds the drops since the
// last sample to Dropped, and returns what the queued datagrams are
// charged against the receive buffer, or false if the kernel did not say.
func (r *reader) sample(fd uintptr) (queued int, ok bool) {
	r.readsUnsampled = 0
	queued, drops, ok := meminfo(fd)
	if ok {
		// The counter is 32 bits and wraps: the difference does not.
		r.dropped.Add(uint64(drops - r.lastDrops))
		r.lastDrops = drops
		for q := int64(queued); ; {
			old := r.queuePeak.Load()
			if q <= old || r.queuePeak.CompareAndSwap(old, q) {
				break
			}
		}
	}
	return queued, ok
}

// meminfo reads SO_MEMINFO, with a raw call as recv: what the queued
// datagrams are charged against the receive buffer, and the kernel's count
// of datagrams dropped for want of room; false if it reports neither.
func meminfo(fd uintptr) (queued int, drops uint32, ok bool) {
	var info [unix.SK_MEMINFO_VARS]uint32
	size := uint32(unsafe.Sizeof(info))
	_, _, errno := unix.RawSyscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
		uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&size)), 0)
	if errno != 0 || size < uint32(unsafe.Sizeof(info)) {
		return 0, 0, false
	}
	return int(info[unix.SK_MEMINFO_RMEM_ALLOC]), info[unix.SK_MEMINFO_DROPS], true
}

// poll waits until the socket is readable or the Listener is closed.
func (r *reader) poll() error {
	for {
		switch _, err := unix.Poll(r.pollFds[:], -1); err {
		case nil:
			return nil
		case unix.EINTR:
		default:
			return fmt.Errorf("udp: poll: %w", err)
		}
	}
}

// pause waits d, or less if the Listener is closed meanwhile, so that
// shutdown never waits for a pause to end; it returns false then. The
// reused timer allocates nothing and costs no more than time.Sleep.
func (r *reader) pause(d time.Duration) bool {
	r.timer.Reset(d)
	select {
	case <-r.timer.C:
		return true
	case <-r.closed:
		r.timer.Stop()
		return false
	}
}

// pauseShare: a step of a pause may fill 1/pauseShare of the room left in
// the receive buffer; the rest absorbs a rising load and what arrives while
// a flush holds the CPU (a quarter lost datagrams at flushes: see
// bench/RESULTS.md, "Agent under load").
const pauseShare = 16

// queueShare: a pause goes on while the socket's queue holds at most
// 1/queueShare of the receive buffer, keeping the rest for a surge. This
// and the next two constants: bench/RESULTS.md, "Design notes".
const queueShare = 4

// firstPause bounds the pause after an idle spell: short enough that even
// a load starting at the reader's top speed fills little of the buffer.
const firstPause = time.Millisecond

// queuedOverhead and twice the payload bound what the kernel charges a
// queued datagram against the receive buffer (its truesize).
const queuedOverhead = 768

// close closes conn, or fd with BatchWait, once. While Run runs only the
// reader closes fd, so no read can hit a file reopened under its number.
func (r *reader) close() error {
	r.closeOnce.Do(func() {
		if r.fd >= 0 {
			r.closeErr = unix.Close(r.fd)
		} else {
			r.closeErr = r.conn.Close()
		}
	})
	return r.closeErr
}
