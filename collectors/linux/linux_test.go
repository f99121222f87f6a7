package linux

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/engine/enginetest"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// fixtureStatfs stands in for unix.Statfs over the mounts of
// testdata/proc/4242/mountinfo; paths it does not know have no inodes,
// like the pseudo filesystems they are.
func fixtureStatfs(path string, st *unix.Statfs_t) error {
	*st = unix.Statfs_t{}
	switch path {
	case "/":
		*st = unix.Statfs_t{Bsize: 4096, Frsize: 4096, Blocks: 12868430, Bfree: 9120511, Bavail: 8462111, Files: 3276800, Ffree: 3011734}
	case "/boot":
		// Frsize 0: an old kernel, where Bsize is the block unit.
		*st = unix.Statfs_t{Bsize: 1024, Blocks: 499656, Bfree: 311217, Bavail: 280497, Files: 131072, Ffree: 130715}
	case "/media/usb stick":
		*st = unix.Statfs_t{Bsize: 4096, Frsize: 4096, Blocks: 1953024, Bavail: 1200000, Files: 1, Ffree: 1}
	case "/dev/shm", "/run/user/1000", "/sys/fs/cgroup":
		*st = unix.Statfs_t{Bsize: 4096, Frsize: 4096, Blocks: 6171021, Bavail: 6171021, Files: 6171021, Ffree: 6171020}
	case "/sys/fs/cgroup/unified":
		return unix.EACCES
	}
	return nil
}

type testEnv struct {
	s    *Stats
	log  *bytes.Buffer
	core *engine.Stats
}

func newTestStats(t testing.TB, procPath string, edit func(*Options)) testEnv {
	t.Helper()
	o := DefaultOptions()
	o.ProcPath = procPath
	o.RandomizeStartup = false
	if edit != nil {
		edit(&o)
	}
	var buf bytes.Buffer
	core := engine.NewStats()
	m := engine.Module{Name: "linux", Type: "linux_stats", Stats: core,
		Log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	s, err := New(m, o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	s.statfs = fixtureStatfs
	return testEnv{s: s, log: &buf, core: core}
}

// collectOnce runs one collection outside Run, at a fixed time.
func collectOnce(t *testing.T, s *Stats) []engine.Metric {
	t.Helper()
	if err := s.open(); err != nil {
		t.Fatalf("open: %v", err)
	}
	return s.collect(time.UnixMilli(1700000000123))
}

// render is the golden text form: one metric per line,
// "bucket{tags} field=value ... @timestamp".
func render(metrics []engine.Metric) string {
	var b strings.Builder
	for _, m := range metrics {
		b.WriteString(m.Bucket)
		b.WriteByte('{')
		for i, t := range m.Tags {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(t.Key + "=" + t.Value)
		}
		b.WriteByte('}')
		for _, f := range m.Fields {
			b.WriteString(" " + f.Name + "=" + strconv.FormatFloat(f.Value.Num, 'f', -1, 64))
		}
		b.WriteString(" @" + strconv.FormatInt(m.Timestamp, 10) + "\n")
	}
	return b.String()
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (run with -update after checking):\ngot:\n%s\nwant:\n%s", name, got, want)
	}
}

func TestCollect_Golden(t *testing.T) {
	e := newTestStats(t, "testdata/proc", nil)
	checkGolden(t, "collect", render(collectOnce(t, e.s)))
	if e.log.Len() != 0 {
		t.Errorf("unexpected log output:\n%s", e.log)
	}
}

// TestCollect_Fixture spells out the parts of the golden file the spec
// pins down, so a careless -update cannot bless a regression.
func TestCollect_Fixture(t *testing.T) {
	e := newTestStats(t, "testdata/proc", nil)
	metrics := collectOnce(t, e.s)

	f := func(bucket, name, field string, want float64) {
		t.Helper()
		m := find(metrics, bucket, name)
		if m == nil {
			t.Errorf("%s{name=%s}: missing", bucket, name)
			return
		}
		v, ok := m.Field(field)
		if !ok || v.Num != want {
			t.Errorf("%s{name=%s} %s = %v (present %v), want %v", bucket, name, field, v, ok, want)
		}
		if m.Timestamp != 1700000000123 {
			t.Errorf("%s{name=%s}: timestamp %d", bucket, name, m.Timestamp)
		}
	}
	// Raw USER_HZ counters survive procfs's division exactly.
	f("system_cpu", "cpu1", "user", 24358105)
	f("system_cpu", "cpu3", "idle", 420818513)
	f("system_cpu", "cpu2", "steal", 7534)
	f("system_activity", "", "switches", 446354)
	f("system_activity", "", "forks", 7536)
	f("system_activity", "", "running", 5)
	f("system_activity", "", "interrupts", 250395)
	f("system_activity", "", "load", 1.02)
	f("system_memory", "", "total_bytes", 24684084*1024)
	f("system_interface", "eth0", "rx_bytes", 190812699)
	f("system_interface", "lo", "tx_packets", 29)
	f("system_disk", "vda", "read_sectors", 1691994)
	f("system_disk", "vda", "read_bytes", 1691994*512)
	f("system_disk", "vda", "discard_bytes", 206624*512)
	f("system_disk", "vda", "flush_time", 18)
	f("system_disk", "sda1", "discard_ops", 0)
	f("system_filesystem", "/", "total_bytes", 12868430*4096)
	f("system_filesystem", "/boot", "free_bytes", 280497*1024)
	f("system_filesystem", "/media/usb stick", "total_inodes", 1)
	f("system_protocol", "ip", "rx_bytes", 190666552)
	f("system_protocol", "tcp", "rx_resets", 2)
	f("system_protocol", "udp", "tx_packets", 46)
	f("system_protocol", "tcp", "backlog_drops", 17)
	f("system_protocol", "tcp", "keep_alives", 1234)

	// Columns appear only when the kernel writes them.
	if m := find(metrics, "system_disk", "sda"); m == nil || len(m.Fields) != 13 {
		t.Errorf("sda (11 columns) has fields %v, want the 11 columns and 2 *_bytes", m)
	}
	if _, ok := find(metrics, "system_disk", "sda1").Field("flush_ops"); ok {
		t.Errorf("sda1 (15 columns) reports flush_ops")
	}
	for _, name := range []string{"loop0", "ram0", "sr0"} {
		if find(metrics, "system_disk", name) != nil {
			t.Errorf("disk %s is blacklisted by default but reported", name)
		}
	}
	// Mount points: tmpfs and squashfs are blacklisted by default, pseudo
	// filesystems have no inodes, a failing statfs is skipped, and /boot
	// mounted twice is reported once with the top mount's device.
	var mounts []string
	for _, m := range metrics {
		if m.Bucket == "system_filesystem" {
			name, _ := m.Tag("name")
			dev, _ := m.Tag("device")
			mounts = append(mounts, name+"@"+dev)
		}
	}
	if got, want := strings.Join(mounts, " "), "/@/dev/vda /media/usb stick@/dev/sdb1 /boot@/dev/nvme0n1p3"; got != want {
		t.Errorf("filesystems %q, want %q", got, want)
	}
}

func find(metrics []engine.Metric, bucket, name string) *engine.Metric {
	for i := range metrics {
		m := &metrics[i]
		if n, _ := m.Tag("name"); m.Bucket == bucket && n == name {
			return m
		}
	}
	return nil
}

func names(metrics []engine.Metric, bucket string) string {
	var out []string
	for _, m := range metrics {
		if m.Bucket == bucket {
			n, _ := m.Tag("name")
			out = append(out, n)
		}
	}
	return strings.Join(out, " ")
}

func TestCollect_Lists(t *testing.T) {
	f := func(bucket string, edit func(*Options), want string) {
		t.Helper()
		e := newTestStats(t, "testdata/proc", edit)
		if got := names(collectOnce(t, e.s), bucket); got != want {
			t.Errorf("%s: got %q, want %q", bucket, got, want)
		}
	}
	f("system_interface", nil, "eth0 ifb0 ifb1 lo")
	f("system_interface", func(o *Options) { o.InterfaceBlacklist = []string{`ifb\d+`} }, "eth0 lo")
	// Anchored: "eth" matches no interface name.
	f("system_interface", func(o *Options) { o.InterfaceBlacklist = []string{"eth", "l"} }, "eth0 ifb0 ifb1 lo")
	// Only eth0: whitelist it, blacklist everything.
	f("system_interface", func(o *Options) {
		o.InterfaceWhitelist = []string{"eth0"}
		o.InterfaceBlacklist = []string{".*"}
	}, "eth0")
	// A whitelist alone excludes nothing (SPEC §6).
	f("system_interface", func(o *Options) { o.InterfaceWhitelist = []string{"eth0"} }, "eth0 ifb0 ifb1 lo")

	f("system_disk", nil, "vda zram0 sda sda1 nvme0n1")
	f("system_disk", func(o *Options) { o.DiskWhitelist = []string{"loop0"} }, "loop0 vda zram0 sda sda1 nvme0n1")
	f("system_disk", func(o *Options) { o.DiskBlacklist = nil }, "loop0 loop1 vda zram0 sda sda1 sr0 ram0 nvme0n1")
	f("system_disk", func(o *Options) { o.DiskBlacklist = append(o.DiskBlacklist, `sd[a-z]+\d+`, "zram.*") }, "vda sda nvme0n1")

	// Filesystems match on type, mount point or device.
	f("system_filesystem", nil, "/ /media/usb stick /boot")
	f("system_filesystem", func(o *Options) { o.FilesystemBlacklist = append(o.FilesystemBlacklist, "/boot", "vfat") }, "/")
	f("system_filesystem", func(o *Options) { o.FilesystemBlacklist = append(o.FilesystemBlacklist, "/dev/vda") }, "/media/usb stick /boot")
	f("system_filesystem", func(o *Options) { o.FilesystemWhitelist = []string{"/run/user/.*"} }, "/ /media/usb stick /run/user/1000 /boot")
	f("system_filesystem", func(o *Options) { o.FilesystemBlacklist = nil },
		"/ /dev/shm /sys/fs/cgroup /media/usb stick /run/user/1000 /boot")
}

func TestOptions_Validate(t *testing.T) {
	f := func(edit func(*Options), wantErr string) {
		t.Helper()
		o := DefaultOptions()
		edit(&o)
		err := o.Validate()
		switch {
		case wantErr == "" && err != nil:
			t.Errorf("unexpected error %v", err)
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
			t.Errorf("error %v, want one containing %q", err, wantErr)
		}
	}
	f(func(o *Options) {}, "")
	f(func(o *Options) { o.InterfaceWhitelist = []string{"eth(", "x"} }, `interface_whitelist: bad regular expression "eth("`)
	f(func(o *Options) { o.DiskBlacklist = []string{"a", "[z-a]"} }, "disk_blacklist")
	f(func(o *Options) { o.FilesystemWhitelist = []string{"*"} }, "filesystem_whitelist")
	// The wrapping group keeps an alternation anchored on both sides.
	f(func(o *Options) { o.FilesystemBlacklist = []string{"a|b"} }, "")
	f(func(o *Options) { o.ProcPath = "" }, "proc_path")
}

func TestOptions_Config(t *testing.T) {
	types := []engine.Type{engine.SourceType("linux_stats", DefaultOptions, New)}
	f := func(doc, wantErr string) {
		t.Helper()
		_, err := engine.Parse([]byte(doc), types, func(string) (string, bool) { return "", false })
		switch {
		case wantErr == "" && err != nil:
			t.Errorf("unexpected error %v", err)
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
			t.Errorf("error %v, want one containing %q", err, wantErr)
		}
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, example, _ := strings.Cut(string(readme), "```toml\n")
	example, _, _ = strings.Cut(example, "```")
	f(example, "")
	// A configuration with bad options never reaches New: the registry
	// checks the common options, then the module's Validate.
	f("[l]\nmodule_type = \"linux_stats\"\ndisk_whitelist = [\"(\"]\n", "disk_whitelist")
	f("[l]\nmodule_type = \"linux_stats\"\ninterface_whitelist = [\"eth(\", \"x\"]\n", `interface_whitelist: bad regular expression "eth("`)
	f("[l]\nmodule_type = \"linux_stats\"\nfilesystem_whitelist = [\"*\"]\n", "filesystem_whitelist")
	f("[l]\nmodule_type = \"linux_stats\"\nproc_path = \"\"\n", "proc_path")
	f("[l]\nmodule_type = \"linux_stats\"\nflush_interval = 0\n", "flush_interval")
	f("[l]\nmodule_type = \"linux_stats\"\ndisks_whitelist = [\"sda\"]\n", "disks_whitelist")
}

// TestRun_Interval checks the schedule on synctest's fake clock: one
// collection at once, then one per flush_interval, none after cancel.
func TestRun_Interval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newTestStats(t, "testdata/proc", nil)
		start := time.Now()
		ctx, cancel := context.WithCancel(t.Context())
		var rec enginetest.Recorder
		done := make(chan error)
		go func() { done <- e.s.Run(ctx, &rec) }()
		time.Sleep(25 * time.Second)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		batches := rec.Batches()
		if len(batches) != 3 {
			t.Fatalf("%d batches in 25 s at a 10 s interval, want 3", len(batches))
		}
		var total int
		for i, b := range batches {
			want := start.Add(time.Duration(i) * 10 * time.Second).UnixMilli()
			if b.Source != "linux" || b.Metrics[0].Timestamp != want {
				t.Errorf("batch %d: source %q timestamp %d, want linux %d", i, b.Source, b.Metrics[0].Timestamp, want)
			}
			total += len(b.Metrics)
		}
		if got := e.core.Counter("metrics_produced").Load(); got != uint64(total) {
			t.Errorf("metrics_produced %d, want %d", got, total)
		}
	})
}

func TestRun_RandomizedStartup(t *testing.T) {
	f := func(interval float64, maxDelay time.Duration) {
		t.Helper()
		synctest.Test(t, func(t *testing.T) {
			e := newTestStats(t, "testdata/proc", func(o *Options) {
				o.FlushInterval = interval
				o.RandomizeStartup = true
			})
			start := time.Now()
			ctx, cancel := context.WithCancel(t.Context())
			var rec enginetest.Recorder
			done := make(chan error)
			go func() { done <- e.s.Run(ctx, &rec) }()
			time.Sleep(maxDelay)
			synctest.Wait()
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("Run = %v, want nil on cancellation", err)
			}
			batches := rec.Batches()
			if len(batches) != 1 {
				t.Fatalf("interval %v: %d batches within the %v maximum delay, want 1", interval, len(batches), maxDelay)
			}
			if d := time.UnixMilli(batches[0].Metrics[0].Timestamp).Sub(start); d < 0 || d > maxDelay {
				t.Errorf("interval %v: first collection after %v, want 0…%v", interval, d, maxDelay)
			}
		})
	}
	f(3, 0) // 3 s and below: no delay
	f(10, 9*time.Second)
	f(60, 15*time.Second)

	for range 1000 {
		o := DefaultOptions()
		if d := o.StartupDelay(); d < 0 || d > 9*time.Second {
			t.Fatalf("startup delay %v at a 10 s interval", d)
		}
	}
}

// copyTree copies a fixture tree, symlinks included (os.CopyFS refuses
// them), so a test can damage its copy.
func copyTree(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		to := filepath.Join(dst, rel)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, to)
		case d.IsDir():
			return os.MkdirAll(to, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(to, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestRun_MissingFiles removes files under a running module: their groups
// go, the others stay, each loss is logged once and the module keeps
// polling; a file that comes back is read again.
func TestRun_MissingFiles(t *testing.T) {
	proc := copyTree(t, "testdata/proc")
	meminfo, err := os.ReadFile(filepath.Join(proc, "meminfo"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"meminfo", "4242/net/snmp"} {
		if err := os.Remove(filepath.Join(proc, f)); err != nil {
			t.Fatal(err)
		}
	}
	synctest.Test(t, func(t *testing.T) {
		e := newTestStats(t, proc, nil)
		ctx, cancel := context.WithCancel(t.Context())
		var rec enginetest.Recorder
		done := make(chan error)
		go func() { done <- e.s.Run(ctx, &rec) }()
		time.Sleep(25 * time.Second)
		synctest.Wait()
		if err := os.WriteFile(filepath.Join(proc, "meminfo"), meminfo, 0o644); err != nil {
			t.Error(err)
		}
		time.Sleep(10 * time.Second)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}

		batches := rec.Batches()
		if len(batches) != 4 {
			t.Fatalf("%d batches, want 4", len(batches))
		}
		for i, b := range batches {
			if got := names(b.Metrics, "system_cpu"); got != "cpu0 cpu1 cpu2 cpu3" {
				t.Errorf("batch %d: cpus %q", i, got)
			}
			// Without net/snmp, only the netstat fields remain: ip bytes
			// and the TcpExt counters; icmp and udp have none.
			if got := names(b.Metrics, "system_protocol"); got != "ip tcp" {
				t.Errorf("batch %d: protocols %q, want ip tcp", i, got)
			}
			if m := find(b.Metrics, "system_protocol", "ip"); m != nil && len(m.Fields) != 2 {
				t.Errorf("batch %d: ip fields %v, want rx_bytes tx_bytes", i, m.Fields)
			}
			if got, want := find(b.Metrics, "system_memory", "") != nil, i == 3; got != want {
				t.Errorf("batch %d: system_memory present %v, want %v", i, got, want)
			}
		}
		log := e.log.String()
		for _, file := range []string{"file=meminfo", "file=net/snmp"} {
			if n := strings.Count(log, "level=WARN msg=\"skipping metrics from unreadable file\" "+file); n != 1 {
				t.Errorf("%s logged %d times, want once:\n%s", file, n, log)
			}
		}
		if !strings.Contains(log, `msg="reading again" file=meminfo`) {
			t.Errorf("recovery of meminfo not logged:\n%s", log)
		}
		if got := e.core.Counter("read_errors").Load(); got != 3+4 {
			t.Errorf("read_errors %d, want 7 (meminfo 3 times, net/snmp 4 times)", got)
		}
		if got := e.core.FlushErrors.Load(); got != 0 {
			t.Errorf("flush_errors %d, want 0", got)
		}
	})
}

// TestRun_NothingReadable: an empty proc root yields no batch and counts
// flush errors, but the module keeps running; a missing root fails Run.
func TestRun_NothingReadable(t *testing.T) {
	empty := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		e := newTestStats(t, empty, nil)
		ctx, cancel := context.WithCancel(t.Context())
		var rec enginetest.Recorder
		done := make(chan error)
		go func() { done <- e.s.Run(ctx, &rec) }()
		time.Sleep(15 * time.Second)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		if n := len(rec.Batches()); n != 0 {
			t.Errorf("%d batches from an empty proc root", n)
		}
		if got := e.core.FlushErrors.Load(); got != 2 {
			t.Errorf("flush_errors %d, want 2", got)
		}
	})

	e := newTestStats(t, filepath.Join(empty, "absent"), nil)
	err := e.s.Run(t.Context(), &enginetest.Recorder{})
	if err == nil || !strings.Contains(err.Error(), "proc_path") || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Run on a missing proc_path: %v", err)
	}
}

// TestCollect_Live reads this machine's /proc and statfs.
func TestCollect_Live(t *testing.T) {
	e := newTestStats(t, "/proc", nil)
	e.s.statfs = unix.Statfs
	metrics := collectOnce(t, e.s)

	fields := func(bucket, name string, want ...string) *engine.Metric {
		t.Helper()
		m := find(metrics, bucket, name)
		if m == nil {
			t.Fatalf("%s{name=%q} missing", bucket, name)
		}
		for _, f := range want {
			if _, ok := m.Field(f); !ok {
				t.Errorf("%s{name=%q}: field %s missing", bucket, name, f)
			}
		}
		return m
	}
	fields("system_cpu", "cpu0", "user", "nice", "system", "idle", "wait", "interrupt", "softirq", "steal")
	fields("system_activity", "", "switches", "forks", "running", "interrupts", "load")
	fields("system_interface", "lo", "rx_bytes", "rx_packets", "rx_errors", "rx_dropped",
		"tx_bytes", "tx_packets", "tx_errors", "tx_dropped")
	mem := fields("system_memory", "", "total_bytes", "free_bytes")
	if v, _ := mem.Field("total_bytes"); v.Num <= 0 {
		t.Errorf("total_bytes %v", v)
	}
	if e.log.Len() != 0 {
		t.Logf("log output on this machine:\n%s", e.log)
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
