// Package udp is bucky3's UDP ingestion server. It knows nothing about the
// protocols carried: a Listener opens one SO_REUSEPORT socket per reader,
// drains each with recvmmsg into a preallocated batch of buffers, and calls
// the caller's per-reader function for every datagram on the reader's own
// goroutine — no copy, no channel hop, no allocation per datagram. The
// kernel's drop count (SO_MEMINFO) and truncated datagrams are counted for
// the self report. With Config.BatchWait, a reader that drained its socket
// pauses so that one wakeup reads many bursts of datagrams. A handler that
// panics loses only the datagram in flight (Panics, and a log line at most
// once a second); a panic elsewhere in a reader stops Run with an error.
//
// Inflater is the bounded zlib/gzip decompression shared by the StatsD and
// JSON servers (try_decompress): it never inflates past a fixed bound, so a
// compression bomb costs at most that much memory.
//
// The Listener is Linux only (recvmmsg, SO_MEMINFO); Inflater is portable.
// mmsg_linux.go holds the package's only use of unsafe.
package udp
