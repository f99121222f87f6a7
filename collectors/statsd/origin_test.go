package statsd_test

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/bucky3/bucky3/internal/backendtest"

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

// dockerd is the test's own Docker daemon (backendtest.StartDockerd).
type dockerd struct {
	sock string
	cli  *client.Client
}

func startDockerd(t *testing.T) *dockerd {
	t.Helper()
	d := backendtest.StartDockerd(t)
	return &dockerd{sock: d.Sock, cli: d.Client}
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
