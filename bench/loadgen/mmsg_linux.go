package main

import (
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsgWriter sends batches of ring packets on a connected socket with one
// sendmmsg call each. x/sys v0.50 has no Sendmmsg wrapper, so the call is
// the raw syscall over unix.Mmsghdr, as io/udp does for recvmmsg.
type mmsgWriter struct {
	rc   syscall.RawConn
	msgs []unix.Mmsghdr
	iovs []unix.Iovec

	// Set before and read after each rc.Write; sendFn is send bound once
	// so that a batch does not allocate a method value.
	sendFn func(fd uintptr) bool
	count  int
	sent   int
	errno  syscall.Errno
}

func newMmsgWriter(conn *net.UDPConn, batch int) (*mmsgWriter, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	w := &mmsgWriter{rc: rc, msgs: make([]unix.Mmsghdr, batch), iovs: make([]unix.Iovec, batch)}
	for i := range w.msgs {
		w.msgs[i].Hdr.Iov = &w.iovs[i]
		w.msgs[i].Hdr.SetIovlen(1)
	}
	w.sendFn = w.send
	return w, nil
}

// write sends packets [p, p+n) of r, n at most the batch size, and returns
// how many the kernel took. An error means none of the first packet.
func (w *mmsgWriter) write(r *ring, p, n int) (int, error) {
	for i := range n {
		b := r.packet(p + i)
		w.iovs[i].Base = &b[0]
		w.iovs[i].SetLen(len(b))
	}
	w.count = n
	if err := w.rc.Write(w.sendFn); err != nil {
		return 0, err
	}
	if w.errno != 0 {
		return 0, w.errno
	}
	return w.sent, nil
}

// send is the RawConn.Write callback: one non-blocking sendmmsg. It returns
// false on EAGAIN so that the poller waits for the socket to be writable.
func (w *mmsgWriter) send(fd uintptr) bool {
	n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, fd,
		uintptr(unsafe.Pointer(&w.msgs[0])), uintptr(w.count), 0, 0, 0)
	if errno == unix.EAGAIN {
		return false
	}
	w.sent, w.errno = int(n), errno
	return true
}
