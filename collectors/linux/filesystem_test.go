package linux

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestUnescapeMount(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
	f("/", "/")
	f(`/media/usb\040stick`, "/media/usb stick")
	f(`/a\011b\012c\134d`, "/a\tb\nc\\d")
	f(`\040\040`, "  ")
	// Not an escape: kept as written.
	f(`/a\`, `/a\`)
	f(`/a\04`, `/a\04`)
	f(`/a\089`, `/a\089`)
	f(`/a\400`, `/a\400`) // above \377
	f(`/a\\040`, `/a\ `)
}

// escapeMount is the kernel's mangling of mount paths (fs/proc_namespace.c).
func escapeMount(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case ' ', '\t', '\n', '\\':
			b.WriteString(`\` + strconv.FormatUint(uint64(c)|0o1000, 8)[1:])
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func FuzzUnescapeMount(f *testing.F) {
	f.Add(`/media/usb\040stick`)
	f.Add(`/a\011b\012c\134d`)
	f.Add(`/a\\040`)
	f.Add(`/a\400`)
	f.Fuzz(func(t *testing.T, in string) {
		got := unescapeMount(in)
		if len(got) > len(in) {
			t.Fatalf("unescapeMount(%q) = %q grew", in, got)
		}
		if !strings.Contains(in, `\`) && got != in {
			t.Fatalf("unescapeMount(%q) = %q changed a path without escapes", in, got)
		}
		// Whatever the kernel writes for a path reads back as that path.
		if back := unescapeMount(escapeMount(in)); back != in {
			t.Fatalf("unescapeMount(escapeMount(%q)) = %q", in, back)
		}
	})
}

// FuzzCollect puts arbitrary content in one file of a copy of the fixture
// tree: whatever procfs or the parser makes of it, collection must not
// panic and the groups fed by other files must still report.
func FuzzCollect(f *testing.F) {
	files := []string{"stat", "loadavg", "meminfo", "diskstats", "net/dev", "net/snmp", "net/netstat", "self/mountinfo"}
	for i, name := range files {
		data, err := os.ReadFile(filepath.Join("testdata/proc", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), string(data))
		f.Add(uint8(i), string(data[:len(data)/2]))
	}
	proc := copyTree(f, "testdata/proc")
	e := newTestStats(f, proc, nil)
	if err := e.s.open(); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, which uint8, content string) {
		name := files[int(which)%len(files)]
		path := filepath.Join(proc, name)
		orig, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := os.WriteFile(path, orig, 0o644); err != nil {
				t.Error(err)
			}
		}()
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		metrics := e.s.collect(time.Unix(0, 0))
		if name != "meminfo" && find(metrics, "system_memory", "") == nil {
			t.Fatalf("%s damaged: system_memory lost", name)
		}
		if name != "stat" && find(metrics, "system_cpu", "cpu0") == nil {
			t.Fatalf("%s damaged: system_cpu lost", name)
		}
	})
}
