package udp

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// reader drains one socket. Its batch is preallocated: msgs[i] points at
// buf[i*size:(i+1)*size], and recvmmsg fills as many as are queued.
type reader struct {
	// Without BatchWait the reader reads conn through the runtime poller
	// (rc), which parks it until the socket is readable. With BatchWait it
	// polls fd instead, a duplicate of the socket that the poller does not
	// watch (see run).
	conn *net.UDPConn
	rc   syscall.RawConn
	fd   int // -1 without BatchWait
	size int
	buf  []byte
	msgs []unix.Mmsghdr

	// wait is Config.BatchWait; timer is reused for every pause, and
	// closed (the Listener's) ends a pause early. readCost is what the
	// kernel charged for the datagrams read since drainedAt, when the
	// previous wait began: they arrived at the rate that sizes the next
	// pause. sinceWait counts the datagrams read since the last wait ended;
	// woke is set when that wait was on an idle socket. A wait that is not
	// a pause polls fd and the Listener's wake, which Close makes readable.
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

	// Set by recv, read by run on the same goroutine. recvFn is recv bound
	// once so that each RawConn.Read does not allocate a method value.
	recvFn func(fd uintptr) bool
	n      int
	errno  syscall.Errno

	receiveBuffer int
	// lastDrops is the kernel's 32-bit drop counter as last read (see
	// sample), readsUnsampled the reads since.
	lastDrops      uint32
	readsUnsampled int

	packets, bytes, truncated, dropped atomic.Uint64
}

func newReader(conn *net.UDPConn, cfg *Config, closed <-chan struct{}, wake int) (*reader, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	batch, size := cfg.BatchSize, cfg.MaxPacketSize
	r := &reader{
		conn:   conn,
		rc:     rc,
		fd:     -1,
		size:   size,
		buf:    make([]byte, batch*size),
		msgs:   make([]unix.Mmsghdr, batch),
		wait:   cfg.BatchWait,
		closed: closed,
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
		// A socket in the poller's epoll set wakes the process for every
		// datagram that arrives while the reader pauses. Closing conn takes
		// it out; the duplicate, never handed to the poller, is not in it.
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
//
// The call is a raw syscall: MSG_DONTWAIT means it never blocks, so the
// scheduler need not know about it. A plain Syscall6 enters the runtime's
// syscall state, and the first one after an idle spell wakes the sysmon
// thread from its deep sleep into ~1 ms of 20 µs naps: with one CPU, at
// 100k lines/s in bursts, ~2000 extra context switches a second and ~10%
// of the agent's CPU (measured with perf and /proc schedstat, see
// bench/RESULTS.md).
//
// A read that drains the socket, after reads that did not, and every
// sampleEvery reads of a socket that stays full, read the kernel's drop
// count (sample): a drop means the socket filled, so the reads that empty
// it again report the drop within a batch or so, without a control message
// per datagram (perf put SO_RXQ_OVFL's at ~3% of the agent at 100k
// lines/s).
func (r *reader) recv(fd uintptr) bool {
	n, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, fd,
		uintptr(unsafe.Pointer(&r.msgs[0])), uintptr(len(r.msgs)), unix.MSG_DONTWAIT, 0, 0)
	if errno == 0 {
		r.readsUnsampled++
	}
	drained := errno == unix.EAGAIN || errno == 0 && int(n) < len(r.msgs)
	if r.readsUnsampled > 0 && drained || r.readsUnsampled >= sampleEvery {
		r.sample(fd)
	}
	if errno == unix.EAGAIN {
		return false
	}
	r.n, r.errno = int(n), errno
	if errno != 0 {
		r.n = 0
	}
	return true
}

// sampleEvery bounds the reads between two readings of the drop count on
// a socket that never drains: at 32 datagrams a read, ~2k datagrams.
const sampleEvery = 64

// run reads batches and calls h for each datagram until the socket is closed.
//
// Without BatchWait, an empty read parks the reader in the runtime poller
// until the socket is readable: each burst of datagrams costs a wakeup. With
// BatchWait, a read that drains the socket (a batch that is not full) is
// followed by a wait (see waitMore): at moderate rates a pause, during which
// nothing wakes the process, so that one wakeup reads all that arrived. A
// full batch is followed by another read at once, so a saturated socket
// never waits. When the Listener closes, what is queued is read first (see
// drain).
func (r *reader) run(h func(packet []byte)) error {
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
		r.deliver(h)
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
func (r *reader) deliver(h func(packet []byte)) {
	var packets, bytes, truncated uint64
	for i := range r.n {
		m := &r.msgs[i]
		r.readCost += 2*int(m.Len) + queuedOverhead
		if m.Hdr.Flags&unix.MSG_TRUNC != 0 {
			truncated++
			continue
		}
		off, end := i*r.size, i*r.size+int(m.Len)
		h(r.buf[off:end:end])
		packets++
		bytes += uint64(m.Len)
	}
	r.packets.Add(packets)
	r.bytes.Add(bytes)
	if truncated > 0 {
		r.truncated.Add(truncated)
	}
}

// drain reads what is queued when the Listener closes: a pause leaves up
// to a pause's worth of datagrams in the socket, which closing it would
// lose, where the server flushes what its readers handed over once they
// return. It reads no more than the receive buffer holds, so that a
// flood cannot hold shutdown up. Without BatchWait, Close closes the
// socket under the reader, whose queue is then seldom more than a burst.
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
// runs in steps. The first lasts as long as 1/pauseShare of the buffer
// takes to fill at the rate read since the previous wait began. After
// each, the socket's queue gives the rate since the pause began, and the
// next step lasts as long as 1/pauseShare of the room left takes to fill
// at that rate, so that a load rising pauseShare-fold within any step
// still fits. The pause goes on while the queue holds at most
// 1/queueShare of the buffer, and ends when nothing is queued: the load
// has stopped. An idle socket (nothing read since the last wait) is
// waited on until a datagram arrives, which costs nothing meanwhile. The
// rate read before the idle spell says nothing about the load that ends
// it, so the pause after it is one step of at most firstPause, and the
// rate read over that one sizes the next.
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
		// The queue since the pause began gives the rate now, in the
		// kernel's own units; nothing queued means the load has stopped,
		// and the read that ends the pause finds the socket idle.
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
	}
	return queued, ok
}

// meminfo reads SO_MEMINFO: what the socket's queued datagrams are charged
// against its receive buffer, and the count of datagrams the kernel
// dropped for want of room in it; false if the kernel reports neither.
// The call is raw for the reason given at recv.
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
// shutdown never waits for a pause to end; it returns false then. A reused
// timer and a select cost no more CPU than time.Sleep (measured: ~33 µs
// per 1 ms wait either way, nearly all of it the wakeup) and allocate
// nothing.
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

// pauseShare: a step of a pause may fill 1/pauseShare of the room left
// in the receive buffer, at the rate measured before it. The rest absorbs
// a rise in the load and what arrives while the reader catches up and
// while other goroutines hold the CPU (a flush): with a quarter, loadgen
// at 2.6M lines/s against 16 MiB lost 2.5–4.3k datagrams at some flushes,
// where without pauses it lost none.
const pauseShare = 16

// queueShare: a pause goes on by another step while the socket's queue
// holds at most 1/queueShare of the receive buffer; past that it reads,
// keeping the rest for a surge and for what arrives while other goroutines
// hold the CPU. The steps (about five reach a quarter at a steady rate)
// let a pause last 0.3 s up to ~14 MB/s of buffer: ~120k lines/s of
// bench/loadgen's 20-line datagrams, 2304 bytes each as the kernel counts
// them, against 16 MiB.
const queueShare = 4

// firstPause bounds the pause after an idle spell. Even a load that
// starts at the most the reader can read (~450 MB/s of buffer on loopback
// at 20 lines a datagram) fills only ~0.5 MB of the receive buffer in it.
const firstPause = time.Millisecond

// queuedOverhead and twice the payload bound what the kernel charges a
// queued datagram against the receive buffer (its truesize: on loopback
// 832 bytes for 100 of payload, 2304 for 1200).
const queuedOverhead = 768

// close closes the reader's socket, once: conn without BatchWait; with it,
// fd, which only the reader's goroutine uses while Run runs, so that the
// descriptor is never closed under a read that might then hit another
// file opened under the same number.
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
