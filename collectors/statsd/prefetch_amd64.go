package statsd

// prefetch asks the CPU to bring the cache line at addr closer, without
// waiting for it. It never faults, so addr may be stale or even unmapped.
//
//go:noescape
func prefetch(addr uintptr)
