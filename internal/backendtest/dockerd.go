package backendtest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
)

// Dockerd is a Docker daemon owned by one test: its own socket, data and
// exec roots under t.TempDir, and no networking at all (no bridge, no
// iptables, no forwarding), so it cannot disturb the machine or another
// daemon. Containers must run with network mode "none".
type Dockerd struct {
	Sock   string         // the daemon's API socket
	Client *client.Client // a client of it, closed at cleanup
}

// daemonLog is dockerd's output, dumped when the test fails.
type daemonLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *daemonLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *daemonLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// StartDockerd starts a daemon and registers a cleanup that removes its
// containers and stops it. A missing dockerd, or a test not running as
// root, fails the test rather than skipping it: a skipped test would pass
// without proving anything.
func StartDockerd(t testing.TB) *Dockerd {
	t.Helper()
	bin, err := exec.LookPath("dockerd")
	if err != nil {
		t.Fatal("dockerd not installed: run scripts/dockerd.sh install")
	}
	if os.Geteuid() != 0 {
		t.Fatal("dockerd needs root: run this test as root (or with -short to skip it)")
	}
	dir := t.TempDir()
	d := &Dockerd{Sock: filepath.Join(dir, "docker.sock")}
	cmd := exec.Command(bin,
		"--host=unix://"+d.Sock,
		"--data-root="+filepath.Join(dir, "root"),
		"--exec-root="+filepath.Join(dir, "exec"),
		"--pidfile="+filepath.Join(dir, "docker.pid"),
		"--bridge=none", "--iptables=false", "--ip6tables=false",
		"--ip-forward=false", "--ip-masq=false",
	)
	var log daemonLog
	cmd.Stdout, cmd.Stderr = &log, &log
	// Pdeathsig takes the daemon down with a test binary killed by
	// -timeout; the daemon then takes its containerd down.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dockerd: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // the daemon's exit status says nothing the log does not
		close(exited)
	}()
	d.Client, err = client.NewClientWithOpts(client.WithHost("unix://"+d.Sock), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.removeAll(t)
		d.Client.Close()
		// SIGTERM lets the daemon unmount its layers; SIGKILL only if it
		// does not manage within 30 s.
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Errorf("stopping dockerd: %v", err)
		}
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			t.Errorf("dockerd ignored SIGTERM for 30 s, killing it")
			if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil {
				t.Errorf("killing dockerd: %v", err)
			}
			<-exited
		}
		if t.Failed() {
			t.Logf("dockerd output:\n%s", log.String())
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		_, err := d.Client.Ping(ctx)
		cancel()
		if err == nil {
			break
		}
		select {
		case <-exited:
			t.Fatalf("dockerd exited before it was ready:\n%s", log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("dockerd not ready after 30 s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return d
}

// removeAll removes every container, which stops its processes and lets
// the daemon unmount its filesystem before it exits.
func (d *Dockerd) removeAll(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := d.Client.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		t.Errorf("list containers for removal: %v", err)
		return
	}
	for _, c := range list {
		if err := d.Client.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil {
			t.Errorf("remove container %s: %v", c.ID, err)
		}
	}
}
