package dist

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/io/udp"
)

// maxExposure is the highest "Overall exposure level" systemd-analyze
// security may give the unit, with or without its drop-ins.
const maxExposure = 2.0

const unitPath = "systemd/bucky3.service"

var dropIns = []string{"docker.conf", "journal.conf"}

// need fails the test when tool is not on PATH: these tests check real
// systemd and dpkg behaviour and must not pass without them.
func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found in PATH: this test needs it (Debian: systemd for systemd-analyze, dpkg for dpkg-deb)", tool)
		}
	}
}

// serviceSettings returns the [Service] settings of a unit or drop-in file,
// values in file order; an empty assignment ("CapabilityBoundingSet=") is
// kept as "".
func serviceSettings(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	settings := make(map[string][]string)
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			section = strings.Trim(line, "[]")
		case section == "Service":
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: not a setting: %q", path, line)
			}
			k = strings.TrimSpace(k)
			settings[k] = append(settings[k], strings.TrimSpace(v))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return settings
}

// parseBytes parses a systemd size such as 1536M (1024-based suffixes).
func parseBytes(t *testing.T, s string) int64 {
	t.Helper()
	mult := int64(1)
	if i := strings.IndexAny(s, "KMGT"); i >= 0 && i == len(s)-1 {
		mult = 1 << (10 * (strings.IndexByte("KMGT", s[i]) + 1))
		s = s[:i]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("size %q: %v", s, err)
	}
	return n * mult
}

func TestUnitSettings(t *testing.T) {
	s := serviceSettings(t, unitPath)
	f := func(key string, want ...string) {
		t.Helper()
		if got := s[key]; !slices.Equal(got, want) {
			t.Errorf("%s: got %q, want %q", key, got, want)
		}
	}
	f("Type", "notify")
	f("User", "bucky3")
	f("ExecStart", "/usr/bin/bucky3 /etc/bucky3/bucky3.toml")
	f("Restart", "on-failure")
	f("RestartPreventExitStatus", "2")
	f("KillMode", "mixed")
	f("TimeoutStopSec", "15")
	f("WatchdogSec", "30")
	f("CapabilityBoundingSet", "")
	f("AmbientCapabilities", "")
	f("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6 AF_NETLINK")
	f("ProtectProc", "invisible")
	// The base unit must start on a host without the docker and
	// systemd-journal groups: the drop-ins add them.
	f("SupplementaryGroups")
	if !slices.Contains(s["SystemCallFilter"], "@system-service") {
		t.Errorf("SystemCallFilter: got %q, want @system-service among them", s["SystemCallFilter"])
	}
	if len(s["MemoryMax"]) != 1 {
		t.Fatalf("MemoryMax: got %q, want one value", s["MemoryMax"])
	}
	if m := parseBytes(t, s["MemoryMax"][0]); m <= engine.DefaultMemoryLimit {
		t.Errorf("MemoryMax %d must be above the default memory_limit %d, or the kernel kills the agent before Go's soft limit acts", m, engine.DefaultMemoryLimit)
	}
	for k, vs := range s {
		for _, v := range vs {
			if strings.Contains(v, "CAP_") {
				t.Errorf("%s=%s: no capability; the receive buffer comes from sysctl.d/60-bucky3.conf", k, v)
			}
		}
	}

	for name, group := range map[string]string{"docker.conf": "docker", "journal.conf": "systemd-journal"} {
		d := serviceSettings(t, filepath.Join("systemd/bucky3.service.d", name))
		if !slices.Equal(d["SupplementaryGroups"], []string{group}) {
			t.Errorf("%s: SupplementaryGroups %q, want %q", name, d["SupplementaryGroups"], group)
		}
	}
}

// unitDir copies the unit and the named drop-ins into a fresh directory,
// where systemd-analyze finds the drop-ins (bucky3.service.d/ next to the
// unit). ExecStart names an executable that exists, as verify checks it.
func unitDir(t *testing.T, names ...string) string {
	t.Helper()
	trueBin, err := exec.LookPath("true")
	if err != nil {
		t.Fatal("true not found in PATH")
	}
	b, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.Replace(b, []byte("ExecStart=/usr/bin/bucky3 "), []byte("ExecStart="+trueBin+" "), 1)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bucky3.service"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if len(names) > 0 {
		if err := os.Mkdir(filepath.Join(dir, "bucky3.service.d"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join("systemd/bucky3.service.d", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "bucky3.service.d", name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "bucky3.service")
}

// dropInSets are the combinations an operator may enable.
var dropInSets = [][]string{nil, {"docker.conf"}, {"journal.conf"}, dropIns}

var exposureRE = regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`)

// exposure runs systemd-analyze security with args and returns the overall
// exposure level.
func exposure(t *testing.T, args ...string) float64 {
	t.Helper()
	out, err := exec.Command("systemd-analyze", append([]string{"security", "--offline=true", "--no-pager"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security %q: %v\n%s", args, err, out)
	}
	m := exposureRE.FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security %q: no overall exposure level in\n%s", args, out)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// verify runs systemd-analyze verify with args and fails on any output:
// an unknown or malformed setting is only a warning there.
func verify(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("systemd-analyze", append([]string{"verify", "--no-pager"}, args...)...).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify %q: %v\n%s", args, err, out)
	}
}

func TestUnitSecurity(t *testing.T) {
	need(t, "systemd-analyze")
	for _, set := range dropInSets {
		if got := exposure(t, unitDir(t, set...)); got > maxExposure {
			t.Errorf("drop-ins %q: exposure %.1f, want <= %.1f (systemd-analyze security --offline=true)", set, got, maxExposure)
		}
	}
}

func TestUnitVerify(t *testing.T) {
	need(t, "systemd-analyze")
	for _, set := range dropInSets {
		verify(t, unitDir(t, set...))
	}
}

func TestSysctl(t *testing.T) {
	const path = "sysctl.d/60-bucky3.conf"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	values := make(map[string]string)
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: not a setting: %q", path, line)
		}
		k = strings.TrimSpace(k)
		values[k] = strings.TrimSpace(v)
		// A misspelt key is ignored by systemd-sysctl with a warning.
		if _, err := os.Stat(filepath.Join("/proc/sys", strings.ReplaceAll(k, ".", "/"))); err != nil {
			t.Errorf("%s: %s is not a kernel setting here: %v", path, k, err)
		}
	}
	v, ok := values["net.core.rmem_max"]
	if !ok {
		t.Fatalf("%s does not set net.core.rmem_max", path)
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s: net.core.rmem_max %q: %v", path, v, err)
	}
	if n < udp.DefaultReceiveBuffer {
		t.Errorf("net.core.rmem_max %d is below the default receive_buffer %d", n, udp.DefaultReceiveBuffer)
	}
}
