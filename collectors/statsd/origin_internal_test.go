package statsd

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/bucky3/bucky3/aggregate"
	"github.com/bucky3/bucky3/engine"
)

func TestAppendOrigin(t *testing.T) {
	f := func(packet, want string) {
		t.Helper()
		if got := string(appendOrigin([]byte("kept"), []byte(packet), "cid")); got != "kept"+want {
			t.Fatalf("appendOrigin(%q) = %q, want %q", packet, got[4:], want)
		}
	}
	f("", "")
	f("a:1|c", "a:1|c|c:cid\n")
	f(" a:1|ms|@0.5|#k:v \r\n\n", "a:1|ms|c:cid|@0.5|#k:v\n")
	f("a:1:2|d|#k:v|c:own", "a:1:2|d|c:cid|#k:v|c:own\n")
	f("_e{1,1}:a|b\n_sc|a|0\nsc|a|0\nbad\nbad:1", "_e{1,1}:a|b\n_sc|a|0\nsc|a|0\nbad\nbad:1\n")
}

// A reader handling datagrams with their origin tags each line with the
// container: the same line from two containers feeds two series, a
// line's own |c: field or container_id tag wins, and a datagram without
// a container (UDP, a host process) is handled as handle does.
func TestReader_Origin(t *testing.T) {
	o := DefaultOptions()
	srv, err := New(engine.Module{Name: "t", Log: slog.New(slog.DiscardHandler), Stats: engine.NewStats()}, o)
	if err != nil {
		t.Fatal(err)
	}
	table, err := aggregate.New(tableOptions(srv.o))
	if err != nil {
		t.Fatal(err)
	}
	handle := (&readerSet{server: srv, table: table}).originHandler(0)
	a, b := strings.Repeat("a", 64), strings.Repeat("b", 64)
	datagram := "hits:1|c\nhits:10|c|c:own\nhits:100|c|#container_id:tagged\n_e{1,1}:x|y"
	for _, cid := range []string{a, a, a, b, ""} {
		handle([]byte(datagram), cid) // the memo serves the repeats
	}
	got := map[string]float64{}
	for _, m := range table.Flush(time.Now()) {
		cid, _ := m.Tag("container_id")
		v, _ := m.Field("count")
		got[cid] = v.Num
	}
	want := map[string]float64{a: 3, b: 1, "": 1, "own": 50, "tagged": 500}
	if len(got) != len(want) {
		t.Fatalf("series by container %v, want %v", got, want)
	}
	for cid, n := range want {
		if got[cid] != n {
			t.Fatalf("series by container %v, want %v", got, want)
		}
	}
	if n := srv.counters.lines.Load(); n != 5*4 {
		t.Fatalf("lines_received %d, want 20", n)
	}
	if n := srv.counters.skipped.Load(); n != 5 {
		t.Fatalf("lines_skipped %d, want 5 (the events)", n)
	}
}

// The one-stripe rule counts every writer of the table.
func TestWriters(t *testing.T) {
	f := func(configure func(*Options), want int) {
		t.Helper()
		o := DefaultOptions()
		configure(&o)
		if got := writers(o); got != want {
			t.Fatalf("writers = %d, want %d", got, want)
		}
	}
	f(func(o *Options) { o.Readers = 1 }, 1)
	f(func(o *Options) { o.Readers, o.LocalSocket = 1, "/s" }, 2)
	f(func(o *Options) { o.Readers, o.LocalHost, o.LocalSocket = 1, "", "/s" }, 1)
	f(func(o *Options) { o.Readers, o.LocalTCP, o.MaxConnections = 2, ":0", 3 }, 5)
}
