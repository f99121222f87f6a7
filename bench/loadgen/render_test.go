package main

import (
	"fmt"
	"slices"
	"testing"

	"github.com/bucky3/bucky3/parse"
)

// parsedTypes maps the parser's types to indexes of types.
var parsedTypes = map[parse.Type]string{
	parse.Counter: "c", parse.Timer: "ms", parse.Gauge: "g",
	parse.Set: "s", parse.Histogram: "h", parse.Distribution: "d",
}

// checkRing parses every packet of r back with the project's parser and
// fails unless every line is accepted with the expected shape and the
// ring's running totals match what was parsed.
func checkRing(t *testing.T, r *ring, sh shape) {
	t.Helper()
	var p parse.StatsD
	var byType [len(typeNames)]uint64
	var counterSum uint64
	for i := range r.packets() {
		pkt := r.packet(i)
		samples := p.Parse(slices.Clone(pkt), 0)
		if int(p.Lines) != sh.linesPerPacket || len(samples) != sh.linesPerPacket || p.Skipped != 0 || p.BareTags != 0 {
			t.Fatalf("packet %d %q: %d lines, %d samples, rejected %v, skipped %d", i, pkt, p.Lines, len(samples), p.Rejected, p.Skipped)
		}
		for _, s := range samples {
			typ := parsedTypes[s.Type]
			if want := fmt.Sprintf("lg_%s_", typ); string(s.Name[:len(want)]) != want {
				t.Fatalf("packet %d: name %q does not carry its type %s", i, s.Name, typ)
			}
			if len(s.Tags) != sh.tags || s.Rate != 1 {
				t.Fatalf("packet %d: %q has %d tags, rate %v; want %d tags, rate 1", i, s.Name, len(s.Tags), s.Rate, sh.tags)
			}
			byType[typeIndex(typ)]++
			if typ == "c" {
				if len(s.Values) != 1 || s.Values[0] != 1 {
					t.Fatalf("packet %d: counter %q values %v, want [1]", i, s.Name, s.Values)
				}
				counterSum++
			}
		}
	}
	var tl tally
	r.addTo(&tl, 0, uint64(r.packets()))
	if tl.byType != byType || tl.counterSum != counterSum || tl.lines != uint64(r.packets()*sh.linesPerPacket) {
		t.Fatalf("ring totals %v sum %d, parsed %v sum %d", tl.byType, tl.counterSum, byType, counterSum)
	}
}

func TestRender_ParsesBack(t *testing.T) {
	f := func(mix string, series, lpp, tags int) {
		t.Helper()
		w, err := parseMix(mix)
		if err != nil {
			t.Fatal(err)
		}
		sh := shape{series: series, linesPerPacket: lpp, tags: tags, cycle: schedule(w)}
		r, err := render(sh)
		if err != nil {
			t.Fatal(err)
		}
		checkRing(t, r, sh)
	}
	f("c=50,ms=30,g=15,s=5", 10000, 20, 3)
	f("c=50,ms=30,g=15,s=5", 10000, 1, 3)
	f("c=50,ms=30,g=15,s=5", 7, 3, 0) // ring of lcm(7, 3) = 21 lines
	f("c=1,ms=1,g=1,s=1,h=1,d=1", 600, 40, 12)
	f("g=1", 1, 1, 64)
}

func TestRender_Failure(t *testing.T) {
	f := func(sh shape) {
		t.Helper()
		if _, err := render(sh); err == nil {
			t.Fatalf("render(%+v) accepted", sh)
		}
	}
	c := schedule([]int{1, 0, 0, 0, 0, 0})
	f(shape{series: 0, linesPerPacket: 1, cycle: c})
	f(shape{series: 1, linesPerPacket: 0, cycle: c})
	f(shape{series: 10, linesPerPacket: 2000, tags: 8, cycle: c}) // above 64 KiB
}

func TestSchedule_ExactMix(t *testing.T) {
	f := func(mix string, want map[string]int) {
		t.Helper()
		w, err := parseMix(mix)
		if err != nil {
			t.Fatal(err)
		}
		cycle := schedule(w)
		got := map[string]int{}
		for _, i := range cycle {
			got[types[i]]++
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: cycle %v counts %v, want %v", mix, cycle, got, want)
		}
	}
	f("c=50,ms=30,g=15,s=5", map[string]int{"c": 10, "ms": 6, "g": 3, "s": 1})
	f("c=1", map[string]int{"c": 1})
	f("c=3,c=1,ms=0,g=2", map[string]int{"c": 2, "g": 1})
	f("h=7,d=7", map[string]int{"h": 1, "d": 1})
}

// The mix of a whole ring is exact when series is a multiple of the cycle.
func TestRender_ExactMixOverRing(t *testing.T) {
	w, _ := parseMix("c=50,ms=30,g=15,s=5")
	r, err := render(shape{series: 2000, linesPerPacket: 20, tags: 3, cycle: schedule(w)})
	if err != nil {
		t.Fatal(err)
	}
	var tl tally
	r.addTo(&tl, 0, uint64(r.packets()))
	want := [len(typeNames)]uint64{1000, 600, 300, 100}
	if tl.byType != want || tl.counterSum != 1000 {
		t.Fatalf("ring of 2000 lines: %v, counter sum %d; want %v, 1000", tl.byType, tl.counterSum, want)
	}
}

func TestParseMix_Failure(t *testing.T) {
	f := func(mix string) {
		t.Helper()
		if w, err := parseMix(mix); err == nil {
			t.Fatalf("parseMix(%q) = %v, want an error", mix, w)
		}
	}
	f("")
	f("c")
	f("x=1")
	f("c=-1")
	f("c=0,g=0")
	f("c=1.5")
}

// addTo over any span, wrapping or not, equals counting packet by packet.
func TestAddTo_Wraps(t *testing.T) {
	w, _ := parseMix("c=50,ms=30,g=15,s=5")
	r, err := render(shape{series: 37, linesPerPacket: 4, tags: 1, cycle: schedule(w)})
	if err != nil {
		t.Fatal(err)
	}
	P := r.packets()
	for _, start := range []int{0, 1, P / 2, P - 1} {
		for _, n := range []uint64{0, 1, uint64(P) - 1, uint64(P), uint64(P) + 1, 3*uint64(P) + 5} {
			var got, want tally
			r.addTo(&got, start, n)
			for i := range n {
				r.addTo(&want, (start+int(i))%P, 1)
			}
			if got != want {
				t.Fatalf("addTo(%d, %d) = %+v, packet by packet %+v", start, n, got, want)
			}
		}
	}
}

func FuzzRender(f *testing.F) {
	f.Add("c=50,ms=30,g=15,s=5", uint16(100), uint8(20), uint8(3))
	f.Add("c=1,ms=1,g=1,s=1,h=1,d=1", uint16(7), uint8(3), uint8(0))
	f.Add("s=2,d=9", uint16(1), uint8(1), uint8(64))
	f.Fuzz(func(t *testing.T, mix string, series uint16, lpp, tags uint8) {
		w, err := parseMix(mix)
		if err != nil {
			return
		}
		sh := shape{series: int(series%500) + 1, linesPerPacket: int(lpp%50) + 1, tags: int(tags % 65), cycle: schedule(w)}
		r, err := render(sh)
		if err != nil {
			return // a datagram above 64 KiB
		}
		checkRing(t, r, sh)
	})
}
