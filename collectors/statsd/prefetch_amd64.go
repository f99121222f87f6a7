package statsd

// prefetch asks the CPU to bring the cache line at addr closer, without
// waiting for it (PREFETCHT0, in prefetch_amd64.s). It never faults, so
// addr may be stale or even unmapped.
//
//go:noescape
func prefetch(addr uintptr)
