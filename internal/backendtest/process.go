package backendtest

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// readyTimeout bounds how long a server may take to become ready, and how
// long the one-shot tools may run.
const readyTimeout = 30 * time.Second

// installHint is the failure message for a missing binary.
const installHint = "%s not installed: run scripts/backends.sh install"

// repoRoot returns the directory holding go.mod, walking up from the working
// directory (a package directory under go test), or "" outside a module.
func repoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// findBinary returns the path of name: first in the install cache, then in
// the extra directories, then on PATH. It fails the test when none has it.
func findBinary(t testing.TB, name string, extraDirs ...string) string {
	t.Helper()
	var dirs []string
	if root := repoRoot(); root != "" {
		cache := filepath.Join(root, ".cache", "backends")
		dirs = append(dirs, filepath.Join(cache, "usr", "bin"), filepath.Join(cache, "bin"))
	}
	dirs = append(dirs, extraDirs...)
	for _, dir := range dirs {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	t.Fatalf(installHint, name)
	return ""
}

// FreePort returns a port on 127.0.0.1 that is free for both TCP and UDP and
// reserved for this test until it ends.
//
// Servers are configured with fixed ports, so the port must stay free between
// this call and the server's bind. It is therefore drawn below the kernel's
// ephemeral range, where no port-0 listener can land, and reserved against
// other backendtest users (other test binaries run concurrently on the same
// machine) by an flock held until the test's cleanup.
func FreePort(t testing.TB) int {
	t.Helper()
	low, high := 10000, ephemeralLow()
	lockDir := filepath.Join(os.TempDir(), "backendtest-ports")
	if err := os.MkdirAll(lockDir, 0o777); err != nil {
		t.Fatalf("port reservation dir: %v", err)
	}
	for range 1000 {
		port := low + rand.IntN(high-low)
		lock, err := os.OpenFile(filepath.Join(lockDir, strconv.Itoa(port)), os.O_CREATE|os.O_RDWR, 0o666)
		if err != nil {
			t.Fatalf("port reservation: %v", err)
		}
		if syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			lock.Close()
			continue
		}
		if !portFree(port) {
			lock.Close()
			continue
		}
		// Closing the file releases the flock.
		t.Cleanup(func() { lock.Close() })
		return port
	}
	t.Fatalf("no free port in [%d, %d)", low, high)
	return 0
}

// ephemeralLow returns the first port the kernel hands out for port 0.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 11000 {
				return n
			}
		}
	}
	return 32768
}

func portFree(port int) bool {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	tl, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer tl.Close()
	ul, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	ul.Close()
	return true
}

// hostPort returns "127.0.0.1:port".
func hostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// logBuffer collects a server's output; the server writes while the test reads.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// process is a running server owned by one test.
type process struct {
	name string
	cmd  *exec.Cmd
	log  *logBuffer
	done chan struct{} // closed once the process has exited and its output is drained
	err  error         // Wait's result, valid after done is closed
}

// startProcess starts bin in its own process group and registers a cleanup
// that kills the group, waits, and dumps the output if the test failed.
func startProcess(t testing.TB, name, bin string, env []string, args ...string) *process {
	t.Helper()
	p := &process{name: name, log: &logBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout = p.log
	p.cmd.Stderr = p.log
	// A group of its own lets cleanup kill helpers the server forks;
	// Pdeathsig kills the server if the test binary dies without cleanup
	// (a -timeout panic).
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// A grandchild holding the output pipe must not block Wait forever.
	p.cmd.WaitDelay = 5 * time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		// ESRCH: the group is already gone, which is what this wants.
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		if t.Failed() {
			t.Logf("%s (%s) output:\n%s", name, strings.Join(p.cmd.Args, " "), p.log.String())
		}
	})
	return p
}

// waitReady polls ready until it returns nil, failing the test when the
// process exits first or readyTimeout passes. The output is dumped by the
// cleanup.
func (p *process) waitReady(t testing.TB, ready func() error) {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	for {
		err := ready()
		if err == nil {
			return
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited before it was ready (%v); output follows", p.name, p.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %v: %v; output follows", p.name, readyTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// httpClient bounds every helper request so a wedged server fails the test
// instead of hanging it.
var httpClient = &http.Client{Timeout: 10 * time.Second}

// httpReady returns a readiness probe that wants status from GET url.
func httpReady(url string, status int) func() error {
	return func() error {
		resp, err := httpClient.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body) // drained for reuse; the status decides
		if resp.StatusCode != status {
			return fmt.Errorf("GET %s: status %d, want %d", url, resp.StatusCode, status)
		}
		return nil
	}
}

// tcpReady returns a readiness probe that wants addr to accept a connection.
func tcpReady(addr string) func() error {
	return func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

// do sends req and returns the body, failing the test on a transport error or
// a status other than 2xx.
func do(t testing.TB, req *http.Request) []byte {
	t.Helper()
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: status %d: %s", req.Method, req.URL, resp.StatusCode, body)
	}
	return body
}

// get is do for a GET of url.
func get(t testing.TB, url string) []byte {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return do(t, req)
}

// writeFile writes a generated config file, failing the test on error.
func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
