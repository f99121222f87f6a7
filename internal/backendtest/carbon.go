package backendtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// python is Debian's interpreter: the graphite packages are installed for it,
// not for whatever python3 comes first on PATH.
const python = "/usr/bin/python3"

// Carbon is a running Graphite carbon-cache writing whisper files with
// retentions 1s:1h,10s:1d (averaged, xFilesFactor 0). Stop and Start restart
// it; they must be called from the test's goroutine.
type Carbon struct {
	Addr       string // 127.0.0.1:PORT, plaintext line receiver (TCP)
	WhisperDir string // root of the whisper tree: metric a.b.c is WhisperDir/a/b/c.wsp

	// What Start needs to launch the same server again.
	env, args []string
	pidFile   string
	proc      *process // nil while stopped
}

// Point is one non-null whisper datapoint.
type Point struct {
	Time  time.Time
	Value float64
}

// StartCarbon starts carbon-cache. Carbon silently drops datapoints with a
// timestamp in the future (relative to its own clock, in whole seconds).
func StartCarbon(t testing.TB) *Carbon {
	t.Helper()
	bin := findBinary(t, "carbon-cache")
	whisperFetch(t) // fail now, not at the first Fetch
	dir := t.TempDir()
	conf, storage := filepath.Join(dir, "conf"), filepath.Join(dir, "storage")
	line, pickle, query, udp := FreePort(t), FreePort(t), FreePort(t), FreePort(t)
	c := &Carbon{Addr: hostPort(line), WhisperDir: filepath.Join(storage, "whisper")}
	// CONF_DIR is the directory of carbon.conf; storage-schemas.conf must sit
	// beside it.
	writeFile(t, filepath.Join(conf, "carbon.conf"), fmt.Sprintf(`[cache]
STORAGE_DIR = %[1]s/
LOCAL_DATA_DIR = %[2]s/
WHITELISTS_DIR = %[1]s/lists/
LOG_DIR = %[1]s/log/
PID_DIR = %[1]s/
USER =
ENABLE_TAGS = False
ENABLE_LOGROTATION = False
LOG_LISTENER_CONN_SUCCESS = False
LOG_UPDATES = False
LOG_CREATES = False
LOG_CACHE_HITS = False
LOG_CACHE_QUEUE_SORTS = False
MAX_CACHE_SIZE = inf
MAX_UPDATES_PER_SECOND = 100000
MAX_CREATES_PER_MINUTE = 100000
CACHE_WRITE_STRATEGY = sorted
WHISPER_AUTOFLUSH = False
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = %[3]d
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = %[4]d
CACHE_QUERY_INTERFACE = 127.0.0.1
CACHE_QUERY_PORT = %[5]d
ENABLE_UDP_LISTENER = False
UDP_RECEIVER_INTERFACE = 127.0.0.1
UDP_RECEIVER_PORT = %[6]d
ENABLE_MANHOLE = False
CARBON_METRIC_INTERVAL = 0
`, storage, c.WhisperDir, line, pickle, query, udp))
	writeFile(t, filepath.Join(conf, "storage-schemas.conf"), `[all]
pattern = .*
retentions = 1s:1h,10s:1d
`)
	// Any known point propagates to the 10 s archive, so a range older than
	// an hour still shows what was written.
	writeFile(t, filepath.Join(conf, "storage-aggregation.conf"), `[all]
pattern = .*
xFilesFactor = 0
aggregationMethod = average
`)
	c.env = []string{"GRAPHITE_ROOT=" + dir, "GRAPHITE_CONF_DIR=" + conf, "GRAPHITE_STORAGE_DIR=" + storage}
	c.args = []string{bin, "--config=" + filepath.Join(conf, "carbon.conf"), "--nodaemon", "--logfile=-", "start"}
	// Instance "a" is carbon's default; PID_DIR is storage.
	c.pidFile = filepath.Join(storage, "carbon-cache-a.pid")
	c.Start(t)
	return c
}

// stopTimeout bounds carbon's shutdown, which waits for its writer thread
// (asleep for up to a second, or finishing a pass).
const stopTimeout = 30 * time.Second

// Stop shuts carbon-cache down with SIGTERM and waits for it to exit, as an
// orderly restart does: its listeners close, clients see their connections
// end and new ones refused. The ports stay reserved for Start.
//
// Carbon 1.1 does not write out its cache on shutdown: its writer thread
// stops with the reactor, so points read since its last pass (it passes about
// once a second) are lost, and so are lines still unread in a socket. A
// test wanting exact counts waits until whisper holds everything sent before
// calling Stop.
func (c *Carbon) Stop(t testing.TB) {
	t.Helper()
	if c.proc == nil {
		t.Fatal("carbon: Stop while stopped")
	}
	p := c.proc
	c.proc = nil
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("carbon: SIGTERM: %v", err)
	}
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		t.Fatalf("carbon: still running %v after SIGTERM; output follows", stopTimeout)
	}
	// Twistd ends by re-raising the signal once shut down.
	var ee *exec.ExitError
	killedByTERM := errors.As(p.err, &ee) && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGTERM
	if p.err != nil && !killedByTERM {
		t.Fatalf("carbon: exit after SIGTERM: %v; output follows", p.err)
	}
}

// Start starts carbon-cache and waits until it accepts connections.
// StartCarbon calls it; after Stop, a test calls it to bring carbon back on
// the same ports (reserved by StartCarbon until the test ends; twisted
// rebinds despite TIME_WAIT) and the same whisper tree.
func (c *Carbon) Start(t testing.TB) {
	t.Helper()
	if c.proc != nil {
		t.Fatal("carbon: Start while running")
	}
	// Twistd removes its pid file on a clean exit; a SIGKILLed run leaves
	// one, which carbon would trust if the pid had been reused meanwhile.
	if err := os.Remove(c.pidFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	c.proc = startProcess(t, "carbon-cache", python, c.env, c.args...)
	c.proc.waitReady(t, tcpReady(c.Addr))
}

// Fetch returns the non-null datapoints of metric path (dotted) in
// (from, until] (whisper starts at the step after from), from the finest archive that covers from. A metric carbon
// has not created yet has no points.
func (c *Carbon) Fetch(t testing.TB, path string, from, until time.Time) []Point {
	t.Helper()
	file := filepath.Join(c.WhisperDir, filepath.FromSlash(strings.ReplaceAll(path, ".", "/"))+".wsp")
	if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	cmd := exec.Command(python, whisperFetch(t), "--json",
		"--from="+strconv.FormatInt(from.Unix(), 10), "--until="+strconv.FormatInt(until.Unix(), 10), file)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("whisper-fetch %s: %v: %s", file, err, stderr)
	}
	var res struct {
		Start  int64      `json:"start"`
		Step   int64      `json:"step"`
		Values []*float64 `json:"values"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("whisper-fetch %s: %v: %s", file, err, out)
	}
	var points []Point
	for i, v := range res.Values {
		if v != nil {
			points = append(points, Point{Time: time.Unix(res.Start+int64(i)*res.Step, 0), Value: *v})
		}
	}
	return points
}

// WaitFor fetches the last hour of path until it has a non-null point,
// failing the test after timeout. Carbon creates a whisper file and writes
// its cache to it within about a second of receiving a line.
func (c *Carbon) WaitFor(t testing.TB, path string, timeout time.Duration) []Point {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		// whisper-fetch reads the clock itself and answers from the 10 s
		// archive when the range reaches back past the 1 h one, which a
		// range of exactly an hour does whenever a second passes meanwhile.
		now := time.Now()
		if p := c.Fetch(t, path, now.Add(-50*time.Minute), now.Add(time.Second)); len(p) > 0 {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("carbon: no points for %q after %v", path, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// whisperFetch returns the whisper-fetch script, failing the test when it or
// Debian's python3 is missing.
func whisperFetch(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat(python); err != nil {
		t.Fatalf(installHint, python)
	}
	return findBinary(t, "whisper-fetch")
}
