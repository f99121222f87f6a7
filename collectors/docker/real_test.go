package docker

import (
	"fmt"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"github.com/bucky3/bucky3/engine"
)

// TestStats_RealDockerd runs two containers on a real daemon — one with
// labels, environment and CPU and memory limits, one with none — and
// checks every bucket, field and tag the module emits for them, reading
// the machine's real cgroups and network namespaces. What the cgroups
// hold depends on the host's version: v1 counts CPU time per CPU, v2 only
// in total.
func TestStats_RealDockerd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Docker daemon")
	}
	v2 := hostCgroupV2(t)
	t.Logf("host cgroup version: v2=%v", v2)
	d := startDockerd(t)
	imageSize := float64(d.importBurner(t, "bucky3-burner:test"))
	limited := d.run(t, "burner-limited", &container.Config{
		Image:  "bucky3-burner:test",
		Labels: map[string]string{"com.example.team": "infra", "tier": "backend", "9lives": "skipped"},
		Env:    []string{"SERVICE=checkout", "OTHER=unmapped"},
	}, container.Resources{Memory: 64 << 20, NanoCPUs: 5e8})
	free := d.run(t, "burner-free", &container.Config{Image: "bucky3-burner:test"}, container.Resources{})

	r := start(t, func(o *Options) {
		o.DockerSocket = d.sock
		o.CgroupPath = "/sys/fs/cgroup"
		o.ProcPath = "/proc"
	})
	waitFor(t, "a batch", func() bool { return len(r.rec.Batches()) > 0 })
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if n := r.stats.FlushErrors.Load(); n != 0 {
		t.Fatalf("flush_errors = %d", n)
	}
	if n := r.stats.Counter("read_errors").Load(); n != 0 {
		t.Fatalf("read_errors = %d", n)
	}
	b := r.rec.Batches()[0]
	for _, m := range b.Metrics {
		t.Logf("%s %v %v", m.Bucket, m.Tags, m.Fields)
	}

	mi, err := procfs.NewDefaultFS()
	if err != nil {
		t.Fatal(err)
	}
	meminfo, err := mi.Meminfo()
	if err != nil {
		t.Fatal(err)
	}
	cpus := hostCPUs(t)

	checkContainer(t, b, limited, "burner-limited", map[string]string{
		"com_example_team":  "infra",
		"com_example_image": "from-image",
		"tier":              "backend",
		"service":           "checkout",
	}, 5e8, 64<<20, imageSize, cpus, v2)
	checkContainer(t, b, free, "burner-free", map[string]string{
		"com_example_image": "from-image",
	}, float64(cpus)*1e9, float64(*meminfo.MemTotal*1024), imageSize, cpus, v2)
}

// hostCgroupV2 reports whether /sys/fs/cgroup is the unified hierarchy
// (cgroup2fs, what `stat -fc %T` prints), the one the daemon then uses; a
// v1 or hybrid host mounts a tmpfs of per-controller trees there. It asks
// the kernel rather than the module's own detection, which is under test.
func hostCgroupV2(t *testing.T) bool {
	t.Helper()
	var fs unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &fs); err != nil {
		t.Fatal(err)
	}
	return fs.Type == unix.CGROUP2_SUPER_MAGIC
}

// checkContainer checks the metrics of the container id: every metric
// carries exactly the container's tags (plus name where the bucket has
// one), and the values are plausible for burnerSource under the limits.
// v2 says the host runs cgroup v2: no per-CPU series then.
func checkContainer(t *testing.T, b *engine.Batch, id, name string, extra map[string]string, limitPS, limitBytes, imageSize float64, cpus int, v2 bool) {
	t.Helper()
	want := map[string]string{"docker_name": name, "docker_id": id[:12]}
	for k, v := range extra {
		want[k] = v
	}
	byBucket := map[string][]engine.Metric{}
	for _, m := range b.Metrics {
		if got, _ := m.Tag("docker_id"); got != id[:12] {
			continue
		}
		tags := map[string]string{}
		for _, tag := range m.Tags {
			tags[tag.Key] = tag.Value
		}
		key := m.Bucket
		if n, ok := tags["name"]; ok {
			key += "/" + n
			delete(tags, "name")
		}
		if fmt.Sprint(tags) != fmt.Sprint(want) {
			t.Errorf("%s %s tags %v, want %v", name, key, tags, want)
		}
		byBucket[key] = append(byBucket[key], m)
	}
	field := func(key, f string) float64 {
		t.Helper()
		ms := byBucket[key]
		if len(ms) != 1 {
			t.Fatalf("%s: %d metrics %s, want 1", name, len(ms), key)
		}
		v, ok := ms[0].Field(f)
		if !ok || v.Kind != engine.KindNumber {
			t.Fatalf("%s: %s has no numeric %s: %v", name, key, f, ms[0].Fields)
		}
		return v.Num
	}

	// v1's cpuacct.usage_percpu has a counter per possible CPU, at least
	// one per online CPU, and the total is their sum. v2 keeps only the
	// total (cpu.stat usage_usec).
	var sum float64
	n := 0
	for ; len(byBucket[fmt.Sprintf("docker_cpu/cpu%d", n)]) > 0; n++ {
		u := field(fmt.Sprintf("docker_cpu/cpu%d", n), "usage")
		if u < 0 {
			t.Errorf("%s: cpu%d usage %v", name, n, u)
		}
		sum += u
	}
	total := field("docker_cpu/total", "usage")
	switch {
	case v2 && n != 0:
		t.Errorf("%s: %d per-CPU series under cgroup v2, which has no per-CPU counters", name, n)
	case v2 && total <= 0:
		t.Errorf("%s: total usage %v, want above 0", name, total)
	case !v2 && n < cpus:
		t.Errorf("%s: usage of %d CPUs, want at least the %d online", name, n, cpus)
	case !v2 && (total != sum || total <= 0):
		t.Errorf("%s: total usage %v, per-CPU sum %v: want equal and above 0", name, total, sum)
	}
	if got := field("docker_cpu/total", "limit_ps"); got != limitPS {
		t.Errorf("%s: limit_ps %v, want %v", name, got, limitPS)
	}
	if got := field("docker_memory", "limit_bytes"); got != limitBytes {
		t.Errorf("%s: limit_bytes %v, want %v", name, got, limitBytes)
	}
	// The program touched 8 MiB and wrote 1 MiB of page cache.
	if got := field("docker_memory", "used_bytes"); got < 9<<20 || got > limitBytes {
		t.Errorf("%s: used_bytes %v, want 9 MiB…limit", name, got)
	}
	// --network none leaves only the loopback interface.
	for _, f := range []string{"rx_bytes", "rx_packets", "rx_errors", "rx_dropped", "tx_bytes", "tx_packets", "tx_errors", "tx_dropped"} {
		if got := field("docker_interface/lo", f); got != 0 {
			t.Errorf("%s: lo %s = %v in a container that sent nothing", name, f, got)
		}
	}
	// used_bytes is what the container wrote: the scratch file, plus the
	// few files and directories the runtime adds (/etc/hosts, /dev, …);
	// total_bytes adds the image, the program.
	used, total := field("docker_filesystem", "used_bytes"), field("docker_filesystem", "total_bytes")
	if used < 1<<20 || used > 1<<20+64<<10 {
		t.Errorf("%s: filesystem used_bytes %v, want the 1 MiB scratch file", name, used)
	}
	if total < used+imageSize || total > used+imageSize+64<<10 {
		t.Errorf("%s: filesystem total_bytes %v, want used %v + image %v", name, total, used, imageSize)
	}
	if want := n + 4; len(byBucket) != want {
		t.Errorf("%s: %d series, want %d: %d per-CPU and a total docker_cpu, docker_memory, docker_interface lo, docker_filesystem",
			name, len(byBucket), want, n)
	}
}
