package statsd

import "unsafe"

// This file and prefetch_*.go hold the package's only unsafe code: the
// conversions of the memo's pointers to the addresses prefetch takes.
// They are safe because prefetch only hints the CPU: it never faults,
// dereferences nothing in Go's sense and keeps no address, so a stale or
// moved one costs at worst a useless prefetch. The helpers must inline
// (go build -gcflags=-m) so that they cost only the prefetch.

// prefetchSet prefetches the entries of a set, which share a cache line.
func prefetchSet(entries *uint64) { prefetch(uintptr(unsafe.Pointer(entries))) }

// prefetchLine and prefetchLineEnd prefetch the first and the last cache
// line of a knownLine, which spans two: two calls, as one helper making
// both would not inline.
func prefetchLine(kl *knownLine)    { prefetch(uintptr(unsafe.Pointer(kl))) }
func prefetchLineEnd(kl *knownLine) { prefetch(uintptr(unsafe.Pointer(kl)) + unsafe.Sizeof(*kl) - 1) }

// prefetchBytes prefetches the first cache line of b's array.
func prefetchBytes(b []byte) { prefetch(uintptr(unsafe.Pointer(unsafe.SliceData(b)))) }
