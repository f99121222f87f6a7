package journal

import (
	"slices"
	"strings"
	"testing"
)

// FuzzStitch feeds lines to the stitcher. Each input line is one entry:
// its first byte picks the stream (three of them) and the time since the
// previous entry (0 to 1260 ms, so both sides of the 1 s limits occur),
// the rest is the text. Invariants: no panic, and every line comes out
// exactly once, in order within its stream.
func FuzzStitch(f *testing.F) {
	for _, seed := range [][]string{pythonTrace1, pythonChained, javaTrace1, nodeUncaught, nodeLogged} {
		f.Add([]byte("\x00" + strings.Join(seed, "\n\x00")))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := newStitcher()
		var out []entry
		in := map[string][]string{}
		var now int64
		for _, l := range strings.Split(string(data), "\n") {
			if l == "" {
				continue
			}
			pid := string('a' + rune(l[0]%3))
			now += int64(l[0]/3%64) * 20
			text := l[1:]
			in[pid] = append(in[pid], text)
			out = s.flushIdle(out, now)
			out = s.add(out, entry{origin: origin{pid: pid}, message: text, time: now, lines: 1}, now)
			if pending(s) > maxTraceLines {
				t.Fatalf("stream holds %d lines", pending(s))
			}
		}
		out = s.flushAll(out)
		if pending(s) != 0 {
			t.Fatalf("%d lines held after flushAll", pending(s))
		}
		got := map[string][]string{}
		for _, e := range out {
			parts := strings.Split(e.message, "\n")
			if len(parts) != e.lines {
				t.Fatalf("entry of %d lines holds %d: %q", e.lines, len(parts), e.message)
			}
			got[e.origin.pid] = append(got[e.origin.pid], parts...)
		}
		for pid, want := range in {
			if !slices.Equal(got[pid], want) {
				t.Fatalf("stream %s: got %q, want %q", pid, got[pid], want)
			}
		}
	})
}
