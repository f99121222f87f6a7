package linux

import (
	"fmt"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bucky3/bucky3/engine"
)

// statfsCall is one statfs in flight. Its goroutine writes st and err,
// then closes done; nobody reads them before done is closed.
type statfsCall struct {
	done chan struct{}
	st   unix.Statfs_t
	err  error
}

// startStatfs runs s.statfs(path) in a goroutine of its own: a statfs
// cannot be cancelled, and one on a dead NFS server or FUSE daemon
// blocks for as long as the server does.
func (s *Stats) startStatfs(path string) *statfsCall {
	c := &statfsCall{done: make(chan struct{})}
	statfs := s.statfs
	go func() {
		defer close(c.done)
		defer func() {
			if p := recover(); p != nil { // the mount is skipped, the agent goes on
				c.err = fmt.Errorf("statfs panicked: %v", p)
			}
		}()
		c.err = statfs(path, &c.st)
	}()
	return c
}

// mount is a mount that passed the lists, with its statfs.
type mount struct {
	path, device, fsType string
	call                 *statfsCall
}

// filesystems emits system_filesystem per mount of this process's mount
// namespace (self/mountinfo). When a mount point is mounted over, only the
// last (visible) mount is reported: statfs cannot see the ones beneath,
// and two metrics with the same tags would collide downstream.
//
// The statfs calls run concurrently and share one deadline, statfs_timeout
// from now, so hung mounts delay a collection by statfs_timeout at most.
// A mount that misses it is skipped, and not queried again until its
// call returns: at most one statfs per mount is ever outstanding.
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
	todo := make([]mount, 0, len(mounts))
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
		if !s.statfsAnswered(path) {
			continue
		}
		todo = append(todo, mount{path: path, device: device, fsType: m.FSType, call: s.startStatfs(path)})
	}
	timer := time.NewTimer(engine.Seconds(s.opts.StatfsTimeout))
	defer timer.Stop()
	expired := false
	for _, m := range todo {
		if !expired {
			select {
			case <-m.call.done:
			case <-timer.C:
				expired = true
			}
		}
		if expired {
			select {
			case <-m.call.done:
			default:
				s.statfsMissed(m.path, m.call)
				continue
			}
		}
		s.filesystem(b, m)
	}
}

// statfsAnswered reports whether path may be queried: true unless its
// statfs of an earlier collection is still pending.
func (s *Stats) statfsAnswered(path string) bool {
	c, ok := s.pending[path]
	if !ok {
		return true
	}
	select {
	case <-c.done:
		delete(s.pending, path)
		s.log.Info("statfs answers again", "path", path)
		return true
	default:
		s.readErrors.Inc()
		return false
	}
}

// statfsMissed records a statfs that missed its deadline; it is logged
// once, when the mount stops answering.
func (s *Stats) statfsMissed(path string, c *statfsCall) {
	s.pending[path] = c
	s.readErrors.Inc()
	s.log.Warn("statfs did not answer within statfs_timeout, skipping the mount until it does",
		"path", path, "statfs_timeout", s.opts.StatfsTimeout)
}

// filesystem emits the metric of one mount whose statfs returned.
func (s *Stats) filesystem(b *builder, m mount) {
	if m.call.err != nil {
		// Permission denied or a vanished mount: bucky3 skipped those
		// silently; they are usually not worth a warning each interval.
		s.log.Debug("statfs failed", "path", m.path, "err", m.call.err)
		return
	}
	st := &m.call.st
	// Pseudo filesystems (proc, sysfs, cgroup...) report no inodes.
	if st.Files == 0 {
		return
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
		engine.Tag{Key: "device", Value: m.device},
		engine.Tag{Key: "name", Value: m.path},
		engine.Tag{Key: "type", Value: m.fsType})
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
