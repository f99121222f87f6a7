//go:build linux

package udp

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// failAfter bounds every wait in these tests: it only detects a hang, it
// never decides a result.
const failAfter = 10 * time.Second

// start listens on cfg and runs the listener with h until the test ends.
func start(t *testing.T, cfg Config, h Handler) *Listener {
	t.Helper()
	l, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx, h) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(failAfter):
			t.Error("Run did not return after cancel")
		}
	})
	return l
}

func dial(t *testing.T, addr net.Addr) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp", nil, addr.(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func write(t *testing.T, c *net.UDPConn, p string) {
	t.Helper()
	if _, err := c.Write([]byte(p)); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds; it fails the test after failAfter.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(failAfter)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestListener_ExactlyOnceAcrossReaders(t *testing.T) {
	// With a batch wait, the bursts (far larger than a batch) are read both
	// right after full batches and after waits.
	for _, tc := range []struct {
		addr string
		wait time.Duration
	}{{"127.0.0.1:0", 0}, {"[::1]:0", 0}, {"127.0.0.1:0", time.Millisecond}} {
		addr := tc.addr
		t.Run(fmt.Sprintf("%s/wait=%v", addr, tc.wait), func(t *testing.T) {
			const readers, clients, perClient = 4, 32, 50
			seen := make([][]string, readers) // per reader: no lock needed
			var total atomic.Int64
			all := make(chan struct{})
			cfg := Config{Addr: addr, Readers: readers, BatchSize: 8, ReceiveBuffer: 1 << 20, BatchWait: tc.wait}
			l := start(t, cfg, func(reader int) func([]byte) {
				return func(p []byte) {
					seen[reader] = append(seen[reader], string(p))
					if total.Add(1) == clients*perClient {
						close(all)
					}
				}
			})
			if got := l.Addr().(*net.UDPAddr); got.Port == 0 || (addr[0] == '[') != (got.IP.To4() == nil) {
				t.Fatalf("Addr() = %v", got)
			}
			// REUSEPORT spreads by source address, so use many clients.
			for c := range clients {
				conn := dial(t, l.Addr())
				for i := range perClient {
					if _, err := fmt.Fprintf(conn, "client %d message %d", c, i); err != nil {
						t.Fatal(err)
					}
				}
			}
			select {
			case <-all:
			case <-time.After(failAfter):
				t.Fatalf("received %d of %d datagrams", total.Load(), clients*perClient)
			}
			waitFor(t, "counters", func() bool { return l.Packets() == clients*perClient })

			got := map[string]int{}
			busy := 0
			for _, msgs := range seen {
				if len(msgs) > 0 {
					busy++
				}
				for _, m := range msgs {
					got[m]++
				}
			}
			for c := range clients {
				for i := range perClient {
					if m := fmt.Sprintf("client %d message %d", c, i); got[m] != 1 {
						t.Fatalf("%q received %d times", m, got[m])
					}
				}
			}
			if len(got) != clients*perClient {
				t.Fatalf("received %d distinct datagrams, want %d", len(got), clients*perClient)
			}
			if busy < 2 {
				t.Fatalf("only %d of %d readers received datagrams", busy, readers)
			}
			var size uint64
			for m := range got {
				size += uint64(len(m))
			}
			if l.Bytes() != size || l.Truncated() != 0 || l.Dropped() != 0 {
				t.Fatalf("Bytes %d (want %d), Truncated %d, Dropped %d", l.Bytes(), size, l.Truncated(), l.Dropped())
			}
		})
	}
}

func TestListener_MaxSizeDatagram(t *testing.T) {
	f := func(addr string, size int) {
		t.Helper()
		got := make(chan []byte, 1)
		l := start(t, Config{Addr: addr, Readers: 2}, func(int) func([]byte) {
			return func(p []byte) { got <- bytes.Clone(p) }
		})
		want := make([]byte, size)
		for i := range want {
			want[i] = byte(rand.N(256))
		}
		if _, err := dial(t, l.Addr()).Write(want); err != nil {
			t.Fatal(err)
		}
		select {
		case p := <-got:
			if !bytes.Equal(p, want) {
				t.Fatalf("%s: received %d bytes, want %d intact", addr, len(p), len(want))
			}
		case <-time.After(failAfter):
			t.Fatalf("%s: datagram of %d bytes not received", addr, size)
		}
		if l.Truncated() != 0 {
			t.Fatalf("%s: Truncated() = %d", addr, l.Truncated())
		}
	}
	f("127.0.0.1:0", 65507) // 65535 - 20 (IPv4) - 8 (UDP)
	f("[::1]:0", 65527)     // 65535 - 8: the IPv6 header is not in the payload length
}

func TestListener_Truncated(t *testing.T) {
	got := make(chan string, 2)
	l := start(t, Config{Addr: "127.0.0.1:0", Readers: 1, MaxPacketSize: minPacketSize}, func(int) func([]byte) {
		return func(p []byte) { got <- string(p) }
	})
	conn := dial(t, l.Addr())
	fits := strings.Repeat("0123456789abcdef", minPacketSize/16)
	write(t, conn, fits+"x") // one byte too many
	write(t, conn, fits)
	select {
	case p := <-got:
		if p != fits {
			t.Fatalf("handler got %d bytes; the truncated datagram must be dropped", len(p))
		}
	case <-time.After(failAfter):
		t.Fatal("datagram not received")
	}
	waitFor(t, "counters", func() bool { return l.Packets() == 1 })
	if l.Truncated() != 1 || l.Bytes() != minPacketSize {
		t.Fatalf("Truncated %d, Bytes %d; want 1, %d", l.Truncated(), l.Bytes(), minPacketSize)
	}
}

// TestListener_Dropped forces kernel drops: the handler blocks on the first
// datagram while a thousand more are sent to a 4 KiB receive buffer, which
// holds a handful. Every datagram sent is then either handed over or
// counted dropped, the drops show up once the reader has caught up (with no
// later traffic to carry them), and Dropped equals the socket's own count
// in /proc/net/udp; with and without BatchWait.
func TestListener_Dropped(t *testing.T) {
	for _, wait := range []time.Duration{0, time.Millisecond} {
		t.Run(fmt.Sprintf("wait=%v", wait), func(t *testing.T) {
			entered, release := make(chan struct{}), make(chan struct{})
			var received atomic.Uint64 // counted by the handler itself
			cfg := Config{Addr: "127.0.0.1:0", Readers: 1, BatchSize: 1, ReceiveBuffer: 4096, BatchWait: wait}
			l := start(t, cfg, func(int) func([]byte) {
				first := true
				return func([]byte) {
					received.Add(1)
					if first {
						first = false
						close(entered)
						<-release
					}
				}
			})
			conn := dial(t, l.Addr())
			send := func() {
				if _, err := conn.Write([]byte("flood")); err != nil {
					t.Fatal(err)
				}
			}
			send()
			select {
			case <-entered: // the reader is blocked until release
			case <-time.After(failAfter):
				t.Fatal("first datagram not received")
			}
			const sent = 1001
			for range sent - 1 {
				send()
			}
			// Nothing is sent from here on: the kernel's count is final.
			kernel := socketDrops(t, l.Addr().(*net.UDPAddr))
			close(release)
			waitFor(t, "every datagram handed over or dropped", func() bool { return l.Packets()+l.Dropped() == sent })
			if l.Dropped() == 0 || l.Packets() == 0 {
				t.Fatalf("Packets %d, Dropped %d: want both", l.Packets(), l.Dropped())
			}
			if got := received.Load(); l.Packets() != got || l.Dropped() != sent-got {
				t.Fatalf("handler got %d of %d datagrams; Packets %d, Dropped %d", got, sent, l.Packets(), l.Dropped())
			}
			if l.Dropped() != kernel {
				t.Fatalf("Dropped %d, the socket's count in /proc/net/udp %d", l.Dropped(), kernel)
			}
		})
	}
}

// socketDrops returns the drops column of the /proc/net/udp line of the
// socket bound to addr (IPv4): the kernel's count for that socket, read
// apart from the listener's own reading of it.
func socketDrops(t *testing.T, addr *net.UDPAddr) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		t.Fatal(err)
	}
	local := fmt.Sprintf("%08X:%04X", binary.NativeEndian.Uint32(addr.IP.To4()), addr.Port)
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 2 && f[1] == local {
			n, err := strconv.ParseUint(f[len(f)-1], 10, 64)
			if err != nil {
				t.Fatalf("/proc/net/udp: %q: %v", line, err)
			}
			return n
		}
	}
	t.Fatalf("/proc/net/udp has no socket bound to %s", local)
	return 0
}

func TestListener_ReceiveBuffer(t *testing.T) {
	rmemMax := 0
	if b, err := os.ReadFile("/proc/sys/net/core/rmem_max"); err == nil {
		rmemMax, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	forced := os.Geteuid() == 0
	f := func(requested int) {
		t.Helper()
		l, err := Listen(Config{Addr: "127.0.0.1:0", Readers: 2, ReceiveBuffer: requested})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		got := l.ReceiveBuffer()
		switch {
		case forced && got != 2*requested:
			t.Fatalf("requested %d as root: ReceiveBuffer() = %d, want %d (doubled by the kernel)", requested, got, 2*requested)
		case !forced && got != 2*min(requested, rmemMax):
			t.Fatalf("requested %d, rmem_max %d: ReceiveBuffer() = %d", requested, rmemMax, got)
		}
	}
	f(1 << 20)
	f(3 << 20)
	f(16 << 20)
}

func TestListener_Shutdown(t *testing.T) {
	l, err := Listen(Config{Addr: "127.0.0.1:0", Readers: 3})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	got := make(chan struct{}, 1)
	go func() {
		done <- l.Run(ctx, func(int) func([]byte) { return func([]byte) { got <- struct{}{} } })
	}()
	write(t, dial(t, l.Addr()), "x")
	<-got // the readers are running
	cancel()
	waitStopped(t, done, "after cancel")
	// The sockets are closed: the port is free again for a plain bind.
	c, err := net.ListenUDP("udp", l.Addr().(*net.UDPAddr))
	if err != nil {
		t.Fatalf("port still bound after Run returned: %v", err)
	}
	c.Close()
	if err := l.Run(context.Background(), nil); err == nil {
		t.Fatal("second Run succeeded")
	}
}

func TestListen_Failure(t *testing.T) {
	f := func(cfg Config) {
		t.Helper()
		if l, err := Listen(cfg); err == nil {
			l.Close()
			t.Fatalf("Listen(%+v) succeeded", cfg)
		}
	}
	f(Config{Addr: "127.0.0.1"})
	f(Config{Addr: "127.0.0.1:0", Readers: -1})
	f(Config{Addr: "127.0.0.1:0", BatchSize: 1025})
	f(Config{Addr: "127.0.0.1:0", MaxPacketSize: 65536})
	f(Config{Addr: "127.0.0.1:0", MaxPacketSize: minPacketSize - 1}) // as max_packet_size
	f(Config{Addr: "127.0.0.1:0", ReceiveBuffer: -1})
	f(Config{Addr: "127.0.0.1:0", BatchWait: -time.Millisecond})
	f(Config{Addr: "192.0.2.1:0"}) // not a local address
	f(Config{})                    // neither an address nor a socket
	f(Config{Socket: "/nonexistent-dir/s.sock"})
	f(Config{Socket: "@x", SocketReaders: -1})
	f(Config{Socket: "@x", SocketMode: os.ModeSetuid | 0o660})
	f(Config{Socket: "/" + strings.Repeat("x", 200)}) // longer than sun_path

	// A port held by a socket without SO_REUSEPORT cannot be shared.
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f(Config{Addr: c.LocalAddr().String(), Readers: 2})
}

func TestListener_DualStack(t *testing.T) {
	got := make(chan string, 2)
	l := start(t, Config{Addr: ":0", Readers: 2}, func(int) func([]byte) {
		return func(p []byte) { got <- string(p) }
	})
	port := l.Addr().(*net.UDPAddr).Port
	for _, ip := range []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback} {
		write(t, dial(t, &net.UDPAddr{IP: ip, Port: port}), ip.String())
		select {
		case p := <-got:
			if p != ip.String() {
				t.Fatalf("received %q, want %q", p, ip)
			}
		case <-time.After(failAfter):
			t.Fatalf("datagram to %v not received", ip)
		}
	}
}

func TestListener_BatchWaitTrickle(t *testing.T) {
	got := make(chan string)
	l := start(t, Config{Addr: "127.0.0.1:0", Readers: 1, BatchWait: 2 * time.Millisecond}, func(int) func([]byte) {
		return func(p []byte) { got <- string(p) }
	})
	conn := dial(t, l.Addr())
	// One datagram at a time: every read is short or empty, so each is
	// followed by a pause; the next datagram is read after one.
	for i := range 20 {
		roundTrip(t, conn, got, fmt.Sprintf("trickle %d", i), "")
	}
}

// roundTrip sends want on conn and fails unless the handler passes it to
// got within failAfter; why says what a timeout means.
func roundTrip(t *testing.T, conn *net.UDPConn, got <-chan string, want, why string) {
	t.Helper()
	if _, err := conn.Write([]byte(want)); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		if p != want {
			t.Fatalf("received %q, want %q", p, want)
		}
	case <-time.After(failAfter):
		t.Fatalf("%q not received%s", want, why)
	}
}

// TestListener_BatchWaitOnlyAfterShortReads uses a wait far longer than
// the test may take, so that any wait where there must be none, or any
// wait not shortened to what the receive buffer can hold, hangs it.
func TestListener_BatchWaitOnlyAfterShortReads(t *testing.T) {
	const batch = 4
	// 64 KiB (128 as the kernel counts): at the rate of the first reads a
	// sixteenth of it fills in about as long as they took.
	l, err := Listen(Config{Addr: "127.0.0.1:0", Readers: 1, BatchSize: batch, BatchWait: time.Hour, ReceiveBuffer: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	conn := dial(t, l.Addr())
	send := func(msg string) {
		t.Helper()
		if _, err := conn.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	// Queued before Run: the first reads return full batches.
	for i := range 3 * batch {
		send(strconv.Itoa(i))
	}
	got := make(chan string, 3*batch+1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx, func(int) func([]byte) { return func(p []byte) { got <- string(p) } }) }()
	receive := func(want string) {
		t.Helper()
		select {
		case p := <-got:
			if p != want {
				t.Fatalf("received %q, want %q", p, want)
			}
		case <-time.After(failAfter):
			t.Fatalf("%q not received: the reader waited after a full batch, or longer than the buffer lasts", want)
		}
	}
	for i := range 3 * batch {
		receive(strconv.Itoa(i))
	}
	// The socket is drained: the empty read after the full batches starts
	// a pause, not of an hour but as long as a sixteenth of the buffer
	// takes to fill at the rate just read, and in steps of that length
	// while a quarter of the buffer is not queued. A burst of more than a
	// quarter (64 datagrams at 832 bytes as the kernel counts them, of
	// 128 KiB) must end it, whatever state it finds the reader in.
	for i := range 64 {
		send("late " + strconv.Itoa(i))
	}
	for i := range 64 {
		receive("late " + strconv.Itoa(i))
	}
	// Shutdown must end whichever wait follows.
	cancel()
	waitStopped(t, done, "after cancel while its reader waited")
}

// TestListener_BatchWaitSteps: a pause goes on, step after step, while
// datagrams trickle in, until BatchWait has passed. A handler that takes
// 5 ms makes the first step ~50 ms (8 KiB, a sixteenth of the buffer, at
// one datagram per 5 ms); a datagram that arrives during it finds the
// queue far from a quarter full, so the pause lasts the whole second.
func TestListener_BatchWaitSteps(t *testing.T) {
	conn, got, cancel, done := runUnderWay(t, Config{BatchWait: time.Second, ReceiveBuffer: 64 << 10}, 5*time.Millisecond)
	if p := <-got; p != "first" {
		t.Fatalf("received %q, want first", p)
	}
	start := time.Now() // "first" is still being handled
	if _, err := conn.Write([]byte("second")); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		if waited := time.Since(start); waited < 400*time.Millisecond {
			t.Fatalf("%q read after %v: the pause ended with its first step", p, waited)
		}
	case <-time.After(failAfter):
		t.Fatal("second not received: the pause outlasted BatchWait")
	}
	cancel()
	waitStopped(t, done, "after cancel")
}

// TestListener_BatchWaitStopsWhenLoadStops: a step after which nothing is
// queued ends the pause (the load has stopped) and the reader then waits
// on its idle socket: a datagram that comes later is read at once, not
// after BatchWait.
func TestListener_BatchWaitStopsWhenLoadStops(t *testing.T) {
	// The pause after "first" is sized by its rate, and with the smallest
	// buffer its first step is shorter than the read took: nothing else
	// arrives during it, however slow the machine.
	conn, got, cancel, done := runUnderWay(t, Config{BatchWait: time.Hour, ReceiveBuffer: 4096}, 0)
	if p := <-got; p != "first" {
		t.Fatalf("received %q, want first", p)
	}
	time.Sleep(200 * time.Millisecond)
	roundTrip(t, conn, got, "after the load stopped", ": the reader went on pausing with nothing queued")
	cancel()
	waitStopped(t, done, "after cancel")
}

// runUnderWay listens on 127.0.0.1 with one reader and cfg, queues "first"
// before Run, so that the first read finds it (a load under way, not one
// that wakes an idle socket, whose first pause is short), and runs the
// Listener with a handler that passes each datagram to got, then spends
// firstTakes on "first": what the test sends on receiving it is queued
// before the pause that follows. cancel stops Run, whose result done
// carries.
func runUnderWay(t *testing.T, cfg Config, firstTakes time.Duration) (conn *net.UDPConn, got <-chan string, cancel func(), done <-chan error) {
	t.Helper()
	cfg.Addr, cfg.Readers = "127.0.0.1:0", 1
	l, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	conn = dial(t, l.Addr())
	if _, err := conn.Write([]byte("first")); err != nil {
		t.Fatal(err)
	}
	received := make(chan string, 2)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stopped := make(chan error, 1)
	go func() {
		stopped <- l.Run(ctx, func(int) func([]byte) {
			return func(p []byte) {
				received <- string(p)
				if string(p) == "first" {
					time.Sleep(firstTakes)
				}
			}
		})
	}()
	return conn, received, cancel, stopped
}

// TestListener_BatchWaitIdle: on an idle socket the reader waits for the
// next datagram instead of pausing for BatchWait (an hour here), so that a
// load that starts then is read at once, however long the socket was idle.
func TestListener_BatchWaitIdle(t *testing.T) {
	got := make(chan string)
	l := start(t, Config{Addr: "127.0.0.1:0", Readers: 1, BatchWait: time.Hour}, func(int) func([]byte) {
		return func(p []byte) { got <- string(p) }
	})
	conn := dial(t, l.Addr())
	for i := range 3 {
		// Long enough for the pause after the last datagram to end and
		// the reader to find the socket idle.
		time.Sleep(50 * time.Millisecond)
		roundTrip(t, conn, got, fmt.Sprintf("after idle %d", i), ": the reader paused on an idle socket")
	}
	// Let the reader block again: start's cleanup checks that shutdown
	// ends the block.
	time.Sleep(50 * time.Millisecond)
}

// TestListener_BatchWaitCloseEndsPause: a slow handler makes the rate
// read low, so a pause is long (~17 s: 128 KiB, a sixteenth of the
// buffer, at one datagram per 100 ms); a datagram sent meanwhile waits
// for it, and shutdown must not, but must still read that datagram.
func TestListener_BatchWaitCloseEndsPause(t *testing.T) {
	conn, got, cancel, done := runUnderWay(t, Config{BatchWait: time.Hour, ReceiveBuffer: 1 << 20}, 100*time.Millisecond)
	select {
	case <-got:
	case <-time.After(failAfter):
		t.Fatal("datagram not received")
	}
	if _, err := conn.Write([]byte("during the pause")); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		t.Fatalf("received %q at once: the reader did not pause after a short read", p)
	case <-time.After(100 * time.Millisecond):
	}
	cancel()
	waitStopped(t, done, "after cancel during a pause")
	// What the pause left queued was read before Run returned.
	select {
	case p := <-got:
		if p != "during the pause" {
			t.Fatalf("received %q, want %q", p, "during the pause")
		}
	default:
		t.Fatal("the datagram queued during the pause was lost at shutdown")
	}
}

// TestListener_BatchWaitNotPolled: with BatchWait, the socket a reader
// reads is in no epoll set (the runtime poller's included), or every
// datagram arriving during a pause would wake the process.
func TestListener_BatchWaitNotPolled(t *testing.T) {
	l, err := Listen(Config{Addr: "127.0.0.1:0", Readers: 2, BatchWait: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	watched := epollWatched(t)
	for _, r := range l.readers {
		if r.fd < 0 {
			t.Fatal("a reader with BatchWait reads through the poller")
		}
		if ino := inode(t, r.fd); watched[ino] {
			t.Fatalf("a reader's socket (inode %x) is in an epoll set", ino)
		}
	}
	// The poller does watch the sockets of readers without BatchWait: the
	// check above can see a socket in it.
	l0, err := Listen(Config{Addr: "127.0.0.1:0", Readers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer l0.Close()
	var fd int
	if err := l0.readers[0].rc.Control(func(f uintptr) { fd = int(f) }); err != nil {
		t.Fatal(err)
	}
	if ino := inode(t, fd); !epollWatched(t)[ino] {
		t.Fatalf("a polled reader's socket (inode %x) is in no epoll set", ino)
	}
}

// epollWatched returns the inodes of the files in the process's epoll
// sets, from /proc/self/fdinfo.
func epollWatched(t *testing.T) map[uint64]bool {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	watched := map[uint64]bool{}
	for _, e := range fds {
		if link, _ := os.Readlink("/proc/self/fd/" + e.Name()); link != "anon_inode:[eventpoll]" {
			continue
		}
		info, err := os.ReadFile("/proc/self/fdinfo/" + e.Name())
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(string(info)) {
			for _, f := range strings.Fields(line) {
				if hex, ok := strings.CutPrefix(f, "ino:"); ok && strings.HasPrefix(line, "tfd:") {
					ino, err := strconv.ParseUint(hex, 16, 64)
					if err != nil {
						t.Fatalf("fdinfo %q: %v", line, err)
					}
					watched[ino] = true
				}
			}
		}
	}
	return watched
}

func inode(t *testing.T, fd int) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// waitStopped fails unless Run, whose result done carries, returns nil
// within failAfter of a cancel.
func waitStopped(t *testing.T, done <-chan error, when string) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run() = %v, want nil on cancel", err)
		}
	case <-time.After(failAfter):
		t.Fatal("Run did not return " + when)
	}
}

func TestServerOptions_Validate(t *testing.T) {
	f := func(wait float64, want time.Duration) {
		t.Helper()
		o := DefaultServerOptions("127.0.0.1:0", false)
		o.BatchWait = wait
		if err := o.Validate(); err != nil {
			t.Fatalf("batch_wait %v: %v", wait, err)
		}
		if got := o.Config().BatchWait; got != want {
			t.Fatalf("batch_wait %v: Config().BatchWait = %v, want %v", wait, got, want)
		}
	}
	f(DefaultServerOptions("", false).BatchWait, 300*time.Millisecond)
	f(0, 0)
	f(0.002, 2*time.Millisecond)
	f(0.0005, 500*time.Microsecond)
	f(0.1, 100*time.Millisecond)
	f(0.5, 500*time.Millisecond)
}

// TestServerOptions_Socket: the unix socket's options reach the Config;
// with local_socket, local_host may be empty.
func TestServerOptions_Socket(t *testing.T) {
	f := func(host, socket, mode string, origin bool, want Config) {
		t.Helper()
		o := DefaultServerOptions(host, false)
		o.LocalSocket, o.OriginDetection = socket, origin
		if mode != "" {
			o.SocketMode = mode
		}
		if err := o.Validate(); err != nil {
			t.Fatalf("%q %q %q %v: %v", host, socket, mode, origin, err)
		}
		c := o.Config()
		if c.Addr != want.Addr || c.Socket != want.Socket || c.SocketMode != want.SocketMode || c.OriginDetection != want.OriginDetection {
			t.Fatalf("Config() = %+v, want %+v", c, want)
		}
	}
	f("127.0.0.1:8125", "", "", false, Config{Addr: "127.0.0.1:8125", SocketMode: 0o660})
	f("", "/run/bucky3/statsd.sock", "", true, Config{Socket: "/run/bucky3/statsd.sock", SocketMode: 0o660, OriginDetection: true})
	f(":8125", "/s.sock", "600", false, Config{Addr: ":8125", Socket: "/s.sock", SocketMode: 0o600})
	f("", "@abstract", "0777", false, Config{Socket: "@abstract", SocketMode: 0o777})
}

func TestServerOptions_Validate_Failure(t *testing.T) {
	f := func(option string, change func(o *ServerOptions)) {
		t.Helper()
		o := DefaultServerOptions("127.0.0.1:0", false)
		change(&o)
		if err := o.Validate(); err == nil || !strings.HasPrefix(err.Error(), option+":") {
			t.Fatalf("Validate() = %v, want an error naming %s", err, option)
		}
	}
	f("local_host", func(o *ServerOptions) { o.LocalHost = "" })
	f("socket_mode", func(o *ServerOptions) { o.SocketMode = "0668" })
	f("socket_mode", func(o *ServerOptions) { o.SocketMode = "1777" })
	f("socket_mode", func(o *ServerOptions) { o.SocketMode = "0" })
	f("socket_mode", func(o *ServerOptions) { o.SocketMode = "rw-rw----" })
	f("origin_detection", func(o *ServerOptions) { o.OriginDetection = true })
	f("batch_size", func(o *ServerOptions) { o.BatchSize = 0 })
	f("batch_wait", func(o *ServerOptions) { o.BatchWait = -0.001 })
	f("batch_wait", func(o *ServerOptions) { o.BatchWait = 0.51 })
	f("batch_wait", func(o *ServerOptions) { o.BatchWait = math.NaN() })
	f("batch_wait", func(o *ServerOptions) { o.BatchWait = math.Inf(1) })
}

// A handler that panics loses only the datagram in flight: the others of
// its batch and the following batches are delivered, the count is exact
// and the log, at most one line a second, quotes the datagram's start.
func TestListener_HandlerPanics(t *testing.T) {
	for _, wait := range []time.Duration{0, time.Millisecond} {
		t.Run(fmt.Sprintf("wait=%v", wait), func(t *testing.T) {
			const total, every = 200, 7 // every 7th datagram panics: several per batch
			var logs bytes.Buffer
			var logMu sync.Mutex
			log := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, nil))
			release := make(chan struct{})
			var delivered []string // the reader's goroutine only, read after Packets
			var first atomic.Bool
			cfg := Config{Addr: "127.0.0.1:0", Readers: 1, BatchSize: 16, BatchWait: wait, Log: log}
			began := time.Now()
			l := start(t, cfg, func(int) func([]byte) {
				return func(p []byte) {
					if first.CompareAndSwap(false, true) {
						<-release // let the rest queue up, so that reads return full batches
					}
					if bytes.HasPrefix(p, []byte("panic")) {
						var m map[string]int
						m[string(p)]++ //nolint:staticcheck // a nil map write: a real runtime panic
					}
					delivered = append(delivered, string(p))
				}
			})
			conn := dial(t, l.Addr())
			want := 0
			for i := range total {
				msg := fmt.Sprintf("ok %d", i)
				if i%every == 3 {
					msg = fmt.Sprintf("panic %d\n\"quoted\"\x00 %s", i, strings.Repeat("x", 100))
				} else {
					want++
				}
				write(t, conn, msg)
				if i == 0 {
					waitFor(t, "the first datagram", first.Load)
				}
			}
			close(release)
			waitFor(t, "every datagram", func() bool { return l.Packets() == total })
			if got := l.Panics(); got != total-uint64(want) {
				t.Fatalf("Panics = %d, want %d", got, total-want)
			}
			if len(delivered) != want {
				t.Fatalf("delivered %d datagrams, want %d", len(delivered), want)
			}
			for _, d := range delivered {
				if !strings.HasPrefix(d, "ok ") {
					t.Fatalf("delivered %q", d)
				}
			}
			logMu.Lock()
			out := logs.String()
			logMu.Unlock()
			lines := strings.Count(out, "udp: datagram handler panicked")
			if maxLines := 1 + int(time.Since(began)/time.Second); lines < 1 || lines > maxLines {
				t.Fatalf("%d panic log lines, want 1 to %d:\n%s", lines, maxLines, out)
			}
			quoted := strconv.Quote(("panic 3\n\"quoted\"\x00 " + strings.Repeat("x", 100))[:64])
			if !strings.Contains(out, "datagram="+strconv.Quote(quoted)) || !strings.Contains(out, "assignment to entry in nil map") {
				t.Fatalf("the log does not quote the datagram's first 64 bytes (%s) and the panic:\n%s", quoted, out)
			}
		})
	}
}

// lockedWriter serialises the writes of a log shared by readers and test.
type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}
