package linux

import (
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bucky3/bucky3/engine"
)

// TestFilesystems_StatfsHangs blocks statfs of one fixture mount: the
// collection waits statfs_timeout, reports every other mount, logs the
// hung one once and does not query it again until its call returns.
func TestFilesystems_StatfsHangs(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	calls := map[string]int{}
	e := newTestStats(t, "testdata/proc", func(o *Options) { o.StatfsTimeout = 0.05 })
	e.s.statfs = func(path string, st *unix.Statfs_t) error {
		mu.Lock()
		calls[path]++
		mu.Unlock()
		if path == "/boot" {
			<-release
		}
		return fixtureStatfs(path, st)
	}
	callsOf := func(path string) int {
		mu.Lock()
		defer mu.Unlock()
		return calls[path]
	}
	for i := range 3 {
		start := time.Now()
		ms := collectOnce(t, e.s)
		if got := names(ms, "system_filesystem"); got != "/ /media/usb stick" {
			t.Fatalf("collection %d: filesystems %q, want all but the hung /boot", i, got)
		}
		// The first collection waits for the deadline; the next ones skip
		// the mount without waiting.
		if d := time.Since(start); i > 0 && d >= 50*time.Millisecond {
			t.Errorf("collection %d took %v, waiting for a mount known to hang", i, d)
		}
	}
	if n := callsOf("/boot"); n != 1 {
		t.Fatalf("%d statfs calls of /boot, want 1 outstanding", n)
	}
	if n := callsOf("/"); n != 3 {
		t.Fatalf("%d statfs calls of /, want one per collection", n)
	}
	if n := strings.Count(e.log.String(), "statfs did not answer"); n != 1 {
		t.Fatalf("hung mount logged %d times, want once:\n%s", n, e.log)
	}
	if n := e.core.Counter("read_errors").Load(); n != 3 {
		t.Fatalf("read_errors = %d, want 3 (one per collection that skipped /boot)", n)
	}
	close(release)
	// The call returns; the next collection queries /boot anew.
	for deadline := time.Now().Add(10 * time.Second); ; {
		if got := names(collectOnce(t, e.s), "system_filesystem"); got == "/ /media/usb stick /boot" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("/boot not reported after its statfs returned")
		}
		time.Sleep(time.Millisecond)
	}
	if !strings.Contains(e.log.String(), "statfs answers again") {
		t.Errorf("recovery not logged:\n%s", e.log)
	}
}

// fuseChild is set in the environment of the process TestFilesystems_HungFUSE
// re-executes in a mount namespace of its own.
const fuseChild = "BUCKY3_TEST_FUSE_CHILD"

// TestFilesystems_HungFUSE mounts a FUSE filesystem whose server never
// answers STATFS and collects the live /proc: the statfs really blocks in
// the kernel. The mount lives in a private mount namespace (a child
// process), so nothing else on the machine can trip over it. It needs
// root and /dev/fuse; -short skips it.
func TestFilesystems_HungFUSE(t *testing.T) {
	if os.Getenv(fuseChild) != "" {
		hungFUSE(t)
		return
	}
	if testing.Short() {
		t.Skip("mounts a FUSE filesystem")
	}
	if os.Geteuid() != 0 {
		t.Fatal("mounting FUSE needs root: run this test as root (or with -short to skip it)")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Fatalf("no FUSE device: %v", err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFilesystems_HungFUSE$", "-test.v", "-test.timeout=60s")
	cmd.Env = append(os.Environ(), fuseChild+"=1")
	// Go makes the new namespace's mounts private before exec.
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Logf("child:\n%s", out)
}

// hungFUSE runs in the child: it mounts the filesystem and checks the
// collections.
func hungFUSE(t *testing.T) {
	dir := t.TempDir()
	srv := mountFUSE(t, dir)
	e := newTestStats(t, "/proc", func(o *Options) {
		o.FilesystemWhitelist = []string{regexp.QuoteMeta(dir)}
		o.FilesystemBlacklist = []string{".*"}
		o.StatfsTimeout = 0.2
	})
	e.s.statfs = unix.Statfs
	for i := range 3 {
		if got := names(collectOnce(t, e.s), "system_filesystem"); got != "" {
			t.Fatalf("collection %d: filesystems %q, want none (the FUSE mount hangs)", i, got)
		}
	}
	if n := srv.statfsRequests(); n != 1 {
		t.Fatalf("the server got %d STATFS requests, want 1 outstanding", n)
	}
	if n := strings.Count(e.log.String(), "statfs did not answer"); n != 1 {
		t.Fatalf("hung mount logged %d times, want once:\n%s", n, e.log)
	}
	// The server answers the pending request and every later one: the
	// mount is reported again, with what the server said.
	srv.answer()
	var ms []engine.Metric
	for deadline := time.Now().Add(10 * time.Second); ; {
		ms = collectOnce(t, e.s)
		if names(ms, "system_filesystem") == dir {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("FUSE mount not reported once its server answered; log:\n%s", e.log)
		}
		time.Sleep(10 * time.Millisecond)
	}
	m := find(ms, "system_filesystem", dir)
	for name, want := range map[string]float64{"total_bytes": 1000 * 4096, "free_bytes": 300 * 4096, "total_inodes": 100, "free_inodes": 40} {
		if v, _ := m.Field(name); v.Num != want {
			t.Errorf("%s = %v, want %v", name, v.Num, want)
		}
	}
	if ty, _ := m.Tag("type"); ty != "fuse" {
		t.Errorf("type %q, want fuse", ty)
	}
}

// fuseServer is the smallest FUSE server: it answers INIT, holds STATFS
// requests until answer is called, and refuses everything else.
type fuseServer struct {
	dev *os.File

	mu        sync.Mutex
	statfs    int      // STATFS requests received
	held      []uint64 // unique ids of the STATFS requests not answered
	answering bool
}

// FUSE opcodes and sizes (include/uapi/linux/fuse.h).
const (
	fuseStatfs    = 17
	fuseInit      = 26
	fuseInterrupt = 36
	fuseInHeader  = 40
	fuseOutHeader = 16
)

// mountFUSE mounts a fuseServer on dir until the test ends.
func mountFUSE(t *testing.T, dir string) *fuseServer {
	t.Helper()
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	opts := "fd=" + strconv.Itoa(fd) + ",rootmode=40000,user_id=0,group_id=0"
	if err := unix.Mount("bucky3test", dir, "fuse", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		_ = unix.Close(fd) // the mount error is the one to report
		t.Fatalf("mount fuse: %v", err)
	}
	// Non-blocking, the file reads through the runtime's poller, so Close
	// ends the serving goroutine. The device polls only once mounted.
	s := &fuseServer{dev: os.NewFile(uintptr(fd), "/dev/fuse")}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.serve()
	}()
	t.Cleanup(func() {
		// Answer what is held so no statfs stays blocked, then detach:
		// closing the device aborts anything still pending.
		s.answer()
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount: %v", err)
		}
		if err := s.dev.Close(); err != nil {
			t.Errorf("close /dev/fuse: %v", err)
		}
		<-done
	})
	return s
}

func (s *fuseServer) serve() {
	buf := make([]byte, 1<<20)
	for {
		n, err := s.dev.Read(buf)
		if err != nil {
			if errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.ENOENT) {
				continue // ENOENT: a request interrupted before it was read
			}
			return // closed, or the connection aborted
		}
		if n < fuseInHeader {
			continue
		}
		req := buf[:n]
		opcode := binary.LittleEndian.Uint32(req[4:])
		unique := binary.LittleEndian.Uint64(req[8:])
		switch opcode {
		case fuseInit:
			// A 7.12 reply: major, minor, max_readahead, flags,
			// max_background, congestion_threshold, max_write.
			out := binary.LittleEndian.AppendUint32(nil, 7)
			out = binary.LittleEndian.AppendUint32(out, 12)
			out = binary.LittleEndian.AppendUint32(out, binary.LittleEndian.Uint32(req[fuseInHeader+8:]))
			out = binary.LittleEndian.AppendUint32(out, 0)
			out = binary.LittleEndian.AppendUint32(out, 0)
			out = binary.LittleEndian.AppendUint32(out, 4096)
			s.reply(unique, 0, out)
		case fuseStatfs:
			s.mu.Lock()
			s.statfs++
			answering := s.answering
			if !answering {
				s.held = append(s.held, unique)
			}
			s.mu.Unlock()
			if answering {
				s.replyStatfs(unique)
			}
		case fuseInterrupt:
			// No answer: the interrupted STATFS stays pending, as it
			// does on a dead server.
		default:
			s.reply(unique, -int32(syscall.ENOSYS), nil)
		}
	}
}

func (s *fuseServer) statfsRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.statfs
}

// answer answers the held STATFS requests and every later one.
func (s *fuseServer) answer() {
	s.mu.Lock()
	held := s.held
	s.held, s.answering = nil, true
	s.mu.Unlock()
	for _, u := range held {
		s.replyStatfs(u)
	}
}

// replyStatfs answers with 1000 blocks of 4 KiB (300 available) and 100
// inodes (40 free): struct fuse_kstatfs.
func (s *fuseServer) replyStatfs(unique uint64) {
	var out []byte
	for _, v := range []uint64{1000, 400, 300, 100, 40} { // blocks bfree bavail files ffree
		out = binary.LittleEndian.AppendUint64(out, v)
	}
	for _, v := range []uint32{4096, 255, 4096, 0, 0, 0, 0, 0, 0, 0} { // bsize namelen frsize padding spare[6]
		out = binary.LittleEndian.AppendUint32(out, v)
	}
	s.reply(unique, 0, out)
}

// reply writes one answer; a request the kernel gave up on is no error
// worth stopping for.
func (s *fuseServer) reply(unique uint64, errno int32, body []byte) {
	msg := binary.LittleEndian.AppendUint32(nil, uint32(fuseOutHeader+len(body)))
	msg = binary.LittleEndian.AppendUint32(msg, uint32(errno))
	msg = binary.LittleEndian.AppendUint64(msg, unique)
	_, _ = s.dev.Write(append(msg, body...))
}
