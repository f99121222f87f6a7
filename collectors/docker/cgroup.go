package docker

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// layout is the cgroup hierarchy found under cgroup_path. It is detected at
// every collection, which costs one stat, so that a module configured
// before a host switched hierarchies (or pointed at a fixture tree) reads
// what is there now.
type layout struct {
	root string
	// v2 is the unified hierarchy: one tree, controller files side by side.
	// Otherwise (v1) each controller has its own tree under root.
	v2 bool
}

func detectLayout(root string) layout {
	_, err := os.Stat(filepath.Join(root, "cgroup.controllers"))
	return layout{root: root, v2: err == nil}
}

// errNoCgroup is returned when none of the places Docker puts a
// container's cgroup exists: the container just exited, or cgroup_path
// does not point at the hierarchy the daemon uses.
var errNoCgroup = errors.New("no cgroup directory for container")

// dir returns the cgroup directory of the container id under controller
// (ignored under v2), trying the places Docker's two cgroup drivers use:
// cgroupfs puts a container at <parent>/<id> (parent defaults to /docker),
// systemd at <parent slice>/docker-<id>.scope (parent defaults to
// system.slice). parent is the container's --cgroup-parent.
func (l layout) dir(controller, id, parent string) (string, error) {
	base := l.root
	if !l.v2 {
		base = filepath.Join(base, controller)
	}
	var candidates []string
	switch {
	case parent == "":
		candidates = []string{filepath.Join("docker", id), filepath.Join("system.slice", "docker-"+id+".scope")}
	case strings.HasSuffix(parent, ".slice"):
		candidates = []string{filepath.Join(slicePath(parent), "docker-"+id+".scope")}
	default:
		candidates = []string{filepath.Join(parent, id)}
	}
	for _, c := range candidates {
		d := filepath.Join(base, c)
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			return d, nil
		}
	}
	return "", fmt.Errorf("%w %s under %s", errNoCgroup, shortID(id), base)
}

// slicePath expands a systemd slice name into its place in the hierarchy:
// each dash opens a nested slice, so a-b.slice lives at a.slice/a-b.slice.
func slicePath(slice string) string {
	name := strings.TrimSuffix(slice, ".slice")
	if name == "" || name == "-" {
		return ""
	}
	parts := strings.Split(name, "-")
	path := make([]string, len(parts))
	for i := range parts {
		path[i] = strings.Join(parts[:i+1], "-") + ".slice"
	}
	return filepath.Join(path...)
}

// v1Unlimited is the smallest value cgroup v1 uses for "no memory limit":
// the kernel reports PAGE_COUNTER_MAX pages, about 2^63 bytes.
const v1Unlimited = 1 << 62

// parsePerCPU parses cpuacct.usage_percpu: one nanosecond counter per
// possible CPU, separated by spaces.
func parsePerCPU(b []byte) ([]uint64, error) {
	fields := bytes.Fields(b)
	if len(fields) == 0 {
		return nil, errors.New("empty cpuacct.usage_percpu")
	}
	out := make([]uint64, len(fields))
	for i, f := range fields {
		v, err := strconv.ParseUint(string(f), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("cpuacct.usage_percpu: %w", err)
		}
		out[i] = v
	}
	return out, nil
}

// parseCPUStat returns usage_usec of a v2 cpu.stat ("key value" lines).
func parseCPUStat(b []byte) (uint64, error) {
	for line := range bytes.Lines(b) {
		k, v, ok := bytes.Cut(bytes.TrimSpace(line), []byte(" "))
		if ok && string(k) == "usage_usec" {
			n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("cpu.stat usage_usec: %w", err)
			}
			return n, nil
		}
	}
	return 0, errors.New("cpu.stat: no usage_usec")
}

// parseCPUMax parses a v2 cpu.max, "$MAX $PERIOD" in microseconds, and
// returns the CPU time allowed per second in nanoseconds, 0 for "max" (no
// limit).
func parseCPUMax(b []byte) (float64, error) {
	quota, period, ok := bytes.Cut(bytes.TrimSpace(b), []byte(" "))
	if !ok {
		return 0, fmt.Errorf("cpu.max: want \"quota period\", got %q", b)
	}
	p, err := strconv.ParseUint(string(period), 10, 64)
	if err != nil || p == 0 {
		return 0, fmt.Errorf("cpu.max: bad period %q", period)
	}
	if string(quota) == "max" {
		return 0, nil
	}
	q, err := strconv.ParseUint(string(quota), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("cpu.max: bad quota %q", quota)
	}
	return cpuLimit(float64(q), float64(p)), nil
}

// parseCFS parses the v1 pair cpu.cfs_quota_us and cpu.cfs_period_us and
// returns the CPU time allowed per second in nanoseconds, 0 when the quota
// is -1 (no limit).
func parseCFS(quota, period []byte) (float64, error) {
	q, err := strconv.ParseInt(string(bytes.TrimSpace(quota)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("cpu.cfs_quota_us: %w", err)
	}
	p, err := strconv.ParseUint(string(bytes.TrimSpace(period)), 10, 64)
	if err != nil || p == 0 {
		return 0, fmt.Errorf("cpu.cfs_period_us: bad period %q", period)
	}
	if q < 0 {
		return 0, nil
	}
	return cpuLimit(float64(q), float64(p)), nil
}

// cpuLimit turns a CFS quota per period into nanoseconds of CPU per
// second: a quota of half the period is 0.5 CPU, 5e8 ns/s.
func cpuLimit(quota, period float64) float64 { return quota / period * 1e9 }

// parseMemory parses a memory counter or limit: a byte count, or "max"
// (v2) or a value of at least v1Unlimited (v1) for no limit, which it
// returns as 0.
func parseMemory(b []byte) (uint64, error) {
	b = bytes.TrimSpace(b)
	if string(b) == "max" {
		return 0, nil
	}
	v, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		return 0, err
	}
	if v >= v1Unlimited {
		return 0, nil
	}
	return v, nil
}
