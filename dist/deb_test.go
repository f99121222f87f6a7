package dist

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestDebInstall builds the .deb with packaging/deb/build.sh and installs
// it into a scratch root with the host's dpkg run chrooted there, as on a
// real host: the maintainer scripts' useradd and dpkg-statoverride act on
// the root's /etc and dpkg database, and dpkg resolves the statoverride's
// group in the same user database. (dpkg --root would look the group up on
// the host.) The root holds just what dpkg and the scripts call, copied from
// the host with their libraries, and a systemctl stub that logs its
// arguments, so both sides of "is systemd running" are exercised.
func TestDebInstall(t *testing.T) {
	need(t, "go", "dpkg", "dpkg-deb", "dpkg-query", "ldd", "systemd-analyze")
	if os.Geteuid() != 0 {
		t.Fatal("dpkg runs chrooted into the scratch root: run the test as root (CI does)")
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	deb := buildDeb(t, filepath.Join(dir, "out"))
	scratchRoot(t, root)
	copyFile(t, deb, filepath.Join(root, "tmp/bucky3.deb"), 0o644)

	dpkg := func(args ...string) {
		t.Helper()
		cmd := exec.Command("/usr/bin/dpkg", args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
		cmd.Dir = "/"
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("dpkg %q in %s: %v\n%s", args, root, err, out)
		}
		// The maintainer scripts are quiet when all goes well.
		for line := range strings.Lines(string(out)) {
			if strings.Contains(line, "/var/lib/dpkg/info/bucky3.") || strings.Contains(strings.ToLower(line), "warning") {
				t.Errorf("dpkg %q: %s", args, line)
			}
		}
	}
	systemctlLog := filepath.Join(root, "systemctl.log")
	systemctlCalls := func(want ...string) {
		t.Helper()
		b, err := os.ReadFile(systemctlLog)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		got := strings.Fields(strings.ReplaceAll(string(b), " ", "_"))
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("systemctl calls: got %q, want %q", got, want)
		}
		os.Remove(systemctlLog)
	}

	// A fresh install where systemd does not run (a chroot, an image build).
	dpkg("--install", "/tmp/bucky3.deb")
	systemctlCalls()
	for path, src := range map[string]string{
		"usr/lib/systemd/system/bucky3.service":          "systemd/bucky3.service",
		"usr/share/bucky3/bucky3.service.d/docker.conf":  "systemd/bucky3.service.d/docker.conf",
		"usr/share/bucky3/bucky3.service.d/journal.conf": "systemd/bucky3.service.d/journal.conf",
		"usr/lib/sysctl.d/60-bucky3.conf":                "sysctl.d/60-bucky3.conf",
		"etc/bucky3/bucky3.toml":                         "bucky3.toml",
	} {
		sameFile(t, filepath.Join(root, path), src)
	}
	conffiles, err := exec.Command("dpkg-query", "--admindir="+filepath.Join(root, "var/lib/dpkg"), "-W", "-f=${Conffiles}", "bucky3").Output()
	if err != nil || !strings.Contains(string(conffiles), "/etc/bucky3/bucky3.toml ") {
		t.Errorf("conffiles: %q (%v), want /etc/bucky3/bucky3.toml", conffiles, err)
	}
	// The binary runs: its usage exits 2.
	if err := exec.Command(filepath.Join(root, "usr/bin/bucky3"), "-h").Run(); exitCode(err) != 2 {
		t.Errorf("installed bucky3 -h: %v, want exit status 2", err)
	}

	uid, gid := systemUser(t, root)
	conf := filepath.Join(root, "etc/bucky3/bucky3.toml")
	checkOwner := func() {
		t.Helper()
		fi, err := os.Stat(conf)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm() != 0o640 || st.Uid != 0 || int(st.Gid) != gid {
			t.Errorf("%s: mode %v owner %d:%d, want 0640 root:bucky3 (%d)", conf, fi.Mode().Perm(), st.Uid, st.Gid, gid)
		}
	}
	checkOwner()
	if uid >= 1000 {
		t.Errorf("bucky3 uid %d is not a system uid", uid)
	}

	// An upgrade (here the same version again) while systemd runs: the
	// user is not created twice, an edited configuration is kept.
	if err := os.MkdirAll(filepath.Join(root, "run/systemd/system"), 0o755); err != nil {
		t.Fatal(err)
	}
	edited := []byte("# edited by the operator\n")
	if err := os.WriteFile(conf, edited, 0o600); err != nil {
		t.Fatal(err)
	}
	dpkg("--install", "/tmp/bucky3.deb")
	systemctlCalls("daemon-reload", "restart_systemd-sysctl.service", "try-restart_bucky3.service")
	systemUser(t, root)
	if b, err := os.ReadFile(conf); err != nil || !bytes.Equal(b, edited) {
		t.Errorf("upgrade: configuration %q (%v), want the operator's %q kept", b, err, edited)
	}
	checkOwner()

	// The installed unit with both drop-ins enabled as the README says,
	// by links (relative here: analyze resolves them inside --root).
	enabled := filepath.Join(root, "etc/systemd/system/bucky3.service.d")
	if err := os.MkdirAll(enabled, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range dropIns {
		if err := os.Symlink("../../../../usr/share/bucky3/bucky3.service.d/"+name, filepath.Join(enabled, name)); err != nil {
			t.Fatal(err)
		}
	}
	verify(t, "--root="+root, "bucky3.service")
	if got := exposure(t, "--root="+root, "bucky3.service"); got > maxExposure {
		t.Errorf("installed unit with both drop-ins: exposure %.1f, want <= %.1f", got, maxExposure)
	}

	// Purge: the service is disabled and stopped, the files and the
	// configuration go, the system user stays (Debian keeps those).
	dpkg("--purge", "bucky3")
	systemctlCalls("disable_--now_bucky3.service", "daemon-reload", "daemon-reload")
	for _, path := range []string{"usr/bin/bucky3", "usr/lib/systemd/system/bucky3.service", "etc/bucky3"} {
		if _, err := os.Lstat(filepath.Join(root, path)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("after purge %s: %v, want it gone", path, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(root, "var/lib/dpkg/statoverride")); bytes.Contains(b, []byte("bucky3.toml")) {
		t.Errorf("after purge the statoverride remains: %q", b)
	}
	systemUser(t, root)
}

// buildDeb runs packaging/deb/build.sh into out and returns the package.
func buildDeb(t *testing.T, out string) string {
	t.Helper()
	cmd := exec.Command("bash", "../packaging/deb/build.sh", out)
	stdout, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("packaging/deb/build.sh: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("packaging/deb/build.sh: %v", err)
	}
	deb := strings.TrimSpace(string(stdout))
	arch, err := exec.Command("dpkg", "--print-architecture").Output()
	if err != nil {
		t.Fatal(err)
	}
	// Debian versions start with a digit.
	re := regexp.MustCompile(`^bucky3_[0-9][A-Za-z0-9.+~]*_` + regexp.QuoteMeta(strings.TrimSpace(string(arch))) + `\.deb$`)
	if !re.MatchString(filepath.Base(deb)) {
		t.Fatalf("package %q does not match %s", deb, re)
	}
	return deb
}

// scratchRoot makes a root in which dpkg can run bucky3's maintainer
// scripts: the host's usr-merge links, a shell and the tools the scripts
// call with their libraries, minimal account files, a dpkg database that
// lists the package's dependencies as installed, and the host's targets and
// slices for systemd-analyze verify --root.
func scratchRoot(t *testing.T, root string) {
	t.Helper()
	for _, d := range []string{"bin", "sbin", "lib", "lib64"} {
		if target, err := os.Readlink("/" + d); err == nil && !filepath.IsAbs(target) {
			mustDo(t, os.MkdirAll(filepath.Join(root, target), 0o755))
			mustDo(t, os.Symlink(target, filepath.Join(root, d)))
		}
	}
	for _, d := range []string{"usr/bin", "usr/sbin", "usr/lib/systemd/system", "etc", "dev", "run", "tmp", "var/lib/dpkg/info", "var/lib/dpkg/updates", "var/log"} {
		mustDo(t, os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	// dpkg runs dpkg-split and dpkg-deb, and checks that sh, rm, tar, diff,
	// ldconfig and start-stop-daemon are on PATH; the scripts call the rest.
	for _, tool := range []string{"dpkg", "dpkg-deb", "dpkg-split", "/bin/sh", "rm", "tar", "diff", "ldconfig", "start-stop-daemon",
		"getent", "groupadd", "useradd", "nologin", "dpkg-statoverride"} {
		copyTool(t, root, tool)
	}
	files := map[string]string{
		"etc/passwd":        "root:x:0:0:root:/root:/bin/sh\n",
		"etc/group":         "root:x:0:\n",
		"etc/shadow":        "root:*:19000:0:99999:7:::\n",
		"etc/gshadow":       "root:*::\n",
		"etc/nsswitch.conf": "passwd: files\ngroup: files\nshadow: files\ngshadow: files\n",
		"etc/login.defs":    "SYS_UID_MIN 100\nSYS_UID_MAX 999\nSYS_GID_MIN 100\nSYS_GID_MAX 999\nUID_MIN 1000\nGID_MIN 1000\n",
		"usr/bin/systemctl": "#!/bin/sh\necho \"$*\" >>/systemctl.log\n",
	}
	// The dpkg database lists stand-ins for what the root provides: the
	// package's dependencies, and base-files owning the shared directories
	// (dpkg warns when it leaves a directory that no package owns, and
	// drops a package that owns no file as disappeared).
	var status strings.Builder
	for _, p := range []struct{ name, list string }{
		{"base-files", "/.\n/etc\n/etc/nsswitch.conf\n/usr\n/usr/bin\n/usr/lib\n/usr/lib/sysctl.d\n/usr/lib/systemd\n/usr/lib/systemd/system\n/usr/share\n/usr/share/doc\n"},
		{"libc6", ""},
		{"passwd", ""},
	} {
		fmt.Fprintf(&status, "Package: %s\nStatus: install ok installed\nArchitecture: %s\nVersion: 1\nMaintainer: scratch root\nDescription: stand-in\n\n", p.name, hostArch(t))
		files["var/lib/dpkg/info/"+p.name+".list"] = p.list
	}
	files["var/lib/dpkg/status"] = status.String()
	for path, content := range files {
		mustDo(t, os.WriteFile(filepath.Join(root, path), []byte(content), 0o644))
	}
	mustDo(t, os.Chmod(filepath.Join(root, "usr/bin/systemctl"), 0o755))
	null := filepath.Join(root, "dev/null")
	if err := unix.Mknod(null, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		// Without CAP_MKNOD (some containers) a file serves for redirections.
		mustDo(t, os.WriteFile(null, nil, 0o666))
	}
	units, err := filepath.Glob("/usr/lib/systemd/system/*.target")
	if err != nil || len(units) == 0 {
		t.Fatal("no /usr/lib/systemd/system/*.target on this host: install systemd")
	}
	slices, _ := filepath.Glob("/usr/lib/systemd/system/*.slice")
	for _, u := range append(units, slices...) {
		b, err := os.ReadFile(u)
		if err != nil {
			continue // a dangling alias
		}
		mustDo(t, os.WriteFile(filepath.Join(root, u), b, 0o644))
	}
}

// copyTool copies the executable tool (a name on PATH or a path) and the
// shared libraries ldd lists into root at the same paths.
func copyTool(t *testing.T, root, tool string) {
	t.Helper()
	path, err := exec.LookPath(tool)
	if err != nil {
		// As root, PATH usually holds the sbin directories; be sure.
		path, err = exec.LookPath("/usr/sbin/" + tool)
	}
	if err != nil {
		t.Fatalf("%s not found: the scratch root needs it for the maintainer scripts", tool)
	}
	copyFile(t, path, filepath.Join(root, path), 0o755)
	out, err := exec.Command("ldd", path).CombinedOutput()
	if err != nil && !strings.Contains(string(out), "not a dynamic executable") {
		t.Fatalf("ldd %s: %v", path, err)
	}
	for _, f := range strings.Fields(string(out)) {
		if strings.HasPrefix(f, "/") {
			copyFile(t, f, filepath.Join(root, f), 0o755)
		}
	}
}

// copyFile copies what src points to into dst, creating its directory.
func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	mustDo(t, os.MkdirAll(filepath.Dir(dst), 0o755))
	mustDo(t, os.WriteFile(dst, b, mode))
}

// sameFile fails unless installed has the content of the repository file src.
func sameFile(t *testing.T, installed, src string) {
	t.Helper()
	got, err := os.ReadFile(installed)
	if err != nil {
		t.Errorf("installed file: %v", err)
		return
	}
	want, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from dist/%s", installed, src)
	}
}

// systemUser returns the uid and gid of the root's bucky3 user, failing
// unless there is exactly one, with the group of the same name and no login.
func systemUser(t *testing.T, root string) (uid, gid int) {
	t.Helper()
	passwd, err := os.ReadFile(filepath.Join(root, "etc/passwd"))
	if err != nil {
		t.Fatal(err)
	}
	group, err := os.ReadFile(filepath.Join(root, "etc/group"))
	if err != nil {
		t.Fatal(err)
	}
	var users, groups [][]string
	for line := range strings.Lines(string(passwd)) {
		if f := strings.Split(strings.TrimSpace(line), ":"); f[0] == "bucky3" {
			users = append(users, f)
		}
	}
	for line := range strings.Lines(string(group)) {
		if f := strings.Split(strings.TrimSpace(line), ":"); f[0] == "bucky3" {
			groups = append(groups, f)
		}
	}
	if len(users) != 1 || len(groups) != 1 || len(users[0]) != 7 || len(groups[0]) != 4 {
		t.Fatalf("want one bucky3 user and group, got passwd %q, group %q", users, groups)
	}
	u := users[0]
	uid, _ = strconv.Atoi(u[2])
	gid, _ = strconv.Atoi(groups[0][2])
	if u[3] != groups[0][2] || u[6] != "/usr/sbin/nologin" {
		t.Errorf("bucky3 user %q: want group %s and shell /usr/sbin/nologin", u, groups[0][2])
	}
	return uid, gid
}

func hostArch(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("dpkg", "--print-architecture").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
