//go:build linux

package udp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// socketPath returns a path for a unix socket in a directory of its own.
func socketPath(t *testing.T) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "bucky3.sock")
}

// startOrigin is start for RunOrigin.
func startOrigin(t *testing.T, cfg Config, h OriginHandler) *Listener {
	t.Helper()
	l, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.RunOrigin(ctx, h) }()
	t.Cleanup(func() {
		cancel()
		waitStopped(t, done, "after cancel")
	})
	return l
}

func dialUnix(t *testing.T, path string) net.Conn {
	t.Helper()
	c, err := net.Dial("unixgram", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestListener_UnixExactlyOnce: many senders, one socket, one or several
// readers sharing it: every datagram is handed over exactly once, and the
// counters say so. Senders to a unix socket wait when its queue is full,
// so nothing is lost however slow the readers.
func TestListener_UnixExactlyOnce(t *testing.T) {
	for _, readers := range []int{1, 3} {
		t.Run(fmt.Sprintf("readers=%d", readers), func(t *testing.T) {
			const clients, perClient = 16, 200
			path := socketPath(t)
			seen := make([]map[string]int, readers) // per reader: no lock needed
			var total atomic.Int64
			all := make(chan struct{})
			l := start(t, Config{Socket: path, SocketReaders: readers, BatchSize: 8}, func(reader int) func([]byte) {
				seen[reader] = map[string]int{}
				return func(p []byte) {
					seen[reader][string(p)]++
					if total.Add(1) == clients*perClient {
						close(all)
					}
				}
			})
			if l.UnixAddr() == nil || l.UnixAddr().Name != path || l.Addr().String() != path {
				t.Fatalf("UnixAddr() = %v, Addr() = %v, want %s", l.UnixAddr(), l.Addr(), path)
			}
			var wg sync.WaitGroup
			var size atomic.Uint64
			for c := range clients {
				conn := dialUnix(t, path)
				wg.Go(func() {
					for i := range perClient {
						n, err := fmt.Fprintf(conn, "client %d message %d", c, i)
						if err != nil {
							t.Error(err)
							return
						}
						size.Add(uint64(n))
					}
				})
			}
			wg.Wait()
			select {
			case <-all:
			case <-time.After(failAfter):
				t.Fatalf("received %d of %d datagrams", total.Load(), clients*perClient)
			}
			waitFor(t, "counters", func() bool { return l.Packets() == clients*perClient })
			got := map[string]int{}
			for _, m := range seen {
				for k, n := range m {
					got[k] += n
				}
			}
			for c := range clients {
				for i := range perClient {
					if m := fmt.Sprintf("client %d message %d", c, i); got[m] != 1 {
						t.Fatalf("%q received %d times", m, got[m])
					}
				}
			}
			if len(got) != clients*perClient || l.Bytes() != size.Load() || l.Truncated() != 0 || l.Dropped() != 0 {
				t.Fatalf("%d distinct, Bytes %d (want %d), Truncated %d, Dropped %d",
					len(got), l.Bytes(), size.Load(), l.Truncated(), l.Dropped())
			}
			if l.ReceiveBuffer() != 0 {
				t.Fatalf("ReceiveBuffer() = %d without UDP, want 0", l.ReceiveBuffer())
			}
		})
	}
}

// TestListener_UnixAndUDP: one Listener, both kinds of socket; the unix
// socket's reader comes after the UDP ones.
func TestListener_UnixAndUDP(t *testing.T) {
	path := socketPath(t)
	type got struct {
		reader int
		p      string
	}
	ch := make(chan got, 2)
	l := start(t, Config{Addr: "127.0.0.1:0", Readers: 2, Socket: path}, func(reader int) func([]byte) {
		return func(p []byte) { ch <- got{reader, string(p)} }
	})
	if _, ok := l.Addr().(*net.UDPAddr); !ok || l.UnixAddr().Name != path {
		t.Fatalf("Addr() = %v, UnixAddr() = %v", l.Addr(), l.UnixAddr())
	}
	if _, err := dialUnix(t, path).Write([]byte("via unix")); err != nil {
		t.Fatal(err)
	}
	if g := <-ch; g.reader != 2 || g.p != "via unix" {
		t.Fatalf("reader %d got %q, want reader 2, \"via unix\"", g.reader, g.p)
	}
	write(t, dial(t, l.Addr()), "via udp")
	if g := <-ch; g.reader > 1 || g.p != "via udp" {
		t.Fatalf("reader %d got %q, want a UDP reader, \"via udp\"", g.reader, g.p)
	}
}

// TestListener_UnixTruncated: a unix datagram may be far longer than
// 65535 bytes; one longer than MaxPacketSize is dropped and counted.
func TestListener_UnixTruncated(t *testing.T) {
	path := socketPath(t)
	got := make(chan int, 2)
	l := start(t, Config{Socket: path, MaxPacketSize: 1000}, func(int) func([]byte) {
		return func(p []byte) { got <- len(p) }
	})
	conn := dialUnix(t, path)
	for _, n := range []int{1001, 100_000, 1000} {
		if _, err := conn.Write(make([]byte, n)); err != nil {
			t.Fatal(err)
		}
	}
	if n := <-got; n != 1000 {
		t.Fatalf("handler got %d bytes; the long datagrams must be dropped", n)
	}
	// The counters are added after the handler returns.
	waitFor(t, "counters", func() bool { return l.Truncated() == 2 && l.Packets() >= 1 })
	if l.Packets() != 1 || l.Bytes() != 1000 {
		t.Fatalf("Packets %d, Bytes %d; want 1, 1000", l.Packets(), l.Bytes())
	}
}

// TestListener_UnixSocketFile: the file gets SocketMode (default 0660),
// and is removed when Run returns, or on Close without Run.
func TestListener_UnixSocketFile(t *testing.T) {
	f := func(mode, want os.FileMode, run bool) {
		t.Helper()
		path := socketPath(t)
		l, err := Listen(Config{Socket: path, SocketMode: mode})
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != want {
			t.Fatalf("socket_mode %#o: the file is %v, want a socket with %v", mode, fi.Mode(), want)
		}
		if run {
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- l.Run(ctx, func(int) func([]byte) { return func([]byte) {} }) }()
			cancel()
			waitStopped(t, done, "after cancel")
		} else if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("socket file left after the Listener stopped: %v", err)
		}
	}
	f(0, DefaultSocketMode, true)
	f(0o600, 0o600, false)
	f(0o666, 0o666, true)
	f(0o622, 0o622, false) // not cut by the umask
}

// TestListener_UnixStaleSocket: a socket file that nobody reads (its
// process died) is replaced; one in use, or a file that is no socket, is
// an error that leaves it alone.
func TestListener_UnixStaleSocket(t *testing.T) {
	path := socketPath(t)
	stale, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	stale.Close() // closing a unixgram socket leaves its file
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("no stale file to test with: %v", err)
	}
	got := make(chan string, 1)
	l := start(t, Config{Socket: path}, func(int) func([]byte) { return func(p []byte) { got <- string(p) } })
	if _, err := dialUnix(t, path).Write([]byte("after stale")); err != nil {
		t.Fatal(err)
	}
	if p := <-got; p != "after stale" {
		t.Fatalf("received %q", p)
	}
	// l reads the socket now: a second Listener must not take it.
	if l2, err := Listen(Config{Socket: path}); err == nil || !strings.Contains(err.Error(), "in use") {
		if err == nil {
			l2.Close()
		}
		t.Fatalf("Listen on a socket in use: %v, want an error", err)
	}
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("the refused Listen removed the socket in use: %v", err)
	}
	_ = l

	file := filepath.Join(t.TempDir(), "not-a-socket")
	if err := os.WriteFile(file, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if l3, err := Listen(Config{Socket: file}); err == nil {
		l3.Close()
		t.Fatal("Listen replaced a regular file")
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep me" {
		t.Fatalf("the regular file was touched: %q, %v", b, err)
	}
}

// TestListener_UnixAbstract: an abstract socket has no file to manage.
func TestListener_UnixAbstract(t *testing.T) {
	name := fmt.Sprintf("@bucky3-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	got := make(chan string, 1)
	start(t, Config{Socket: name}, func(int) func([]byte) { return func(p []byte) { got <- string(p) } })
	if _, err := dialUnix(t, name).Write([]byte("abstract")); err != nil {
		t.Fatal(err)
	}
	if p := <-got; p != "abstract" {
		t.Fatalf("received %q", p)
	}
}

func TestListener_OriginNeedsRunOrigin(t *testing.T) {
	path := socketPath(t)
	l, err := Listen(Config{Socket: path, OriginDetection: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Run(context.Background(), func(int) func([]byte) { return func([]byte) {} }); err == nil {
		t.Fatal("Run with OriginDetection succeeded")
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the refused Run left the socket file: %v", err)
	}
}

// TestListener_Origin: a child process (this test binary, see
// TestOriginSender) and the test itself send to a socket with origin
// detection; each datagram comes with its sender's container id, read from
// a fixture procfs with a cgroup file per pid (ProcRoot), or from the real
// /proc. The child lives until its datagram is handled, so its /proc entry
// is there to read.
func TestListener_Origin(t *testing.T) {
	for _, fixture := range []bool{true, false} {
		t.Run(fmt.Sprintf("fixture=%v", fixture), func(t *testing.T) {
			root, path := "", socketPath(t)
			if fixture {
				root = t.TempDir()
				writeCgroup(t, root, os.Getpid(), "0::/system.slice/docker-"+id2+".scope\n")
			}
			type datagram struct{ p, id string }
			got := make(chan datagram, 1)
			l := startOrigin(t, Config{Socket: path, OriginDetection: true, ProcRoot: root}, func(int) func([]byte, string) {
				return func(p []byte, id string) { got <- datagram{string(p), id} }
			})
			want := func(pid int) string {
				if fixture {
					return map[int]string{os.Getpid(): id2}[pid] // "" for other pids
				}
				b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
				if err != nil {
					t.Fatal(err)
				}
				return string(containerID(b))
			}

			cmd := exec.Command(os.Args[0], "-test.run=^TestOriginSender$")
			cmd.Env = append(os.Environ(), originSenderEnv+"="+path)
			cmd.Stderr = os.Stderr
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				stdin.Close() // the child exits on EOF
				if err := cmd.Wait(); err != nil {
					t.Errorf("sender: %v", err)
				}
			}()
			child := cmd.Process.Pid
			wantChild := want(child)
			if fixture {
				writeCgroup(t, root, child, "12:memory:/docker/"+id1+"\n0::/\n")
				wantChild = id1
			}
			if _, err := stdin.Write([]byte("send\n")); err != nil {
				t.Fatal(err)
			}
			if d := <-got; d.p != strconv.Itoa(child) || d.id != wantChild {
				t.Fatalf("received %q from container %q, want %d from %q", d.p, d.id, child, wantChild)
			}
			// This process: its own id, and the cache keeps pids apart.
			conn := dialUnix(t, path)
			for range 2 {
				if _, err := conn.Write([]byte("self")); err != nil {
					t.Fatal(err)
				}
				if d, w := <-got, want(os.Getpid()); d.p != "self" || d.id != w {
					t.Fatalf("received %q from container %q, want \"self\" from %q", d.p, d.id, w)
				}
			}
			if n := l.OriginLookups(); n != 2 {
				t.Fatalf("OriginLookups() = %d, want 2: one per pid, then the cache", n)
			}
		})
	}
}

func writeCgroup(t *testing.T, root string, pid int, content string) {
	t.Helper()
	dir := filepath.Join(root, strconv.Itoa(pid))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

const originSenderEnv = "BUCKY3_UDP_ORIGIN_SENDER"

// TestOriginSender is TestListener_Origin's sender when run as its child
// ($BUCKY3_UDP_ORIGIN_SENDER = the socket's path); otherwise it skips. On a
// line from stdin it sends its pid, then it waits for stdin's end.
func TestOriginSender(t *testing.T) {
	path := os.Getenv(originSenderEnv)
	if path == "" {
		t.Skip("run by TestListener_Origin")
	}
	in := bufio.NewReader(os.Stdin)
	if _, err := in.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("unixgram", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(strconv.Itoa(os.Getpid()))); err != nil {
		t.Fatal(err)
	}
	_, _ = in.ReadString('\n') // EOF: the parent is done with this process
}

// TestOrigins_Cache: an entry is kept for originTTL, then read again; the
// cache never holds more than originEntries; pids ≤ 0 are never looked up.
func TestOrigins_Cache(t *testing.T) {
	root := t.TempDir()
	o := newOrigins(root)
	writeCgroup(t, root, 42, "0::/docker/"+id1+"\n")
	f := func(pid int32, now int64, want string, lookups uint64) {
		t.Helper()
		if got := o.lookup(pid, now); got != want || o.lookups != lookups {
			t.Fatalf("lookup(%d, %d) = %q after %d reads, want %q after %d", pid, now, got, o.lookups, want, lookups)
		}
	}
	f(42, 0, id1, 1)
	writeCgroup(t, root, 42, "0::/docker/"+id2+"\n") // the pid now belongs to another container
	f(42, originTTL-1, id1, 1)                       // cached
	f(42, originTTL, id2, 2)                         // expired: read again
	f(7, originTTL, "", 3)                           // no such pid: cached as none
	f(7, originTTL+1, "", 3)
	f(0, 0, "", 3) // unknown sender (another pid namespace)
	f(-1, 0, "", 3)

	for pid := range int32(3 * originEntries) {
		o.lookup(1000+pid, 2*originTTL)
		if len(o.cache) > originEntries {
			t.Fatalf("%d entries, bound %d", len(o.cache), originEntries)
		}
	}
	f(42, 2*originTTL+1, id2, 3*originEntries+4) // evicted or expired: read again
}
