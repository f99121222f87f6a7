// Package udp is bucky3's UDP ingestion server. It knows nothing about the
// protocols carried: a Listener opens one SO_REUSEPORT socket per reader,
// drains each with recvmmsg into a preallocated batch of buffers, and calls
// the caller's per-reader function for every datagram on the reader's own
// goroutine — no copy, no channel hop, no allocation per datagram. The
// kernel's drop count (SO_MEMINFO) and truncated datagrams are counted for
// the self report.
//
// A read that drains its socket (fewer datagrams than BatchSize) is followed
// by a pause of up to BatchWait, so that at moderate rates one wakeup reads
// many bursts of datagrams instead of each costing a wakeup; during it the
// socket is in no epoll set, so nothing wakes the process. A full batch is
// followed by another read at once, so a saturated socket never waits; a
// pause runs in steps sized by the rate, and ends early when the socket's
// queue shows the load rising or stopped; an idle socket is blocked on
// until a datagram arrives; Close ends a wait at once.
// Without BatchWait, an empty read parks the reader in the runtime poller.

// Inflater is the bounded zlib/gzip decompression shared by the StatsD and
// JSON servers (try_decompress): it never inflates past a fixed bound, so a
// compression bomb costs at most that much memory.
//
// The Listener is Linux only (recvmmsg, SO_MEMINFO); Inflater is portable.
package udp
