package journal

import (
	"slices"
	"strings"
	"testing"
)

// Real traces, one journal entry per line.
var (
	pythonTrace1 = []string{
		"Traceback (most recent call last):",
		`  File "/srv/app/main.py", line 42, in <module>`,
		"    main()",
		`  File "/srv/app/main.py", line 38, in main`,
		"    handle(request)",
		`  File "/srv/app/handlers.py", line 12, in handle`,
		`    raise ValueError(f"bad id {request.id!r}")`,
		"ValueError: bad id 'x'",
	}
	pythonTrace311 = []string{
		"Traceback (most recent call last):",
		`  File "/srv/app/calc.py", line 3, in <module>`,
		"    print(1 / zero)",
		"          ~~^~~~~~",
		"ZeroDivisionError: division by zero",
	}
	pythonChained = []string{
		"Traceback (most recent call last):",
		`  File "/srv/app/db.py", line 10, in load`,
		"    return cache[key]",
		"           ~~~~~^^^^^",
		"KeyError: 'user:1'",
		"",
		"During handling of the above exception, another exception occurred:",
		"",
		"Traceback (most recent call last):",
		`  File "/srv/app/db.py", line 12, in load`,
		"    return fetch(key)",
		`  File "/srv/app/db.py", line 20, in fetch`,
		`    raise ConnectionError("db down")`,
		"ConnectionError: db down",
	}
	pythonCause = []string{
		"Traceback (most recent call last):",
		`  File "/srv/app/cfg.py", line 5, in parse`,
		"    return int(v)",
		"ValueError: invalid literal for int() with base 10: 'x'",
		"",
		"The above exception was the direct cause of the following exception:",
		"",
		"Traceback (most recent call last):",
		`  File "/srv/app/cfg.py", line 9, in <module>`,
		"    parse(\"x\")",
		`  File "/srv/app/cfg.py", line 7, in parse`,
		"    raise RuntimeError(\"bad config\") from e",
		"RuntimeError: bad config",
	}
	pythonRecursion = []string{
		"Traceback (most recent call last):",
		`  File "/srv/r.py", line 2, in f`,
		"    return f()",
		"  [Previous line repeated 996 more times]",
		"RecursionError: maximum recursion depth exceeded",
	}
	javaTrace1 = []string{
		`Exception in thread "main" java.lang.IllegalStateException: could not start`,
		"\tat com.example.App.start(App.java:42)",
		"\tat com.example.App.main(App.java:10)",
		"Caused by: java.io.FileNotFoundException: /etc/app.conf (No such file or directory)",
		"\tat java.base/java.io.FileInputStream.open0(Native Method)",
		"\tat java.base/java.io.FileInputStream.open(FileInputStream.java:216)",
		"\t... 2 more",
		"\tSuppressed: java.lang.RuntimeException: close failed",
		"\t\tat com.example.Res.close(Res.java:7)",
		"\t\t... 3 more",
	}
	javaLogged = []string{
		"com.example.billing.PaymentException: card declined",
		"    at com.example.billing.Gateway.charge(Gateway.java:88)",
		"    at com.example.billing.Service$Worker.run(Service.java:31)",
		"    at java.base/java.lang.Thread.run(Thread.java:833)",
	}
	nodeUncaught = []string{
		"/srv/app/index.js:10",
		"  foo.bar();",
		"      ^",
		"",
		"TypeError: foo.bar is not a function",
		"    at Object.<anonymous> (/srv/app/index.js:10:7)",
		"    at Module._compile (node:internal/modules/cjs/loader:1256:14)",
		"    at node:internal/main/run_main_module:23:47",
		"",
		"Node.js v20.11.0",
	}
	nodeLogged = []string{
		"Error: connect ECONNREFUSED 127.0.0.1:5432",
		"    at TCPConnectWrap.afterConnect [as oncomplete] (node:net:1555:16) {",
		"  errno: -111,",
		"  code: 'ECONNREFUSED',",
		"  syscall: 'connect'",
		"}",
	}
)

// line is one stitcher input: a stream (pid), a time (ms) and the text.
type line struct {
	pid  string
	time int64
	text string
}

// lines puts texts on stream pid, 10 ms apart from t.
func lines(pid string, t int64, texts ...string) []line {
	var out []line
	for i, s := range texts {
		out = append(out, line{pid, t + int64(i)*10, s})
	}
	return out
}

func cat(parts ...[]string) []string { return slices.Concat(parts...) }

func join(s []string) string { return strings.Join(s, "\n") }

// stitchLines feeds in, each line arriving at its own time, then flushes
// everything, and returns the messages in output order.
func stitchLines(s *stitcher, in []line) []entry {
	var out []entry
	for _, l := range in {
		out = s.add(out, entry{origin: origin{pid: l.pid}, message: l.text, time: l.time, lines: 1}, l.time)
	}
	return s.flushAll(out)
}

// pending returns how many lines s holds.
func pending(s *stitcher) int {
	n := 0
	for _, st := range s.streams {
		n += len(st.lines)
	}
	return n
}

func messagesOf(es []entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.message)
	}
	return out
}

func TestStitch_Success(t *testing.T) {
	f := func(in []string, want ...string) {
		t.Helper()
		got := messagesOf(stitchLines(newStitcher(), lines("1", 1000, in...)))
		if !slices.Equal(got, want) {
			t.Errorf("got\n%q\nwant\n%q", got, want)
		}
	}
	f(cat([]string{"starting"}, pythonTrace1, []string{"bye"}), "starting", join(pythonTrace1), "bye")
	f(pythonTrace311, join(pythonTrace311))
	f(pythonChained, join(pythonChained))
	f(pythonCause, join(pythonCause))
	f(pythonRecursion, join(pythonRecursion))
	f(cat(pythonTrace1, pythonTrace311), join(pythonTrace1), join(pythonTrace311))
	f(javaTrace1, join(javaTrace1))
	f(cat(javaLogged, []string{"recovered"}), join(javaLogged), "recovered")
	f(nodeUncaught, join(nodeUncaught))
	f(nodeLogged, join(nodeLogged))
	f(cat(nodeLogged, []string{"retrying"}), join(nodeLogged), "retrying")
	// The trace ends where the chaining sentence is missing; the blank
	// line and the next one go out on their own.
	f(cat(pythonTrace311, []string{"", "next"}), join(pythonTrace311), "", "next")
	// Node without its "Node.js v…" trailer, then an unrelated line.
	f(cat(nodeUncaught[:8], []string{"restarting"}), join(nodeUncaught[:8]), "restarting")
	// A trace cut short by the end of the input is flushed as it is.
	f(pythonTrace1[:4], join(pythonTrace1[:4]))
	f(cat(pythonTrace311, []string{""}), join(pythonTrace311)+"\n")
}

func TestStitch_FalseStart(t *testing.T) {
	f := func(in []string, want ...string) {
		t.Helper()
		got := messagesOf(stitchLines(newStitcher(), lines("1", 1000, in...)))
		if !slices.Equal(got, want) {
			t.Errorf("got\n%q\nwant\n%q", got, want)
		}
	}
	f([]string{"Traceback (most recent call last):", "just kidding"}, "Traceback (most recent call last):", "just kidding")
	f([]string{"java.lang.IllegalStateException: not a trace", "next"}, "java.lang.IllegalStateException: not a trace", "next")
	f([]string{"TypeError: x is not a function", "next"}, "TypeError: x is not a function", "next")
	f([]string{"/srv/a.js:1", "code", "not a caret", "next"}, "/srv/a.js:1", "code", "not a caret", "next")
	// The line that ends a false start may begin a real trace.
	f(cat([]string{"Traceback (most recent call last):"}, pythonTrace1), "Traceback (most recent call last):", join(pythonTrace1))
	f(cat([]string{"/srv/a.js:1"}, pythonTrace311), "/srv/a.js:1", join(pythonTrace311))
	f(cat([]string{"/srv/a.js:1", "code"}, javaLogged), "/srv/a.js:1", "code", join(javaLogged))
	// Java headers at the end of the input.
	f([]string{"java.lang.Error"}, "java.lang.Error")
	// Not trace starts at all.
	f([]string{"ValueError without colon space", "a.b: c", "/srv/a.go:10", "Traceback"}, "ValueError without colon space", "a.b: c", "/srv/a.go:10", "Traceback")
}

// TestStitch_Interleaved feeds two processes whose trace lines alternate.
func TestStitch_Interleaved(t *testing.T) {
	a := lines("1", 1000, pythonTrace1...)
	b := lines("2", 1005, javaTrace1...)
	var in []line
	for i := range max(len(a), len(b)) {
		if i < len(a) {
			in = append(in, a[i])
		}
		if i < len(b) {
			in = append(in, b[i])
		}
	}
	out := stitchLines(newStitcher(), in)
	got := map[string][]string{}
	for _, e := range out {
		got[e.origin.pid] = append(got[e.origin.pid], e.message)
	}
	if want := []string{join(pythonTrace1)}; !slices.Equal(got["1"], want) {
		t.Errorf("pid 1: got %q, want %q", got["1"], want)
	}
	if want := []string{join(javaTrace1)}; !slices.Equal(got["2"], want) {
		t.Errorf("pid 2: got %q, want %q", got["2"], want)
	}
}

// TestStitch_Time covers the 1 s limits: between the lines of a trace on
// entry time, and on idleness on the caller's clock.
func TestStitch_Time(t *testing.T) {
	s := newStitcher()
	add := func(out []entry, at int64, text string) []entry {
		return s.add(out, entry{origin: origin{pid: "1"}, message: text, time: at, lines: 1}, at)
	}
	// Over 1 s between two lines ends the trace as it is.
	var out []entry
	out = add(out, 0, pythonTrace1[0])
	out = add(out, 500, pythonTrace1[1])
	out = add(out, 1500, pythonTrace1[2])
	out = add(out, 2501, pythonTrace1[3])
	// The late line starts no trace: it passes straight through.
	if got, want := messagesOf(out), []string{join(pythonTrace1[:3]), pythonTrace1[3]}; !slices.Equal(got, want) {
		t.Fatalf("gap: got %q, want %q", got, want)
	}
	// A false start cut by the gap goes out line by line.
	out = add(nil, 2600, pythonTrace1[0])
	out = add(out, 4000, "later")
	if got, want := messagesOf(out), []string{pythonTrace1[0], "later"}; !slices.Equal(got, want) {
		t.Fatalf("false start gap: got %q, want %q", got, want)
	}

	// Idle: not before 1 s has passed since the last line arrived.
	s = newStitcher()
	out = nil
	for i, l := range pythonTrace311 {
		out = add(out, 10_000+int64(i), l)
	}
	if len(out) != 0 || pending(s) != len(pythonTrace311) {
		t.Fatalf("complete trace emitted before it is idle: %q", messagesOf(out))
	}
	last := int64(10_000 + len(pythonTrace311) - 1)
	if out = s.flushIdle(nil, last+stitchGap); len(out) != 0 {
		t.Fatalf("flushed after exactly 1 s: %q", messagesOf(out))
	}
	out = s.flushIdle(nil, last+stitchGap+1)
	if got, want := messagesOf(out), []string{join(pythonTrace311)}; !slices.Equal(got, want) {
		t.Fatalf("idle: got %q, want %q", got, want)
	}
	if pending(s) != 0 || len(s.streams) != 0 {
		t.Fatalf("streams left after idle flush: %d lines", pending(s))
	}
}

func TestStitch_Level(t *testing.T) {
	in := []entry{
		{message: javaLogged[0], level: levelWarning, facility: "daemon", time: 5, lines: 1},
		{message: javaLogged[1], level: levelError, time: 6, lines: 1},
		{message: javaLogged[2], level: levelInfo, time: 7, lines: 1},
	}
	f := func(s *stitcher, want level) {
		t.Helper()
		var out []entry
		for _, e := range in {
			out = s.add(out, e, e.time)
		}
		out = s.flushAll(out)
		if len(out) != 1 {
			t.Fatalf("got %d entries, want 1", len(out))
		}
		e := out[0]
		if e.level != want || e.facility != "daemon" || e.time != 5 || e.lines != 3 {
			t.Errorf("got level %v facility %q time %d lines %d, want %v daemon 5 3", e.level, e.facility, e.time, e.lines, want)
		}
	}
	f(newStitcher(), levelError)
	s := newStitcher()
	s.traceLevel, s.hasTraceLevel = levelCritical, true
	f(s, levelCritical)
}

// TestStitch_Bound feeds a runaway trace: the stream keeps its newest
// lines and emits the older ones, losing nothing.
func TestStitch_Bound(t *testing.T) {
	in := []string{"Traceback (most recent call last):"}
	for i := range 1200 {
		in = append(in, `  File "/srv/r.py", line `+string(rune('0'+i%10))+", in f")
	}
	in = append(in, "RecursionError: too deep")
	s := newStitcher()
	var out []entry
	for i, l := range lines("1", 0, in...) {
		// 1 ms apart: the whole trace is within the time limits.
		out = s.add(out, entry{origin: origin{pid: l.pid}, message: l.text, time: int64(i), lines: 1}, int64(i))
		if pending(s) > maxTraceLines {
			t.Fatalf("stream holds %d lines", pending(s))
		}
	}
	out = s.flushAll(out)
	// 1202 lines: 501 go out when the stream passes 1000, the other 701
	// when it ends.
	if len(out) != 2 {
		t.Fatalf("got %d entries, want 2", len(out))
	}
	if out[0].lines != maxTraceLines+1-keepTraceLines {
		t.Errorf("first part: %d lines, want %d", out[0].lines, maxTraceLines+1-keepTraceLines)
	}
	var got []string
	for _, e := range out {
		got = append(got, strings.Split(e.message, "\n")...)
	}
	if !slices.Equal(got, in) {
		t.Errorf("lines lost or reordered: got %d lines, want %d", len(got), len(in))
	}
}
