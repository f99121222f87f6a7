package linux

import (
	"strings"

	"golang.org/x/sys/unix"

	"github.com/bucky3/bucky3/engine"
)

// filesystems emits system_filesystem per mount of this process's mount
// namespace (self/mountinfo). When a mount point is mounted over, only the
// last (visible) mount is reported: statfs cannot see the ones beneath,
// and two metrics with the same tags would collide downstream.
func (s *Stats) filesystems(b *builder) {
	mounts, err := guard(s.proc.GetMounts)
	if !s.check("self/mountinfo", err) {
		return
	}
	paths := make([]string, len(mounts))
	last := make(map[string]int, len(mounts))
	for i, m := range mounts {
		paths[i] = unescapeMount(m.MountPoint)
		last[paths[i]] = i
	}
	for i, m := range mounts {
		path := paths[i]
		if last[path] != i || !strings.HasPrefix(path, "/") {
			continue
		}
		device := unescapeMount(m.Source)
		// The lists are applied before statfs so that a blacklisted
		// network filesystem is never touched.
		if !s.filters.filesystem.includes(m.FSType, path, device) {
			continue
		}
		var st unix.Statfs_t
		if err := s.statfs(path, &st); err != nil {
			// Permission denied or a vanished mount: bucky3 skipped those
			// silently; they are usually not worth a warning each interval.
			s.log.Debug("statfs failed", "path", path, "err", err)
			continue
		}
		// Pseudo filesystems (proc, sysfs, cgroup...) report no inodes.
		if st.Files == 0 {
			continue
		}
		// statvfs counts blocks in fragment-size units; Linux reports the
		// fragment size in Frsize, zero on old kernels where Bsize is it.
		unit := float64(st.Frsize)
		if unit == 0 {
			unit = float64(st.Bsize)
		}
		b.field("free_bytes", float64(st.Bavail)*unit)
		b.field("total_bytes", float64(st.Blocks)*unit)
		b.field("free_inodes", float64(st.Ffree))
		b.field("total_inodes", float64(st.Files))
		b.metric("system_filesystem",
			engine.Tag{Key: "device", Value: device},
			engine.Tag{Key: "name", Value: path},
			engine.Tag{Key: "type", Value: m.FSType})
	}
}

// unescapeMount undoes the octal escapes (\040 for a space, \011, \012,
// \134) the kernel applies to paths in mountinfo; procfs leaves them in.
// Anything that is not a three-digit octal escape is kept as it is.
func unescapeMount(s string) string {
	i := strings.IndexByte(s, '\\')
	if i < 0 {
		return s
	}
	var sb strings.Builder
	sb.Grow(len(s))
	for ; i >= 0; i = strings.IndexByte(s, '\\') {
		sb.WriteString(s[:i])
		if i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) && s[i+1] <= '3' {
			sb.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			s = s[i+4:]
			continue
		}
		sb.WriteByte('\\')
		s = s[i+1:]
	}
	sb.WriteString(s)
	return sb.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }
