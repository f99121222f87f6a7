//go:build !race

package mapping

import (
	"testing"

	"github.com/bucky3/bucky3/parse"
)

func TestAllocs(t *testing.T) {
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { buf = AppendEscaped(buf[:0], "test.web-server.foo😱bar") }); n != 0 {
		t.Errorf("AppendEscaped: %v allocs/op, want 0", n)
	}
	m, err := Load("testdata/statsd_mapping.yml")
	if err != nil {
		t.Fatal(err)
	}
	// A glob rule without references needs nothing new.
	if n := testing.AllocsPerRun(100, func() { m.Map("debug.x", parse.Counter) }); n != 0 {
		t.Errorf("Map(drop): %v allocs/op, want 0", n)
	}
	// One for the label slice, one per expanded value.
	if n := testing.AllocsPerRun(100, func() { m.Map("checkout.http.GET.users.200.duration", parse.Timer) }); n > 4 {
		t.Errorf("Map(glob): %v allocs/op, want <= 4", n)
	}
}
