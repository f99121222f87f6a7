package docker

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/engine/enginetest"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// The fixture containers: idA has cgroups in the systemd driver's place,
// idB in the cgroupfs driver's (v2) or under a custom parent slice (v1).
const (
	idA = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9"
	idB = "b0b0b0b0b0b01111222233334444555566667777888899990000aaaabbbbcccc"
)

func ptr[T any](v T) *T { return &v }

// fixtureContainers returns what the fake daemon says about idA and idB.
// parentB is idB's --cgroup-parent.
func fixtureContainers(parentB string) []container.InspectResponse {
	return []container.InspectResponse{
		{
			ContainerJSONBase: &container.ContainerJSONBase{
				ID:    idA,
				Name:  "/web-1",
				State: &container.State{Running: true, Pid: 4242},
				HostConfig: &container.HostConfig{Resources: container.Resources{
					NanoCPUs: 1.5e9, Memory: 256 << 20,
				}},
				SizeRw:     ptr[int64](4096),
				SizeRootFs: ptr[int64](7340032),
			},
			Config: &container.Config{
				Labels: map[string]string{
					"com.example.team":   "infra",
					"com_example.team":   "wins-by-name-order",
					"org.image.version":  "1.2.3",
					"9starts-with-digit": "skipped",
					"name":               "reserved",
					"bucket":             "reserved",
					"empty":              "",
					"multi.line":         "a\nb",
				},
				Env: []string{"PATH=/bin", "SERVICE=shop", "SECRET=hunter2", "EMPTY="},
			},
		},
		{
			ContainerJSONBase: &container.ContainerJSONBase{
				ID:         idB,
				Name:       "/batch",
				State:      &container.State{Running: true, Pid: 4343}, // no /proc/4343
				HostConfig: &container.HostConfig{Resources: container.Resources{CgroupParent: parentB}},
				SizeRw:     ptr[int64](0),
				SizeRootFs: ptr[int64](1 << 20),
			},
			Config: &container.Config{Env: []string{"SERVICE=batch"}},
		},
	}
}

// syncBuffer is the module's log, written by Run and read by the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// running is a docker_stats module whose Run goroutine the test owns.
type running struct {
	rec   enginetest.Recorder
	log   syncBuffer
	stats *engine.Stats
	stop  func() error // cancels Run and returns its result
}

// start runs a module with the fixture proc tree, no startup delay and
// the options edit sets, until the test ends.
func start(t *testing.T, edit func(*Options)) *running {
	t.Helper()
	o := DefaultOptions()
	o.ProcPath = "testdata/proc"
	o.CgroupPath = "testdata/cgroup-v2"
	o.RandomizeStartup = false
	o.FlushInterval = 3600
	o.EnvMapping = map[string]string{"SERVICE": "service"}
	edit(&o)
	r := &running{stats: engine.NewStats()}
	m := engine.Module{Name: "docker", Type: "docker_stats", Stats: r.stats,
		Log: slog.New(slog.NewTextHandler(&r.log, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	s, err := New(m, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, &r.rec) }()
	var once sync.Once
	var runErr error
	r.stop = func() error {
		once.Do(func() {
			cancel()
			runErr = <-done
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := r.stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
		if t.Failed() {
			t.Logf("module log:\n%s", r.log.String())
		}
	})
	return r
}

// waitFor polls cond until it holds, failing the test after 20 s: long
// enough for a loaded machine, and never reached when the module works.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// render writes a batch one metric per line, without timestamps, for the
// golden files.
func render(b *engine.Batch) string {
	var sb strings.Builder
	for _, m := range b.Metrics {
		sb.WriteString(m.Bucket)
		for _, tag := range m.Tags {
			sb.WriteString(" " + tag.Key + "=" + tag.Value)
		}
		sb.WriteString(" |")
		for _, f := range m.Fields {
			sb.WriteString(" " + f.Name + "=" + f.Value.String())
		}
		sb.WriteString("\n")
	}
	return sb.String()
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	file := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Fatalf("output differs from %s (rerun with -update to accept):\ngot:\n%s\nwant:\n%s", file, got, want)
	}
}

// collectOnce runs one collection against the fixture containers under
// cgroupPath and returns its batch.
func collectOnce(t *testing.T, cgroupPath, parentB string) (*engine.Batch, *running) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "docker.sock")
	d := &fakeDaemon{containers: fixtureContainers(parentB), gone: []string{strings.Repeat("c", 64)}}
	d.serve(t, sock)
	r := start(t, func(o *Options) {
		o.DockerSocket = sock
		o.CgroupPath = cgroupPath
	})
	waitFor(t, "a batch", func() bool { return len(r.rec.Batches()) > 0 })
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if n := r.stats.FlushErrors.Load(); n != 0 {
		t.Fatalf("flush_errors = %d, want 0 (a container gone between list and inspect is no error); log:\n%s", n, r.log.String())
	}
	// The first collection asks for the sizes of both running containers,
	// besides inspecting them (the one gone since the list is a 404).
	d.set(func(d *fakeDaemon) {
		if d.sized != 2 || d.unsized != 2 {
			t.Fatalf("%d inspects with size=1 and %d without, want 2 and 2", d.sized, d.unsized)
		}
	})
	b := r.rec.Batches()[0]
	if b.Source != "docker" {
		t.Fatalf("batch source %q", b.Source)
	}
	// The router's relabel rules edit tags in place: no two metrics may
	// share a backing array.
	shared := map[*engine.Tag]string{}
	for _, m := range b.Metrics {
		if prev, ok := shared[&m.Tags[0]]; ok {
			t.Fatalf("%s shares its tags with %s", m.Bucket, prev)
		}
		shared[&m.Tags[0]] = m.Bucket
	}
	if got := r.stats.Counter("metrics_produced").Load(); got != uint64(len(b.Metrics)) {
		t.Fatalf("metrics_produced = %d, batch has %d", got, len(b.Metrics))
	}
	return b, r
}

func TestStats_CgroupV2(t *testing.T) {
	b, r := collectOnce(t, "testdata/cgroup-v2", "")
	checkGolden(t, "cgroup-v2", render(b))
	// idB's pid has no /proc entry: its interfaces are missing and the
	// miss is counted and logged, the rest of idB is there.
	if n := r.stats.Counter("read_errors").Load(); n == 0 {
		t.Fatal("read_errors = 0, want the missing /proc/4343 counted")
	}
	if !strings.Contains(r.log.String(), "4343") {
		t.Fatalf("missing /proc/4343 not logged:\n%s", r.log.String())
	}
}

// TestStats_CgroupV1Systemd reads the v1 fixture tree, where the systemd
// driver put idA at system.slice/docker-<id>.scope and idB under its
// --cgroup-parent my-app.slice, i.e. my.slice/my-app.slice. The values are
// worked out by hand from the fixture files.
func TestStats_CgroupV1Systemd(t *testing.T) {
	b, r := collectOnce(t, "testdata/cgroup-v1", "my-app.slice")
	f := func(id, bucket, name string, want ...any) {
		t.Helper()
		var got []engine.Metric
		for _, m := range b.Metrics {
			n, _ := m.Tag("name")
			if d, _ := m.Tag("docker_id"); d == id[:12] && m.Bucket == bucket && n == name {
				got = append(got, m)
			}
		}
		if len(got) != 1 {
			t.Fatalf("%s %s name=%q: %d metrics, want 1", id[:12], bucket, name, len(got))
		}
		var fields []any
		for _, fl := range got[0].Fields {
			fields = append(fields, fl.Name, fl.Value.Num)
		}
		if !reflect.DeepEqual(fields, want) {
			t.Fatalf("%s %s name=%q: fields %v, want %v", id[:12], bucket, name, fields, want)
		}
	}
	// idA: cpuacct.usage_percpu "100 200"; cfs quota 150000 µs per 100000
	// µs period is 1.5 CPUs; 100 MiB used of a 256 MiB limit; eth0 and lo
	// from testdata/proc/4242/net/dev; sizes from inspect.
	f(idA, "docker_cpu", "cpu0", "usage", 100.0)
	f(idA, "docker_cpu", "cpu1", "usage", 200.0)
	f(idA, "docker_cpu", "total", "usage", 300.0, "limit_ps", 1.5e9)
	f(idA, "docker_memory", "", "used_bytes", 100.0*(1<<20), "limit_bytes", 256.0*(1<<20))
	f(idA, "docker_interface", "eth0", "rx_bytes", 1234567.0, "rx_packets", 8901.0, "rx_errors", 2.0, "rx_dropped", 3.0,
		"tx_bytes", 765432.0, "tx_packets", 4321.0, "tx_errors", 4.0, "tx_dropped", 5.0)
	f(idA, "docker_interface", "lo", "rx_bytes", 840.0, "rx_packets", 10.0, "rx_errors", 0.0, "rx_dropped", 0.0,
		"tx_bytes", 840.0, "tx_packets", 10.0, "tx_errors", 0.0, "tx_dropped", 0.0)
	f(idA, "docker_filesystem", "", "total_bytes", 7340032.0, "used_bytes", 4096.0)
	// idB: four per-CPU counters "3000 0 2000 0"; quota -1 and no limit
	// in inspect leave the host's 2 CPUs; the v1 "unlimited" memory limit
	// becomes the host's MemTotal, 2048000 kB; no /proc/4343, no
	// interfaces.
	f(idB, "docker_cpu", "cpu0", "usage", 3000.0)
	f(idB, "docker_cpu", "cpu1", "usage", 0.0)
	f(idB, "docker_cpu", "cpu2", "usage", 2000.0)
	f(idB, "docker_cpu", "cpu3", "usage", 0.0)
	f(idB, "docker_cpu", "total", "usage", 5000.0, "limit_ps", 2e9)
	f(idB, "docker_memory", "", "used_bytes", 8192000.0, "limit_bytes", 2048000.0*1024)
	f(idB, "docker_filesystem", "", "total_bytes", float64(1<<20), "used_bytes", 0.0)
	if len(b.Metrics) != 14 {
		t.Fatalf("%d metrics, want the 14 above", len(b.Metrics))
	}
	// Every idA metric carries the same tags besides name: labels
	// sanitised (of com.example.team and com_example.team, the later in
	// label-name order wins), env_mapping, and the module's own.
	for _, m := range b.Metrics {
		if d, _ := m.Tag("docker_id"); d != idA[:12] {
			continue
		}
		m.Tags = slices.Clone(m.Tags)
		m.DeleteTag("name")
		want := "[{com_example_team wins-by-name-order} {docker_id a1b2c3d4e5f6} {docker_name web-1} {org_image_version 1.2.3} {service shop}]"
		if got := fmt.Sprint(m.Tags); got != want {
			t.Fatalf("%s tags %s, want %s", m.Bucket, got, want)
		}
	}
	if n := r.stats.Counter("read_errors").Load(); n != 1 {
		t.Fatalf("read_errors = %d, want 1: /proc/4343", n)
	}
	checkGolden(t, "cgroup-v1-systemd", render(b))
}

// TestStats_NoCgroup points cgroup_path at a tree without the containers:
// the module still emits what the API and /proc give, and logs each miss
// once.
func TestStats_NoCgroup(t *testing.T) {
	b, r := collectOnce(t, t.TempDir(), "")
	var buckets []string
	for _, m := range b.Metrics {
		buckets = append(buckets, m.Bucket)
	}
	// With no cgroup, limit_ps falls back to what inspect says (idA) or
	// the host's CPUs (idB); usage and memory are absent.
	want := "docker_cpu docker_interface docker_interface docker_filesystem docker_cpu docker_filesystem"
	if got := strings.Join(buckets, " "); got != want {
		t.Fatalf("buckets %q, want %q", got, want)
	}
	if v, _ := b.Metrics[0].Field("limit_ps"); v.Num != 1.5e9 {
		t.Fatalf("idA limit_ps = %v, want NanoCPUs 1.5e9", v)
	}
	if v, _ := b.Metrics[4].Field("limit_ps"); v.Num != 2e9 {
		t.Fatalf("idB limit_ps = %v, want 2 host CPUs", v)
	}
	if n := strings.Count(r.log.String(), "no cgroup directory"); n != 6 {
		t.Fatalf("%d cgroup misses logged, want 6 (cpuacct, cpu and memory of two containers):\n%s", n, r.log.String())
	}
}

// TestStats_DaemonDown starts the module before the daemon: collections
// fail (counted, logged once), then the daemon appears and the module
// recovers without a restart.
func TestStats_DaemonDown(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "docker.sock")
	r := start(t, func(o *Options) {
		o.DockerSocket = sock
		// Each collection, size calls included, must finish within the
		// interval: 0.25 s leaves room on a loaded machine.
		o.FlushInterval = 0.25
	})
	waitFor(t, "3 failed collections", func() bool { return r.stats.FlushErrors.Load() >= 3 })
	d := &fakeDaemon{containers: fixtureContainers("")}
	d.serve(t, sock)
	waitFor(t, "a batch after the daemon came up", func() bool { return len(r.rec.Batches()) > 0 })
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	checkStreakLogged(t, r.log.String(), "no such file or directory")
	checkGolden(t, "cgroup-v2", render(r.rec.Batches()[0]))
}

// TestStats_DaemonHangs has the daemon accept requests and never answer:
// every collection ends at its deadline and the module keeps polling, then
// recovers once the daemon answers again.
func TestStats_DaemonHangs(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "docker.sock")
	d := &fakeDaemon{containers: fixtureContainers(""), mode: "hang"}
	d.serve(t, sock)
	r := start(t, func(o *Options) {
		o.DockerSocket = sock
		o.FlushInterval = 0.05
		o.SocketTimeout = 0.02
	})
	// Without the deadline the first collection would never return.
	waitFor(t, "3 timed-out collections", func() bool { return r.stats.FlushErrors.Load() >= 3 })
	d.set(func(d *fakeDaemon) { d.mode = "" })
	waitFor(t, "a batch after the daemon answered", func() bool { return len(r.rec.Batches()) > 0 })
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	checkStreakLogged(t, r.log.String(), "context deadline exceeded")
}

// TestStats_DaemonFails has the daemon answer 500 to the container list.
func TestStats_DaemonFails(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "docker.sock")
	d := &fakeDaemon{containers: fixtureContainers(""), mode: "500"}
	d.serve(t, sock)
	r := start(t, func(o *Options) {
		o.DockerSocket = sock
		// Each collection, size calls included, must finish within the
		// interval: 0.25 s leaves room on a loaded machine.
		o.FlushInterval = 0.25
	})
	waitFor(t, "3 failed collections", func() bool { return r.stats.FlushErrors.Load() >= 3 })
	d.set(func(d *fakeDaemon) { d.mode = "" })
	waitFor(t, "a batch after the daemon recovered", func() bool { return len(r.rec.Batches()) > 0 })
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	checkStreakLogged(t, r.log.String(), "fake daemon failure")
}

// checkStreakLogged checks that a streak of failed collections was logged
// once, with its cause, and its end once.
func checkStreakLogged(t *testing.T, log, cause string) {
	t.Helper()
	failed := strings.Count(log, "collection failed")
	recovered := strings.Count(log, "collection recovered")
	if failed != 1 || recovered != 1 {
		t.Fatalf("logged %d failures and %d recoveries, want 1 and 1:\n%s", failed, recovered, log)
	}
	if !strings.Contains(log, cause) {
		t.Fatalf("log does not name the cause %q:\n%s", cause, log)
	}
	if strings.Index(log, "collection failed") > strings.Index(log, "collection recovered") {
		t.Fatalf("recovery logged before the failure:\n%s", log)
	}
}
