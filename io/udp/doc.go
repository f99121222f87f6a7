// Package udp is bucky3's datagram ingestion server. It knows nothing about
// the protocols carried: a Listener opens one SO_REUSEPORT UDP socket per
// reader, and a unix datagram socket if asked, drains each with recvmmsg
// into a preallocated batch of buffers, and calls the caller's per-reader
// function for every datagram on the reader's own goroutine — no copy, no
// channel hop, no allocation per datagram. The kernel's drop count
// (SO_MEMINFO) and truncated datagrams are counted for the self report,
// and with Config.Gaps each reader times the gaps between its reads
// (one clock read per recvmmsg) and samples its socket's queue after a
// long one (QueuePeak), which shows when a reader could not keep up.
// With Config.BatchWait, a UDP reader that drained its socket pauses so
// that one wakeup reads many bursts of datagrams. A handler that panics
// loses only the datagram in flight (Panics, and a log line at most once a
// second); a panic elsewhere in a reader stops Run with an error.
//
// The unix socket (Config.Socket) is read by the same loop, with these
// differences. Unix sockets have no SO_REUSEPORT: its readers
// (SocketReaders, one by default) share the socket through duplicate
// descriptors, and the kernel gives each datagram to one recvmmsg. The
// kernel never drops a unix datagram: a full queue (net.unix.max_dgram_qlen
// datagrams, often 10; raise it for bursty senders) makes senders wait or
// fail with EAGAIN, so Dropped counts UDP only, and BatchWait, which the
// queue's unreported size would have to bound, does not apply. With
// OriginDetection, each datagram's sender pid (SO_PASSCRED) is mapped to its
// container id through /proc/<pid>/cgroup, cached per reader, and handed to
// the handler (RunOrigin), as DogStatsD does.
//
// Inflater is the bounded zlib/gzip decompression shared by the StatsD and
// JSON servers (try_decompress): it never inflates past a fixed bound, so a
// compression bomb costs at most that much memory.
//
// The Listener is Linux only (recvmmsg, SO_MEMINFO); Inflater is portable.
// mmsg_linux.go holds the package's only use of unsafe.
package udp
