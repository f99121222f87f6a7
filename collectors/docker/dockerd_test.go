package docker

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/bucky3/bucky3/internal/backendtest"
)

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

// burnerSource is the program the test containers run: it touches 8 MiB
// of memory, writes 1 MiB into its container's filesystem (the sign that
// it is up, see run), then burns a little CPU every 100 ms until killed.
const burnerSource = `package main

import (
	"os"
	"time"
)

var sink []byte

func main() {
	sink = make([]byte, 8<<20)
	for i := range sink {
		sink[i] = byte(i)
	}
	if err := os.WriteFile("/scratch", make([]byte, 1<<20), 0o644); err != nil {
		panic(err)
	}
	x := 0
	for {
		for i := 0; i < 2000000; i++ {
			x += i
		}
		sink[x&(len(sink)-1)]++
		time.Sleep(100 * time.Millisecond)
	}
}
`

// importBurner builds burnerSource as a static binary and imports it as
// the image ref, with label com.example.image=from-image, the way
// "docker import -c" does: the daemon here has no registry to pull from.
// It returns the size of the program, the image's only file.
func (d *dockerd) importBurner(t *testing.T, ref string) int64 {
	t.Helper()
	dir := t.TempDir()
	for name, content := range map[string]string{
		"main.go": burnerSource,
		"go.mod":  "module burner\n\ngo 1.22\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("go not on PATH: the test builds the containers' program")
	}
	build := exec.Command(goBin, "build", "-trimpath", "-o", "burner", ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOWORK=off", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build burner: %v\n%s", err, out)
	}
	bin, err := os.ReadFile(filepath.Join(dir, "burner"))
	if err != nil {
		t.Fatal(err)
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	if err := tw.WriteHeader(&tar.Header{Name: "burner", Mode: 0o755, Size: int64(len(bin)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(bin); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	rc, err := d.cli.ImageImport(t.Context(), image.ImportSource{Source: &layer, SourceName: "-"}, ref,
		image.ImportOptions{Changes: []string{`CMD ["/burner"]`, `LABEL com.example.image=from-image`}})
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	defer rc.Close()
	// The answer is a JSON message stream; failures arrive inside it.
	dec := json.NewDecoder(rc)
	for {
		var msg struct{ Error string }
		if err := dec.Decode(&msg); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("import answer: %v", err)
		}
		if msg.Error != "" {
			t.Fatalf("import: %s", msg.Error)
		}
	}
	return int64(len(bin))
}

// run creates and starts a container like "docker run -d --network none",
// waits until its program has written its scratch file, and returns the
// container's full ID.
func (d *dockerd) run(t *testing.T, name string, cfg *container.Config, res container.Resources) string {
	t.Helper()
	ctx := t.Context()
	created, err := d.cli.ContainerCreate(ctx, cfg, &container.HostConfig{NetworkMode: "none", Resources: res}, nil, nil, name)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	if err := d.cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; {
		info, _, err := d.cli.ContainerInspectWithRaw(ctx, created.ID, true)
		if err != nil {
			t.Fatalf("inspect %s: %v", name, err)
		}
		if !info.State.Running {
			t.Fatalf("container %s exited: %+v", name, info.State)
		}
		if info.SizeRw != nil && *info.SizeRw >= 1<<20 {
			return created.ID
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s did not write its scratch file", name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// hostCPUs counts the cpuN lines of /proc/stat, as the module does.
func hostCPUs(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for line := range strings.Lines(string(b)) {
		if strings.HasPrefix(line, "cpu") && !strings.HasPrefix(line, "cpu ") {
			n++
		}
	}
	return n
}
