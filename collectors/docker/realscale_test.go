package docker

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/prometheus/procfs"

	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/engine/enginetest"
)

// TestStats_RealDockerdScale runs BUCKY3_DOCKER_SCALE containers (e.g. 50)
// on a real daemon and times two collections, the first with sizes, the
// second without, counting the calls the daemon received. It is a
// measurement for bench/RESULTS.md ("docker_stats at scale"), not part of
// the ordinary run: without the variable it is skipped.
func TestStats_RealDockerdScale(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("BUCKY3_DOCKER_SCALE"))
	if n <= 0 {
		t.Skip("set BUCKY3_DOCKER_SCALE=50 to measure")
	}
	d := startDockerd(t)
	d.importBurner(t, "bucky3-burner:test")
	setup := time.Now()
	for i := range n {
		d.run(t, "burner-"+strconv.Itoa(i), &container.Config{Image: "bucky3-burner:test"}, container.Resources{})
	}
	t.Logf("%d containers started in %v", n, time.Since(setup))

	p := countingProxy(t, d.sock)
	o := DefaultOptions()
	o.DockerSocket = p.sock
	o.RandomizeStartup = false
	core := engine.NewStats()
	s, err := New(engine.Module{Name: "docker", Stats: core, Log: slog.New(slog.DiscardHandler)}, o)
	if err != nil {
		t.Fatal(err)
	}
	proc, err := procfs.NewFS(o.ProcPath)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := client.NewClientWithOpts(client.WithHost("unix://"+p.sock), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Ping(t.Context()); err != nil { // negotiation is not the collection's cost
		t.Fatal(err)
	}
	for _, name := range []string{"with sizes", "without sizes"} {
		p.reset()
		var rec enginetest.Recorder
		start := time.Now()
		s.flush(t.Context(), cli, proc, &rec)
		took := time.Since(start)
		metrics := len(rec.Metrics())
		if core.FlushErrors.Load() != 0 || metrics < 4*n {
			t.Fatalf("%s: flush_errors %d, %d metrics for %d containers", name, core.FlushErrors.Load(), metrics, n)
		}
		t.Logf("collection %s: %v, %d metrics, daemon calls %s", name, took, metrics, p.calls())
	}
}

// proxy forwards the Engine API and counts the calls by kind.
type proxy struct {
	sock   string
	mu     sync.Mutex
	counts map[string]int
}

func countingProxy(t *testing.T, target string) *proxy {
	t.Helper()
	p := &proxy{sock: filepath.Join(t.TempDir(), "proxy.sock"), counts: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: "docker"})
	rp.Transport = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", target)
	}}
	l, err := net.Listen("unix", p.sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		kind := "other"
		switch path := r.URL.Path; {
		case strings.HasSuffix(path, "/containers/json"):
			kind = "list"
		case strings.HasSuffix(path, "/json") && r.URL.Query().Get("size") == "1":
			kind = "inspect+size"
		case strings.HasSuffix(path, "/json"):
			kind = "inspect"
		}
		p.mu.Lock()
		p.counts[kind]++
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(l) }() // ErrServerClosed at cleanup
	t.Cleanup(func() { srv.Close() })
	return p
}

func (p *proxy) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.counts)
}

func (p *proxy) calls() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var parts []string
	for _, k := range []string{"list", "inspect", "inspect+size", "other"} {
		if p.counts[k] > 0 {
			parts = append(parts, k+"="+strconv.Itoa(p.counts[k]))
		}
	}
	return strings.Join(parts, " ")
}
