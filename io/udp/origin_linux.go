package udp

import (
	"encoding/binary"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// credSpace is the control buffer of one datagram with origin detection:
// room for the SCM_CREDENTIALS message that SO_PASSCRED makes the kernel
// attach. Anything else a sender passes (SCM_RIGHTS descriptors) does not
// fit, and the kernel discards it (MSG_CTRUNC).
var credSpace = unix.CmsgSpace(unix.SizeofUcred)

// credPID returns the sender's pid from a datagram's control data, or 0 if
// it holds no credentials; the pid is as seen from this process's pid
// namespace (0 when the sender is in none of its descendants).
func credPID(ctrl []byte) int32 {
	// struct cmsghdr is {size_t len; int level; int type}, then the data.
	hdr := unix.SizeofCmsghdr
	if len(ctrl) < unix.CmsgLen(unix.SizeofUcred) ||
		int32(binary.NativeEndian.Uint32(ctrl[hdr-8:])) != unix.SOL_SOCKET ||
		int32(binary.NativeEndian.Uint32(ctrl[hdr-4:])) != unix.SCM_CREDENTIALS {
		return 0
	}
	return int32(binary.NativeEndian.Uint32(ctrl[unix.CmsgLen(0):]))
}

// Bounds of a reader's pid → container cache. An entry lives originTTL, so
// that a pid reused by another container is resolved again soon; pids are
// handed out in sequence, so reuse within the TTL takes a pid_max of
// process starts.
const (
	originTTL     = 10e9 // nanoseconds
	originEntries = 4096
)

// origins maps senders' pids to their container ids through
// <root>/<pid>/cgroup, with a bounded cache. It belongs to one reader, so
// a lookup takes no lock; a hit allocates nothing.
type origins struct {
	root    string    // procfs, normally /proc
	epoch   time.Time // lookup's now counts from it, on the monotonic clock
	cache   map[int32]origin
	last    string // the last id read: processes of one container share it
	buf     []byte
	lookups uint64 // cache misses: cgroup files read
}

type origin struct {
	id      string
	expires int64 // nanoseconds since epoch
}

func newOrigins(root string) *origins {
	if root == "" {
		root = "/proc"
	}
	return &origins{root: root, epoch: time.Now(), cache: make(map[int32]origin), buf: make([]byte, 0, 4096)}
}

// lookup returns the container id of pid ("" for none or unknown); now
// is the time since o.epoch, in nanoseconds, read once per batch by the
// caller.
func (o *origins) lookup(pid int32, now int64) string {
	if pid <= 0 {
		return ""
	}
	if e, ok := o.cache[pid]; ok && now < e.expires {
		return e.id
	}
	id := o.read(pid)
	if len(o.cache) >= originEntries {
		o.evict(now)
	}
	o.cache[pid] = origin{id: id, expires: now + originTTL}
	return id
}

// read resolves pid from its cgroup file. A process gone meanwhile, or a
// file that names no container, resolves to "" (and is cached as such, so
// that a host process does not cost a read per datagram).
func (o *origins) read(pid int32) string {
	o.lookups++
	f, err := os.Open(o.root + "/" + strconv.Itoa(int(pid)) + "/cgroup")
	if err != nil {
		return ""
	}
	defer f.Close()
	b := o.buf[:0]
	for len(b) < cap(b) { // a cgroup file is a few lines; a longer one is cut
		n, err := f.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil || n == 0 {
			break
		}
	}
	id := containerID(b)
	if id == nil {
		return ""
	}
	if string(id) != o.last {
		o.last = string(id)
	}
	return o.last
}

// evict makes room: the expired entries go, and if that is not enough,
// a quarter of the others, in the map's (random) order.
func (o *origins) evict(now int64) {
	for pid, e := range o.cache {
		if now >= e.expires {
			delete(o.cache, pid)
		}
	}
	for pid := range o.cache {
		if len(o.cache) < originEntries*3/4 {
			break
		}
		delete(o.cache, pid)
	}
}
