package journal

import (
	"slices"
	"strings"
)

// Stitching limits of SPEC §8.
const (
	// stitchGap is the longest gap, in milliseconds, between two lines of
	// one trace, measured on entry timestamps; it is also how long a
	// stream may stay idle, measured on the caller's clock, before its
	// trace is flushed as it is.
	stitchGap = 1000
	// maxTraceLines bounds a stream: past it, all but the newest
	// keepTraceLines lines are emitted as one event, so a runaway trace
	// costs bounded memory and loses no text.
	maxTraceLines  = 1000
	keepTraceLines = 500
)

// traceKind says which state machine a stream is running.
type traceKind uint8

const (
	noTrace traceKind = iota
	pythonTrace
	javaTrace
	nodeTrace
)

// verdict is a state machine's answer for one line.
type verdict uint8

const (
	// reject: the line is not part of the trace.
	reject verdict = iota
	// tentative: the line may be part of the trace; later lines decide.
	tentative
	// accept: the line is part of the trace, and so is every line
	// buffered before it.
	accept
)

// States of the machines. A machine starts in the state start returns.
const (
	pyHeader       = iota // after "Traceback (most recent call last):"
	pyFrames              // after a "  File" line or a code line
	pyException           // after the exception line
	pyBlank               // a blank line after the exception
	pyChained             // "During handling…" or "The above exception…"
	pyChainedBlank        // the blank line before the next Traceback

	javaHeader // after the exception line
	javaFrames // after an "at", "Caused by", "Suppressed" or "... n more" line

	nodeLocation // after "/path/file.js:10"
	nodeSource   // after the offending source line
	nodeCaret    // after the "    ^" line
	nodeBlank    // the blank line before the error line
	nodeError    // after "TypeError: x is not a function"
	nodeStack    // after an "    at" line
	nodeProps    // inside the "{ code: … }" dump that follows some stacks
	nodeTrailer  // the blank line before "Node.js v20.1.0"
	nodeDone     // after "Node.js v20.1.0"
)

// stream is the trace in progress of one origin.
type stream struct {
	kind  traceKind
	state int
	lines []entry
	// committed lines are known to be a trace; the lines after them are
	// tentative.
	committed int
	// last is the entry time of the newest line; touched is the caller's
	// clock when it arrived. Both in milliseconds.
	last, touched int64
}

// stitcher joins the lines of stack traces, stream by stream (SPEC §8).
// Time comes from the caller — entry timestamps and the now passed to
// add and flushIdle — so its output depends on its input only. It must
// not be shared between goroutines.
//
// Lines that are not part of a trace pass through at once; a line that
// may start one is held until the following lines decide. Every line
// added comes out exactly once, in order within its stream.
type stitcher struct {
	// traceLevel, when set, is the level of every stitched trace.
	traceLevel    level
	hasTraceLevel bool
	streams       map[origin]*stream
}

func newStitcher() *stitcher {
	return &stitcher{streams: map[origin]*stream{}}
}

// add feeds e, which arrived at now, and appends to dst what is finished.
func (s *stitcher) add(dst []entry, e entry, now int64) []entry {
	st := s.streams[e.origin]
	if st == nil {
		if _, _, ok := start(e.message); !ok {
			return append(dst, e)
		}
		st = &stream{}
		s.streams[e.origin] = st
	} else if d := e.time - st.last; d > stitchGap || d < -stitchGap {
		dst = s.end(dst, st)
	}
	dst = s.feed(dst, st, e)
	if len(st.lines) == 0 {
		delete(s.streams, e.origin)
		return dst
	}
	st.last, st.touched = e.time, now
	return dst
}

// flushIdle ends the streams that have not seen a line for over
// stitchGap at now, appending their lines to dst.
func (s *stitcher) flushIdle(dst []entry, now int64) []entry {
	for o, st := range s.streams {
		if now-st.touched > stitchGap {
			dst = s.end(dst, st)
			delete(s.streams, o)
		}
	}
	return dst
}

// flushAll ends every stream, appending their lines to dst.
func (s *stitcher) flushAll(dst []entry) []entry {
	for o, st := range s.streams {
		dst = s.end(dst, st)
		delete(s.streams, o)
	}
	return dst
}

// feed runs e through st's machine.
func (s *stitcher) feed(dst []entry, st *stream, e entry) []entry {
	if st.kind == noTrace {
		kind, state, ok := start(e.message)
		if !ok {
			return append(dst, e)
		}
		st.kind, st.state, st.committed = kind, state, 0
		st.lines = append(st.lines[:0], e)
		return dst
	}
	state, v := step(st.kind, st.state, e.message)
	switch v {
	case accept:
		st.state = state
		st.lines = append(st.lines, e)
		st.committed = len(st.lines)
		if len(st.lines) > maxTraceLines {
			cut := len(st.lines) - keepTraceLines
			dst = append(dst, s.join(st.lines[:cut]))
			st.lines = append(st.lines[:0], st.lines[cut:]...)
			st.committed -= cut
		}
		return dst
	case tentative:
		st.state = state
		st.lines = append(st.lines, e)
		return dst
	}
	// Rejected: what is known to be a trace goes out stitched; a false
	// start gives up its first line only. The rest is fed again, since a
	// trace may start anywhere in it.
	var rest []entry
	if st.committed > 0 {
		dst = append(dst, s.join(st.lines[:st.committed]))
		rest = slices.Clone(st.lines[st.committed:])
	} else {
		dst = append(dst, st.lines[0])
		rest = slices.Clone(st.lines[1:])
	}
	st.kind, st.lines, st.committed = noTrace, st.lines[:0], 0
	for _, r := range rest {
		dst = s.feed(dst, st, r)
	}
	return s.feed(dst, st, e)
}

// end flushes st as it is: a trace, tentative tail included, as one
// event; a start that never became a trace line by line.
func (s *stitcher) end(dst []entry, st *stream) []entry {
	if st.committed > 0 {
		dst = append(dst, s.join(st.lines))
	} else {
		dst = append(dst, st.lines...)
	}
	st.kind, st.lines, st.committed = noTrace, st.lines[:0], 0
	return dst
}

// join stitches lines into one entry: the first line's origin, time and
// facility, the lines joined by newlines, and the trace level or else the
// most severe level among the lines.
func (s *stitcher) join(lines []entry) entry {
	e := lines[0]
	var b strings.Builder
	n := len(lines) - 1
	for i := range lines {
		n += len(lines[i].message)
	}
	b.Grow(n)
	for i := range lines {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(lines[i].message)
		e.level = min(e.level, lines[i].level)
	}
	e.message = b.String()
	e.lines = len(lines)
	if s.hasTraceLevel {
		e.level = s.traceLevel
	}
	return e
}

// start reports whether line may start a trace, and which.
func start(line string) (traceKind, int, bool) {
	switch {
	case line == "Traceback (most recent call last):":
		return pythonTrace, pyHeader, true
	case isJavaThrowable(line):
		return javaTrace, javaHeader, true
	case isNodeLocation(line):
		return nodeTrace, nodeLocation, true
	case isJSError(line):
		return nodeTrace, nodeError, true
	}
	return noTrace, 0, false
}

// step moves a machine by one line.
func step(kind traceKind, state int, line string) (int, verdict) {
	switch kind {
	case pythonTrace:
		return stepPython(state, line)
	case javaTrace:
		return stepJava(state, line)
	case nodeTrace:
		return stepNode(state, line)
	}
	return state, reject
}

// stepPython follows CPython's traceback format:
//
//	Traceback (most recent call last):
//	  File "/srv/app.py", line 10, in main
//	    run()
//	ValueError: bad value
//
// then optionally a blank line, one of the two chaining sentences, a
// blank line and the next traceback.
func stepPython(state int, line string) (int, verdict) {
	switch state {
	case pyHeader:
		if strings.HasPrefix(line, "  File ") {
			return pyFrames, accept
		}
	case pyFrames:
		// Frames, code lines, 3.11 carets and "[Previous line repeated…]"
		// are all indented; the first line that is not is the exception.
		switch {
		case strings.HasPrefix(line, " "):
			return pyFrames, accept
		case line != "":
			return pyException, accept
		}
	case pyException:
		if line == "" {
			return pyBlank, tentative
		}
	case pyBlank:
		if line == "During handling of the above exception, another exception occurred:" ||
			line == "The above exception was the direct cause of the following exception:" {
			return pyChained, tentative
		}
	case pyChained:
		if line == "" {
			return pyChainedBlank, tentative
		}
	case pyChainedBlank:
		if line == "Traceback (most recent call last):" {
			return pyHeader, tentative
		}
	}
	return state, reject
}

// stepJava follows Throwable.printStackTrace:
//
//	Exception in thread "main" java.lang.IllegalStateException: boom
//		at com.example.App.run(App.java:10)
//		... 5 more
//	Caused by: java.io.IOException: disk
//		Suppressed: java.lang.RuntimeException: close
func stepJava(state int, line string) (int, verdict) {
	body := strings.TrimLeft(line, " \t")
	indented := len(body) < len(line)
	switch {
	case indented && strings.HasPrefix(body, "at "):
		return javaFrames, accept
	case state == javaHeader:
		// The first line after the header must be a frame.
	case indented && strings.HasPrefix(body, "... ") && strings.HasSuffix(body, " more"),
		indented && strings.HasPrefix(body, "Suppressed: "),
		strings.HasPrefix(body, "Caused by: "):
		return javaFrames, accept
	}
	return state, reject
}

// stepNode follows Node.js's report of an uncaught exception:
//
//	/srv/app.js:10
//	    foo();
//	    ^
//
//	TypeError: foo is not a function
//	    at Object.<anonymous> (/srv/app.js:10:5)
//
//	Node.js v20.11.0
//
// and console.error(err) output, which starts at the error line. Some
// errors list their properties after the last frame, in braces.
func stepNode(state int, line string) (int, verdict) {
	body := strings.TrimLeft(line, " \t")
	indented := len(body) < len(line)
	switch state {
	case nodeLocation:
		return nodeSource, tentative
	case nodeSource:
		if body != "" && strings.Trim(body, "^~") == "" {
			return nodeCaret, accept
		}
	case nodeCaret:
		if line == "" {
			return nodeBlank, accept
		}
		if !indented {
			return nodeError, accept
		}
	case nodeBlank:
		if line != "" && !indented {
			return nodeError, accept
		}
	case nodeError, nodeStack:
		switch {
		case indented && strings.HasPrefix(body, "at "):
			if strings.HasSuffix(body, " {") {
				return nodeProps, accept
			}
			return nodeStack, accept
		case state == nodeStack && line == "":
			return nodeTrailer, tentative
		}
	case nodeProps:
		switch {
		case line == "}":
			return nodeStack, accept
		case indented:
			return nodeProps, accept
		}
	case nodeTrailer:
		if strings.HasPrefix(line, "Node.js v") {
			return nodeDone, accept
		}
	}
	return state, reject
}

// isJavaThrowable matches a Java exception line: `Exception in thread
// "name" …`, or a qualified class name ending in Exception, Error or
// Throwable, alone or followed by ": message".
func isJavaThrowable(line string) bool {
	if strings.HasPrefix(line, `Exception in thread "`) {
		return true
	}
	name, _, _ := strings.Cut(line, ": ")
	if !strings.Contains(name, ".") || !hasThrowableSuffix(name) {
		return false
	}
	for _, part := range strings.Split(name, ".") {
		if !isIdentifier(part) {
			return false
		}
	}
	return true
}

// isJSError matches a JavaScript error line: an unqualified name ending
// in Error or Exception (TypeError, DOMException, ValidationError), alone
// or followed by ": message", optionally after "Uncaught ".
func isJSError(line string) bool {
	name, _, _ := strings.Cut(strings.TrimPrefix(line, "Uncaught "), ": ")
	return isIdentifier(name) && (strings.HasSuffix(name, "Error") || strings.HasSuffix(name, "Exception"))
}

// isNodeLocation matches the first line of Node's uncaught exception
// report: the path of a script and a line number.
func isNodeLocation(line string) bool {
	i := strings.LastIndexByte(line, ':')
	if i < 0 || i == len(line)-1 || strings.Trim(line[i+1:], "0123456789") != "" {
		return false
	}
	path := line[:i]
	if !strings.ContainsAny(path, `/\`) {
		return false
	}
	for _, ext := range []string{".js", ".mjs", ".cjs", ".ts", ".mts", ".cts", ".jsx", ".tsx"} {
		if strings.HasSuffix(path, ext) {
			return true
		}
	}
	return false
}

func hasThrowableSuffix(name string) bool {
	return strings.HasSuffix(name, "Exception") || strings.HasSuffix(name, "Error") || strings.HasSuffix(name, "Throwable")
}

// isIdentifier reports whether s is a Java or JavaScript identifier in
// ASCII (which covers the class names of real traces).
func isIdentifier(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '$':
		default:
			return false
		}
	}
	return true
}
