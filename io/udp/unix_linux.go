package udp

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// listenUnix binds the unix datagram socket at cfg.Socket and opens its
// readers: the first reads the bound socket, each other a duplicate of it.
func (l *Listener) listenUnix(cfg *Config) error {
	path := cfg.Socket
	abstract := path[0] == '@' // no file: nothing to remove or chmod
	if !abstract {
		if err := removeStale(path); err != nil {
			return err
		}
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return err
	}
	l.unixAddr = conn.LocalAddr().(*net.UnixAddr)
	if l.addr == nil {
		l.addr = l.unixAddr
	}
	if !abstract {
		// Bound with the umask's permissions: the mode is set before Listen
		// returns, so before any datagram is read.
		if l.socket, err = newSocketFile(path); err == nil {
			err = os.Chmod(path, cfg.SocketMode)
		}
		if err != nil {
			conn.Close()
			return err
		}
	}
	if cfg.OriginDetection {
		if err := setPassCred(conn); err != nil {
			conn.Close()
			return err
		}
	}
	// The readers read through the runtime poller, without BatchWait: a
	// pause is sized by the queue's size in bytes, which the kernel does
	// not report for a unix socket, and a full queue makes senders wait.
	rcfg := *cfg
	rcfg.BatchWait = 0
	for i := range cfg.SocketReaders {
		c := conn
		if i > 0 {
			if c, err = dupUnix(conn); err != nil {
				return err
			}
		}
		r, err := newReader(c, &rcfg, l.closed, -1, l.panicLog)
		if err != nil {
			c.Close()
			return err
		}
		l.readers = append(l.readers, r)
	}
	return nil
}

// dupUnix returns another descriptor of conn's socket, with its own place
// in the runtime poller.
func dupUnix(conn *net.UnixConn) (*net.UnixConn, error) {
	f, err := conn.File()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	pc, err := net.FilePacketConn(f)
	if err != nil {
		return nil, err
	}
	return pc.(*net.UnixConn), nil
}

func setPassCred(conn *net.UnixConn) error {
	rc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1) }); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("SO_PASSCRED: %w", serr)
	}
	return nil
}

// removeStale removes a socket file that no process reads any more (one
// left by a process that died). Connecting tells: a socket still bound
// accepts the connection. Anything else at path is an error, so that a
// mistyped path never deletes a file.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%s exists and is not a socket", path)
	}
	c, err := net.Dial("unixgram", path)
	if err == nil {
		c.Close()
		return fmt.Errorf("%s is in use by another process", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.Remove(path)
}

// socketFile is the file of a bound unix socket, which the Listener
// removes when it closes, unless another has replaced it meanwhile (a
// restarted listener that already removed it as stale).
type socketFile struct {
	path string
	info os.FileInfo
	once sync.Once
	err  error
}

func newSocketFile(path string) (*socketFile, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	return &socketFile{path: path, info: fi}, nil
}

func (s *socketFile) remove() error {
	s.once.Do(func() {
		fi, err := os.Lstat(s.path)
		if err != nil || !os.SameFile(fi, s.info) {
			return // gone, or not ours any more
		}
		s.err = os.Remove(s.path)
	})
	return s.err
}
