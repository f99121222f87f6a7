package engine

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"time"
)

// DefaultMemoryLimit is the default of the global memory_limit option.
const DefaultMemoryLimit = 1 << 30

// minMemoryLimit is the smallest budget accepted: below it the agent's
// own working set would keep it tight.
const minMemoryLimit = 64 << 20

// The budget samples the runtime at most every memoryCheckMax and at
// least every memoryCheckMin, in between as often as a heap growing at
// memoryGrowthBound could reach 90% of the budget: an idle agent far below
// it wakes about once a second, not ten times (bench/RESULTS.md, Round 9).
// Floods measured in the hostile suite grow the heap by a few hundred MiB/s.
const (
	memoryCheckMin    = 100 * time.Millisecond
	memoryCheckMax    = time.Second
	memoryGrowthBound = 1 << 30 // bytes per second
)

// nextCheck returns how long the budget may wait before its next sample
// when used bytes are in use.
func (m *Memory) nextCheck(used uint64) time.Duration {
	high := m.limit / 10 * 9
	if used >= high {
		return memoryCheckMin
	}
	wait := time.Duration(float64(high-used) / memoryGrowthBound * float64(time.Second))
	return min(max(wait, memoryCheckMin), memoryCheckMax)
}

// Memory is the agent's memory budget (the global memory_limit). Sources
// ask it before they keep a new series or object, destinations before they
// queue more: while Tight, they refuse and count the refusal under reason
// memory_limit. A nil *Memory never reports tight: modules built outside an
// agent (tests, tools) run unbounded.
type Memory struct {
	limit uint64
	tight atomic.Bool
	used  atomic.Uint64
}

// NewMemory returns a budget of limit bytes; 0 means no budget (nil).
func NewMemory(limit uint64) *Memory {
	if limit == 0 {
		return nil
	}
	return &Memory{limit: limit}
}

// Tight reports whether the memory in use passed 90% of the budget at the
// last sample. It costs one atomic load.
func (m *Memory) Tight() bool { return m != nil && m.tight.Load() }

// Limit returns the budget in bytes, 0 when there is none.
func (m *Memory) Limit() uint64 {
	if m == nil {
		return 0
	}
	return m.limit
}

// Used returns the memory in use at the last sample, in bytes.
func (m *Memory) Used() uint64 {
	if m == nil {
		return 0
	}
	return m.used.Load()
}

// set records a sample of used bytes.
func (m *Memory) set(used uint64) {
	m.used.Store(used)
	m.tight.Store(used > m.limit/10*9)
}

// run sets Go's soft memory limit to the budget, so the collector works
// harder as the heap nears it, then samples the runtime until ctx is done.
func (m *Memory) run(ctx context.Context) {
	if m == nil {
		return
	}
	previous := debug.SetMemoryLimit(int64(min(m.limit, 1<<62)))
	defer debug.SetMemoryLimit(previous)
	// Memory in use: all the runtime maps, less what it has returned to
	// the OS and the free pages it keeps for reuse (which the soft limit
	// makes it return when needed). Counting those would keep the budget
	// tight long after a burst was collected.
	samples := []metrics.Sample{
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
	}
	t := time.NewTimer(memoryCheckMin)
	defer t.Stop()
	for {
		metrics.Read(samples)
		used := samples[0].Value.Uint64() - samples[1].Value.Uint64() - samples[2].Value.Uint64()
		m.set(used)
		t.Reset(m.nextCheck(used))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
