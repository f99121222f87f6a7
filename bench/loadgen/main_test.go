package main

import (
	"bytes"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/bucky3/bucky3/parse"
)

// received is what a real UDP socket got, parsed with the project's parser.
type received struct {
	packets, counterSum uint64
	byType              map[string]uint64
}

// listen binds a UDP socket on 127.0.0.1 with a receive buffer large
// enough that a short burst on loopback is not dropped.
func listen(t *testing.T) *net.UDPConn {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.SetReadBuffer(8 << 20); err != nil {
		t.Fatal(err)
	}
	return conn
}

// drain reads until want packets arrived or the socket stays quiet for a
// second (then the counts fall short and the test fails on them).
func drain(t *testing.T, conn *net.UDPConn, want uint64) received {
	t.Helper()
	got := received{byType: map[string]uint64{}}
	var p parse.StatsD
	buf := make([]byte, 65536)
	for got.packets < want {
		if err := conn.SetReadDeadline(time.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		n, err := conn.Read(buf)
		if err != nil {
			break
		}
		got.packets++
		samples := p.Parse(buf[:n], 0)
		if int(p.Lines) != len(samples) {
			t.Fatalf("%d lines rejected in %q", int(p.Lines)-len(samples), buf[:n])
		}
		for _, s := range samples {
			got.byType[parsedTypes[s.Type]]++
			if s.Type == parse.Counter {
				got.counterSum += uint64(s.Values[0])
			}
		}
	}
	return got
}

// A count-limited run through a real socket: what the report says was
// sent is exactly what arrived, packet for packet and line for line.
func TestRun_CountsExactly(t *testing.T) {
	f := func(flags ...string) {
		t.Helper()
		conn := listen(t)
		args := append([]string{"-target", conn.LocalAddr().String()}, flags...)
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 0 {
			t.Fatalf("loadgen %s: exit %d: %s", strings.Join(flags, " "), code, stderr.String())
		}
		var rep report
		if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
			t.Fatalf("report %q: %v", stdout.String(), err)
		}
		got := drain(t, conn, rep.Packets)
		if rep.SendErrors != 0 || got.packets != rep.Packets || got.counterSum != rep.CounterSum ||
			rep.Lines != rep.Packets*uint64(rep.LinesPerPacket) {
			t.Fatalf("%s: received %+v, report %+v", strings.Join(flags, " "), got, rep)
		}
		var lines, timers uint64
		for typ, n := range rep.LinesByType {
			lines += n
			if typ == "ms" {
				timers += n
			}
			if got.byType[typ] != n {
				t.Fatalf("%s: %s lines received %d, reported %d", strings.Join(flags, " "), typ, got.byType[typ], n)
			}
		}
		if lines != rep.Lines || timers != rep.TimerLines || rep.CounterSum != rep.LinesByType["c"] {
			t.Fatalf("%s: report does not add up: %+v", strings.Join(flags, " "), rep)
		}
	}
	f("-count", "3000", "-lpp", "20", "-series", "200", "-senders", "3")
	f("-count", "1001", "-lpp", "7", "-series", "40", "-mmsg=false", "-senders", "2")
	f("-count", "500", "-lpp", "1", "-series", "20", "-rate", "50000", "-batch", "8")
	f("-count", "40", "-lpp", "1", "-series", "20", "-senders", "64") // more senders than packets for some
}

func TestRun_Failure(t *testing.T) {
	f := func(args ...string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code == 0 || stdout.Len() != 0 {
			t.Fatalf("loadgen %s: exit %d, stdout %q", strings.Join(args, " "), code, stdout.String())
		}
	}
	f()                                       // neither -count nor -duration
	f("-count", "10", "-mix", "x=1")          // bad mix
	f("-count", "10", "-senders", "0")        // no senders
	f("-count", "10", "-target", "nowhere:x") // bad address
	f("-no-such-flag")
}
