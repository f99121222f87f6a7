//go:build !race

package parse

import "testing"

func TestStatsD_ParseAllocs(t *testing.T) {
	packet := taggedDatagram(20)
	var p StatsD
	if n := len(p.Parse(packet, now)); n != 20 {
		t.Fatalf("warm-up parsed %d samples, want 20", n)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if len(p.Parse(packet, now)) != 20 {
			t.Fatal("lost samples")
		}
	})
	if allocs != 0 {
		t.Fatalf("Parse allocates %v times per datagram", allocs)
	}
}

// TestStatsD_LineAllocs runs the calls a statsd reader makes per line:
// NextLine, AppendShape and ParseValues for a known shape, Reset and
// ParseLine for a new one.
func TestStatsD_LineAllocs(t *testing.T) {
	packet := taggedDatagram(20)
	var p StatsD
	var s Sample
	shape := make([]byte, 0, 256)
	each := func() {
		p.Reset()
		for line, rest := NextLine(packet); len(line) > 0; line, rest = NextLine(rest) {
			_, values, ok := AppendShape(shape[:0], line)
			if !ok {
				t.Fatalf("%q: no shape", line)
			}
			p.Reset()
			if err := p.ParseLine(line, now, &s); err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			if err := p.ParseValues(s.Type, values, &s); err != nil {
				t.Fatalf("%q: %v", line, err)
			}
		}
	}
	each()
	if allocs := testing.AllocsPerRun(100, each); allocs != 0 {
		t.Fatalf("the per-line calls allocate %v times per datagram", allocs)
	}
}

func TestStatsD_ParseAllocs_Escaped(t *testing.T) {
	packet := []byte("a:1|c|#k=x\\,y,timestamp=1700000000|c:abc\nb.c:2|g|#bare,bucket=b.x")
	p := StatsD{NameRule: RuleSanitize}
	p.Parse(packet, now)
	allocs := testing.AllocsPerRun(100, func() {
		if len(p.Parse(packet, now)) != 2 {
			t.Fatal("lost samples")
		}
	})
	if allocs != 0 {
		t.Fatalf("Parse allocates %v times per datagram", allocs)
	}
}

// Names and keys outside ASCII take RuleStatsD's rune check, which must
// not allocate either.
func TestStatsD_ParseAllocs_StatsDRule(t *testing.T) {
	packet := []byte("api.requests-5xx:1|c|#k.é=v\\,w\nwörld/x:2|g|#bucket=b")
	var p StatsD
	p.Parse(packet, now)
	allocs := testing.AllocsPerRun(100, func() {
		if len(p.Parse(packet, now)) != 2 {
			t.Fatal("lost samples")
		}
	})
	if allocs != 0 {
		t.Fatalf("Parse allocates %v times per datagram", allocs)
	}
}

func TestJSON_ParseAllocs(t *testing.T) {
	packet := jsonDatagram(20)
	var j JSON
	if n := len(j.Parse(packet, now)); n != 20 {
		t.Fatalf("warm-up parsed %d objects, want 20", n)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if len(j.Parse(packet, now)) != 20 {
			t.Fatal("lost objects")
		}
	})
	if allocs != 0 {
		t.Fatalf("Parse allocates %v times per datagram", allocs)
	}
}
