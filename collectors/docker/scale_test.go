package docker

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bucky3/bucky3/engine"
)

// TestStats_SlowContainer has the daemon hang on the inspect of one
// container: that container misses the collection, logged once, and the
// other keeps its metrics.
func TestStats_SlowContainer(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "docker.sock")
	d := &fakeDaemon{containers: fixtureContainers(""), hang: map[string]bool{idA: true}}
	d.serve(t, sock)
	r := start(t, func(o *Options) {
		o.DockerSocket = sock
		o.FlushInterval = 0.5
		o.SocketTimeout = 0.2
	})
	waitFor(t, "3 batches", func() bool { return len(r.rec.Batches()) >= 3 })
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if n := r.stats.FlushErrors.Load(); n != 0 {
		t.Fatalf("flush_errors = %d, want 0: one slow container does not fail the collection", n)
	}
	for i, b := range r.rec.Batches() {
		ids := map[string]bool{}
		for _, m := range b.Metrics {
			id, _ := m.Tag("docker_id")
			ids[id] = true
		}
		if ids[idA[:12]] || !ids[idB[:12]] {
			t.Fatalf("batch %d has containers %v, want only %s", i, ids, idB[:12])
		}
		if findMetric(b, idB, "docker_filesystem") == nil {
			t.Fatalf("batch %d lacks %s's docker_filesystem", i, idB[:12])
		}
	}
	log := r.log.String()
	if n := strings.Count(log, "what=\"inspect "+idA[:12]+"\""); n != 1 {
		t.Fatalf("the slow container is logged %d times, want once:\n%s", n, log)
	}
	if !strings.Contains(log, "context deadline exceeded") {
		t.Fatalf("the cause is not logged:\n%s", log)
	}
}

// TestStats_InspectPool lists 20 containers whose inspect all hang: no
// more than inspectWorkers calls are in flight at once, and the
// collection still ends, each call at its own deadline.
func TestStats_InspectPool(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "docker.sock")
	d := &fakeDaemon{hang: map[string]bool{}}
	for i := range 20 {
		c := fixtureContainers("")[1]
		base := *c.ContainerJSONBase
		base.ID = strings.Repeat(fmt.Sprintf("%02x", i+1), 32)
		c.ContainerJSONBase = &base
		d.containers = append(d.containers, c)
		d.hang[base.ID] = true
	}
	d.serve(t, sock)
	r := start(t, func(o *Options) {
		o.DockerSocket = sock
		o.SocketTimeout = 0.3
	})
	inspects := func() int {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.inspects
	}
	waitFor(t, "the first inspects", func() bool { return inspects() >= inspectWorkers })
	// Well within the calls' deadline: nothing more may have started.
	time.Sleep(100 * time.Millisecond)
	if n := inspects(); n != inspectWorkers {
		t.Fatalf("%d inspects in flight, want %d", n, inspectWorkers)
	}
	waitFor(t, "20 failed inspects", func() bool { return r.stats.Counter("read_errors").Load() >= 20 })
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if n := inspects(); n != 20 {
		t.Fatalf("%d inspects, want one per container", n)
	}
	if n := r.stats.FlushErrors.Load(); n != 0 {
		t.Fatalf("flush_errors = %d, want 0", n)
	}
	if n := strings.Count(r.log.String(), "skipping metrics that cannot be read"); n != 20 {
		t.Fatalf("%d containers logged, want 20:\n%s", n, r.log.String())
	}
}

// TestStats_FilesystemInterval: sizes are asked for once per
// filesystem_interval, and every collection in between repeats them.
func TestStats_FilesystemInterval(t *testing.T) {
	f := func(interval float64, check func(sized, batches int)) {
		t.Helper()
		sock := filepath.Join(t.TempDir(), "docker.sock")
		d := &fakeDaemon{containers: fixtureContainers("")}
		d.serve(t, sock)
		r := start(t, func(o *Options) {
			o.DockerSocket = sock
			// Calls get min(flush_interval, socket_timeout): room for a
			// loaded machine under -race.
			o.FlushInterval = 0.2
			o.FilesystemInterval = interval
		})
		waitFor(t, "4 batches", func() bool { return len(r.rec.Batches()) >= 4 })
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		batches := r.rec.Batches()
		for i, b := range batches {
			for _, id := range []string{idA, idB} {
				if findMetric(b, id, "docker_filesystem") == nil {
					t.Fatalf("batch %d lacks %s's docker_filesystem", i, id[:12])
				}
			}
		}
		d.set(func(d *fakeDaemon) { check(d.sized, len(batches)) })
	}
	f(3600, func(sized, batches int) {
		if sized != 2 {
			t.Fatalf("%d inspects with size=1 in %d collections, want 2 (the first collection's)", sized, batches)
		}
	})
	f(0.001, func(sized, batches int) {
		if sized < 2*batches {
			t.Fatalf("%d inspects with size=1 in %d collections, want 2 per collection", sized, batches)
		}
	})
}

// findMetric returns the first metric of container id in bucket.
func findMetric(b *engine.Batch, id, bucket string) *engine.Metric {
	for i, m := range b.Metrics {
		if d, _ := m.Tag("docker_id"); d == id[:12] && m.Bucket == bucket {
			return &b.Metrics[i]
		}
	}
	return nil
}
