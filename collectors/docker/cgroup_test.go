package docker

import (
	"slices"
	"testing"
)

func TestParsePerCPU(t *testing.T) {
	f := func(in string, want ...uint64) {
		t.Helper()
		got, err := parsePerCPU([]byte(in))
		if err != nil {
			t.Fatalf("parsePerCPU(%q): %v", in, err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("parsePerCPU(%q) = %v, want %v", in, got, want)
		}
	}
	f("52452209 14451502 \n", 52452209, 14451502)
	f("0", 0)
	f("18446744073709551615 1\n", 18446744073709551615, 1)
}

func TestParsePerCPU_Failure(t *testing.T) {
	f := func(in string) {
		t.Helper()
		if got, err := parsePerCPU([]byte(in)); err == nil {
			t.Fatalf("parsePerCPU(%q) = %v, want an error", in, got)
		}
	}
	f("")
	f(" \n")
	f("12 -1")
	f("12 x")
	f("18446744073709551616")
}

func TestParseCPUStat(t *testing.T) {
	f := func(in string, want uint64) {
		t.Helper()
		got, err := parseCPUStat([]byte(in))
		if err != nil || got != want {
			t.Fatalf("parseCPUStat(%q) = %d, %v, want %d", in, got, err, want)
		}
	}
	f("usage_usec 123\nuser_usec 100\n", 123)
	f("user_usec 100\nusage_usec 7", 7)
	f("nr_periods 0\r\nusage_usec 42\r\n", 42)
}

func TestParseCPUStat_Failure(t *testing.T) {
	f := func(in string) {
		t.Helper()
		if got, err := parseCPUStat([]byte(in)); err == nil {
			t.Fatalf("parseCPUStat(%q) = %d, want an error", in, got)
		}
	}
	f("")
	f("user_usec 100\n")
	f("usage_usec\n")
	f("usage_usec x\n")
	f("usage_usec_total 5\n")
}

func TestParseCPULimits(t *testing.T) {
	cpuMax := func(in string, want float64) {
		t.Helper()
		got, err := parseCPUMax([]byte(in))
		if err != nil || got != want {
			t.Fatalf("parseCPUMax(%q) = %v, %v, want %v", in, got, err, want)
		}
	}
	cpuMax("max 100000\n", 0)
	cpuMax("50000 100000\n", 5e8)
	cpuMax("150000 100000", 1.5e9)
	cpuMax("1000 1000", 1e9)

	cfs := func(quota, period string, want float64) {
		t.Helper()
		got, err := parseCFS([]byte(quota), []byte(period))
		if err != nil || got != want {
			t.Fatalf("parseCFS(%q, %q) = %v, %v, want %v", quota, period, got, err, want)
		}
	}
	cfs("-1\n", "100000\n", 0)
	cfs("50000\n", "100000\n", 5e8)
	cfs("200000", "100000", 2e9)
}

func TestParseCPULimits_Failure(t *testing.T) {
	cpuMax := func(in string) {
		t.Helper()
		if got, err := parseCPUMax([]byte(in)); err == nil {
			t.Fatalf("parseCPUMax(%q) = %v, want an error", in, got)
		}
	}
	cpuMax("")
	cpuMax("max")
	cpuMax("50000 0")
	cpuMax("50000 x")
	cpuMax("-1 100000")
	cpuMax("max max")

	cfs := func(quota, period string) {
		t.Helper()
		if got, err := parseCFS([]byte(quota), []byte(period)); err == nil {
			t.Fatalf("parseCFS(%q, %q) = %v, want an error", quota, period, got)
		}
	}
	cfs("", "100000")
	cfs("x", "100000")
	cfs("50000", "0")
	cfs("50000", "-5")
}

func TestParseMemory(t *testing.T) {
	f := func(in string, want uint64) {
		t.Helper()
		got, err := parseMemory([]byte(in))
		if err != nil || got != want {
			t.Fatalf("parseMemory(%q) = %d, %v, want %d", in, got, err, want)
		}
	}
	f("67108864\n", 64<<20)
	f("max\n", 0)
	f("9223372036854771712\n", 0) // v1's "unlimited"
	f("0", 0)
}

func TestParseMemory_Failure(t *testing.T) {
	f := func(in string) {
		t.Helper()
		if got, err := parseMemory([]byte(in)); err == nil {
			t.Fatalf("parseMemory(%q) = %d, want an error", in, got)
		}
	}
	f("")
	f("-1")
	f("64M")
	f("max max")
}

func TestSlicePath(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := slicePath(in); got != want {
			t.Fatalf("slicePath(%q) = %q, want %q", in, got, want)
		}
	}
	f("system.slice", "system.slice")
	f("my-app.slice", "my.slice/my-app.slice")
	f("a-b-c.slice", "a.slice/a-b.slice/a-b-c.slice")
	f("-.slice", "")
}

func TestLayoutDir(t *testing.T) {
	f := func(root, controller, id, parent, want string) {
		t.Helper()
		got, err := detectLayout(root).dir(controller, id, parent)
		if err != nil || got != want {
			t.Fatalf("dir(%s, %s, %.12s, %q) = %q, %v, want %q", root, controller, id, parent, got, err, want)
		}
	}
	f("testdata/cgroup-v2", "memory", idA, "", "testdata/cgroup-v2/system.slice/docker-"+idA+".scope")
	f("testdata/cgroup-v2", "", idB, "", "testdata/cgroup-v2/docker/"+idB)
	f("testdata/cgroup-v1", "cpuacct", idA, "", "testdata/cgroup-v1/cpuacct/system.slice/docker-"+idA+".scope")
	f("testdata/cgroup-v1", "memory", idB, "my-app.slice", "testdata/cgroup-v1/memory/my.slice/my-app.slice/docker-"+idB+".scope")

	// A parent replaces the default places; a missing cgroup is an error.
	for _, c := range []struct{ root, controller, id, parent string }{
		{"testdata/cgroup-v2", "", idA, "other.slice"},
		{"testdata/cgroup-v1", "memory", idB, ""},
		{"testdata/cgroup-v1", "blkio", idA, ""},
		{"testdata/nowhere", "cpu", idA, ""},
	} {
		if got, err := detectLayout(c.root).dir(c.controller, c.id, c.parent); err == nil {
			t.Fatalf("dir(%+v) = %q, want an error", c, got)
		}
	}
}

func FuzzParsePerCPU(f *testing.F) {
	f.Add([]byte("52452209 14451502 \n"))
	f.Add([]byte("12 x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := parsePerCPU(b)
		if err == nil && len(v) == 0 {
			t.Fatalf("parsePerCPU(%q) accepted no CPUs", b)
		}
	})
}

func FuzzParseCPUStat(f *testing.F) {
	f.Add([]byte("usage_usec 123\nuser_usec 100\n"))
	f.Add([]byte("usage_usec x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = parseCPUStat(b) // any input: an error or a value, no panic
	})
}

func FuzzParseCPUMax(f *testing.F) {
	f.Add([]byte("max 100000\n"))
	f.Add([]byte("50000 100000\n"))
	f.Add([]byte("50000 0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := parseCPUMax(b)
		if err == nil && (v < 0 || v != v) {
			t.Fatalf("parseCPUMax(%q) = %v", b, v)
		}
	})
}

func FuzzParseCFS(f *testing.F) {
	f.Add([]byte("-1\n"), []byte("100000\n"))
	f.Add([]byte("50000"), []byte("0"))
	f.Fuzz(func(t *testing.T, quota, period []byte) {
		v, err := parseCFS(quota, period)
		if err == nil && (v < 0 || v != v) {
			t.Fatalf("parseCFS(%q, %q) = %v", quota, period, v)
		}
	})
}

func FuzzParseMemory(f *testing.F) {
	f.Add([]byte("67108864\n"))
	f.Add([]byte("max\n"))
	f.Add([]byte("9223372036854771712\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := parseMemory(b)
		if err == nil && v >= v1Unlimited {
			t.Fatalf("parseMemory(%q) = %d, an unlimited value", b, v)
		}
	})
}
