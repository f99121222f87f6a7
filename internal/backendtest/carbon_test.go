package backendtest

import (
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// sendLines writes lines to carbon on one connection and returns once carbon
// has read them all: it half-closes the connection and waits for carbon to
// close its side, which it does after the last line.
func sendLines(t *testing.T, addr string, lines ...string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, l := range lines {
		if _, err := io.WriteString(conn, l+"\n"); err != nil {
			t.Fatal(err)
		}
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if n, err := io.Copy(io.Discard, conn); err != nil || n != 0 {
		t.Fatalf("waiting for carbon to close: read %d bytes, %v", n, err)
	}
}

// A stopped carbon refuses connections and keeps what it wrote; started
// again, it serves the same port and whisper tree.
func TestCarbon_StopStart(t *testing.T) {
	t.Parallel()
	c := StartCarbon(t)
	t0 := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	line := func(i int) string { return fmt.Sprintf("backendtest.restart %d %d", i, t0.Unix()+int64(i)) }
	points := func(want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			p := c.Fetch(t, "backendtest.restart", t0.Add(-time.Second), t0.Add(time.Minute))
			if len(p) == want {
				for i, pt := range p {
					if pt.Value != float64(i) || pt.Time.Unix() != t0.Unix()+int64(i) {
						t.Fatalf("point %d is %v", i, pt)
					}
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d points, want %d", len(p), want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	var lines []string
	for i := range 20 {
		lines = append(lines, line(i))
	}
	sendLines(t, c.Addr, lines...)
	points(20)
	c.Stop(t)
	if conn, err := net.Dial("tcp", c.Addr); err == nil {
		conn.Close()
		t.Fatal("stopped carbon accepts connections")
	}
	points(20)
	c.Start(t)
	sendLines(t, c.Addr, line(20))
	points(21)
}
