package statsd_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/bucky3/bucky3/collectors/statsd"
)

// Origin detection end to end: a container of the test's own dockerd
// sends through the server's socket, bind-mounted into it, and its
// metrics carry container_id=<its full id>; a line with its own |c:
// field keeps it.
func TestServer_OriginDetection_Docker(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Docker daemon")
	}
	d := startDockerd(t)
	d.importSender(t, "bucky3-statsd-sender:test")

	dir := t.TempDir()
	r := start(t, func(o *statsd.Options) {
		o.LocalHost, o.LocalSocket, o.SocketMode, o.OriginDetection = "", filepath.Join(dir, "statsd.sock"), "0666", true
	})
	const n = 50
	id := d.run(t, &container.Config{
		Image: "bucky3-statsd-sender:test",
		Cmd:   []string{"/sender", "/run/bucky3/statsd.sock", "50", "origin_hits:1|c|#k:v", "origin_own:1|c|c:explicit"},
	}, &container.HostConfig{NetworkMode: "none", Binds: []string{dir + ":/run/bucky3"}})
	r.waitLines(t, 2*n)
	ms := r.stop(t)
	if got := field(t, find(t, ms, "stats_counters", "name", "origin_hits", "k", "v", "container_id", id), "count"); got != n {
		t.Errorf("origin_hits{container_id=%s} count = %v, want %d", id, got, n)
	}
	if got := field(t, find(t, ms, "stats_counters", "name", "origin_own", "container_id", "explicit"), "count"); got != n {
		t.Errorf("origin_own{container_id=explicit} count = %v, want %d", got, n)
	}
	if len(ms) != 2 {
		t.Errorf("%d series, want 2: %+v", len(ms), ms)
	}
	counts(t, r.stats, map[string]uint64{"lines_received": 2 * n, "lines_invalid": 0, "packets_received": 2 * n})
	// One sender, one reader: its cgroup is read once, then cached.
	if got := r.stats.Counter("origin_lookups").Load(); got != 1 {
		t.Errorf("origin_lookups = %d, want 1", got)
	}
}

// dockerd is a Docker daemon owned by one test, as in collectors/docker's
// tests: its own socket, data and exec roots under t.TempDir, and no
// networking (containers run with network mode "none").
type dockerd struct {
	sock string
	cli  *client.Client
}

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

// startDockerd starts a daemon and registers a cleanup that removes its
// containers and stops it. A missing dockerd or a test not running as
// root fails the test: a skip would pass without proving anything.
func startDockerd(t *testing.T) *dockerd {
	t.Helper()
	bin, err := exec.LookPath("dockerd")
	if err != nil {
		t.Fatal("dockerd not installed: run scripts/dockerd.sh install")
	}
	if os.Geteuid() != 0 {
		t.Fatal("dockerd needs root: run this test as root (or with -short to skip it)")
	}
	dir := t.TempDir()
	d := &dockerd{sock: filepath.Join(dir, "docker.sock")}
	cmd := exec.Command(bin,
		"--host=unix://"+d.sock,
		"--data-root="+filepath.Join(dir, "root"),
		"--exec-root="+filepath.Join(dir, "exec"),
		"--pidfile="+filepath.Join(dir, "docker.pid"),
		"--bridge=none", "--iptables=false", "--ip6tables=false",
		"--ip-forward=false", "--ip-masq=false",
	)
	var log daemonLog
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dockerd: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // the log says more than the exit status
		close(exited)
	}()
	d.cli, err = client.NewClientWithOpts(client.WithHost("unix://"+d.sock), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if list, err := d.cli.ContainerList(ctx, container.ListOptions{All: true}); err == nil {
			for _, c := range list {
				if err := d.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil {
					t.Errorf("remove container %s: %v", c.ID, err)
				}
			}
		}
		d.cli.Close()
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Errorf("stopping dockerd: %v", err)
		}
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			t.Errorf("dockerd ignored SIGTERM for 30 s, killing it")
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			t.Logf("dockerd output:\n%s", log.String())
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		_, err := d.cli.Ping(ctx)
		cancel()
		if err == nil {
			return d
		}
		select {
		case <-exited:
			t.Fatalf("dockerd exited before it was ready:\n%s", log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("dockerd not ready after 30 s: %v", err)
		}
	}
}

// importSender builds testdata/sender as a static binary and imports it
// as the image ref, the way "docker import" does: the daemon has no
// registry to pull from.
func (d *dockerd) importSender(t *testing.T, ref string) {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("go not on PATH: the test builds the container's program")
	}
	out := filepath.Join(t.TempDir(), "sender")
	build := exec.Command(goBin, "build", "-trimpath", "-o", out, "./testdata/sender")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOFLAGS=")
	if msg, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build sender: %v\n%s", err, msg)
	}
	bin, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	if err := tw.WriteHeader(&tar.Header{Name: "sender", Mode: 0o755, Size: int64(len(bin)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(bin); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	rc, err := d.cli.ImageImport(t.Context(), image.ImportSource{Source: &layer, SourceName: "-"}, ref, image.ImportOptions{})
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	defer rc.Close()
	// The answer is a JSON message stream; failures arrive inside it.
	dec := json.NewDecoder(rc)
	for {
		var msg struct{ Error string }
		if err := dec.Decode(&msg); errors.Is(err, io.EOF) {
			return
		} else if err != nil {
			t.Fatalf("import answer: %v", err)
		}
		if msg.Error != "" {
			t.Fatalf("import: %s", msg.Error)
		}
	}
}

// run creates and starts a container and returns its full id.
func (d *dockerd) run(t *testing.T, cfg *container.Config, host *container.HostConfig) string {
	t.Helper()
	created, err := d.cli.ContainerCreate(t.Context(), cfg, host, nil, nil, "")
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := d.cli.ContainerStart(t.Context(), created.ID, container.StartOptions{}); err != nil {
		t.Fatalf("start: %v", err)
	}
	return created.ID
}
