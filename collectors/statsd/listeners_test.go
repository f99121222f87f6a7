package statsd_test

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bucky3/bucky3/collectors/statsd"
	"github.com/bucky3/bucky3/engine"
)

// udpSockets returns the inodes of this process's UDP sockets: its
// descriptors' sockets that /proc/net/udp and udp6 list.
func udpSockets(t *testing.T) map[string]bool {
	t.Helper()
	udp := map[string]bool{}
	for _, table := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		f, err := os.Open(table)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if fields := strings.Fields(sc.Text()); len(fields) > 9 && fields[0] != "sl" {
				udp[fields[9]] = true
			}
		}
		f.Close()
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	mine := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err != nil {
			continue // the directory's own descriptor, gone
		}
		if inode, ok := strings.CutPrefix(link, "socket:["); ok && udp[strings.TrimSuffix(inode, "]")] {
			mine[strings.TrimSuffix(inode, "]")] = true
		}
	}
	return mine
}

func counts(t *testing.T, stats *engine.Stats, want map[string]uint64) {
	t.Helper()
	for name, n := range want {
		if got := stats.Counter(name).Load(); got != n {
			t.Errorf("%s = %d, want %d", name, got, n)
		}
	}
}

// waitFor polls cond, which reads counters published every second.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 10 s", what)
		}
	}
}

// With local_host empty, statsd_server listens on the unix socket alone:
// no UDP socket, the file has socket_mode, every line sent is counted, and
// the file is gone after the stop.
func TestServer_UnixSocket(t *testing.T) {
	before := udpSockets(t)
	path := filepath.Join(t.TempDir(), "statsd.sock")
	r := start(t, func(o *statsd.Options) {
		o.LocalHost, o.LocalSocket, o.SocketMode = "", path, "0620"
	})
	if r.addrs.UDP != "" || r.addrs.Unix != path {
		t.Fatalf("addresses %+v, want the socket %s alone", r.addrs, path)
	}
	for inode := range udpSockets(t) {
		if !before[inode] {
			t.Fatalf("a UDP socket (inode %s) was opened with local_host empty", inode)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o620 {
		t.Fatalf("socket file mode %v, want a socket with 0620", fi.Mode())
	}
	conn, err := net.Dial("unixgram", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// More datagrams than the socket's queue holds: a blocking sender
	// waits instead of losing any.
	const datagrams, perDatagram = 500, 10
	datagram := strings.Repeat("unix_lines:1|c\n", perDatagram-1) + "unix_lines:2|c|#k:v"
	for range datagrams {
		if _, err := conn.Write([]byte(datagram)); err != nil {
			t.Fatal(err)
		}
	}
	r.waitLines(t, datagrams*perDatagram)
	ms := r.stop(t)
	if got := field(t, find(t, ms, "stats_counters", "name", "unix_lines", "k", ""), "count"); got != datagrams*(perDatagram-1) {
		t.Errorf("count = %v, want %d", got, datagrams*(perDatagram-1))
	}
	if got := field(t, find(t, ms, "stats_counters", "name", "unix_lines", "k", "v"), "count"); got != 2*datagrams {
		t.Errorf("tagged count = %v, want %d", got, 2*datagrams)
	}
	counts(t, r.stats, map[string]uint64{"packets_received": datagrams, "lines_received": datagrams * perDatagram, "lines_invalid": 0, "packets_dropped": 0})
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket file after the stop: %v, want it removed", err)
	}
}

// Over TCP, lines split across writes and spread over connections are
// counted once each; a line over max_packet_size is dropped and counted,
// and the lines after it on its connection arrive; a connection beyond
// max_connections is closed and counted.
func TestServer_TCP(t *testing.T) {
	r := start(t, func(o *statsd.Options) {
		o.LocalTCP, o.MaxConnections, o.MaxPacketSize = "127.0.0.1:0", 2, 512
	})
	if r.addrs.TCP == "" {
		t.Fatal("no TCP address")
	}
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", r.addrs.TCP)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	write := func(c net.Conn, s string) {
		t.Helper()
		if _, err := c.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	c1, c2 := dial(), dial()
	write(c1, "tcp_lines:1|c\ntcp_lines:")
	write(c2, "tcp_lines:10|c\n")
	r.waitLines(t, 2) // both connections hold their slots
	c3 := dial()
	if err := c3.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	n, err := c3.Read(make([]byte, 1))
	closed := errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || err != nil && strings.Contains(err.Error(), "reset")
	if n != 0 || !closed {
		t.Fatalf("third connection read %d, %v; want it closed", n, err)
	}
	write(c1, "2|c\n"+"tcp_long:1|c|#k:"+strings.Repeat("v", 600)+"\ntcp_lines:100|c\n")
	write(c2, "tcp_lines:1000|c")
	c2.Close() // its last line, unterminated, is delivered
	r.waitLines(t, 5)
	waitFor(t, "published connection counts", func() bool {
		return r.stats.Counter("connections_refused").Load() == 1 && r.stats.Counter("lines_dropped_too_long").Load() == 1
	})
	ms := r.stop(t)
	if got := field(t, find(t, ms, "stats_counters", "name", "tcp_lines"), "count"); got != 1113 {
		t.Errorf("count = %v, want 1113", got)
	}
	for _, m := range ms {
		if v, _ := m.Tag("name"); v == "tcp_long" {
			t.Errorf("the too long line was delivered: %+v", m)
		}
	}
	counts(t, r.stats, map[string]uint64{
		"lines_received": 5, "lines_invalid": 0, "lines_dropped_too_long": 1,
		"connections_accepted": 2, "connections_refused": 1, "connections_closed_idle": 0,
		"packets_dropped": 0, "panics": 0,
	})
}

// A statsd_server without TCP registers no connection counters: its self
// report stays as it was.
func TestServer_NoTCPCounters(t *testing.T) {
	stats := engine.NewStats()
	if _, err := statsd.New(engine.Module{Name: "s", Log: slog.New(slog.DiscardHandler), Stats: stats}, statsd.DefaultOptions()); err != nil {
		t.Fatal(err)
	}
	for _, v := range stats.Values() {
		if strings.HasPrefix(v.Name, "connections") || v.Name == "lines_dropped_too_long" || v.Name == "origin_lookups" {
			t.Errorf("counter %s registered without local_tcp or origin_detection", v.Name)
		}
	}
}

// The TCP and unix socket options decode from a statsd_server table.
func TestOptions_ListenerKeys(t *testing.T) {
	var got statsd.Options
	types := []engine.Type{engine.SourceType("statsd_server", statsd.DefaultOptions,
		func(m engine.Module, o statsd.Options) (*statsd.Server, error) {
			got = o
			return statsd.New(m, o)
		})}
	doc := `[s]
module_type = "statsd_server"
local_host = ""
local_socket = "/run/bucky3/statsd.sock"
socket_mode = "0666"
origin_detection = true
local_tcp = "127.0.0.1:8125"
max_connections = 16
idle_timeout = 60
`
	cfg, err := engine.Parse([]byte(doc), types, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := engine.NewAgent(cfg, io.Discard); err != nil {
		t.Fatal(err)
	}
	if got.LocalHost != "" || got.LocalSocket != "/run/bucky3/statsd.sock" || got.SocketMode != "0666" || !got.OriginDetection ||
		got.LocalTCP != "127.0.0.1:8125" || got.MaxConnections != 16 || got.IdleTimeout != 60 {
		t.Fatalf("decoded %+v %+v", got.ServerOptions, got.TCPOptions)
	}
	if d := statsd.DefaultOptions(); d.LocalTCP != "" || d.MaxConnections != 256 || d.IdleTimeout != 300 || d.LocalSocket != "" || d.SocketMode != "0660" {
		t.Fatalf("defaults %+v %+v", d.ServerOptions, d.TCPOptions)
	}
}
