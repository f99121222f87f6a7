package engine

import (
	"context"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestMemory_TightAbove90Percent(t *testing.T) {
	m := NewMemory(1000)
	f := func(used uint64, want bool) {
		t.Helper()
		m.set(used)
		if m.Tight() != want || m.Used() != used {
			t.Fatalf("at %d of 1000 bytes: Tight() = %v, want %v", used, m.Tight(), want)
		}
	}
	f(0, false)
	f(900, false)
	f(901, true)
	f(5000, true)
	f(899, false)
}

func TestMemory_NoneIsNeverTight(t *testing.T) {
	m := NewMemory(0)
	if m != nil || m.Tight() || m.Limit() != 0 || m.Used() != 0 {
		t.Fatal("memory_limit = 0 must mean no budget")
	}
	m.run(context.Background()) // returns at once
}

// The budget follows the real heap: tight while a large block is live,
// relaxed once it is collected; the soft limit is set while it runs and
// restored after.
func TestMemory_FollowsTheHeap(t *testing.T) {
	const limit = 128 << 20
	m := NewMemory(limit)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	before := debug.SetMemoryLimit(-1)
	go func() {
		defer close(done)
		m.run(ctx)
	}()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: used %d of %d", what, m.Used(), limit)
			}
		}
	}
	waitFor("soft limit set", func() bool { return debug.SetMemoryLimit(-1) == limit })
	block := make([]byte, limit)
	for i := range block {
		block[i] = 1
	}
	waitFor("tight with 128 MiB live", m.Tight)
	runtime.KeepAlive(block)
	runtime.GC()
	debug.FreeOSMemory()
	waitFor("relaxed after the block is freed", func() bool { return !m.Tight() })
	cancel()
	<-done
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Fatalf("soft limit after run = %d, want %d restored", got, before)
	}
}

// The budget samples rarely far below its limit and often near it: a
// heap growing at memoryGrowthBound cannot pass 90% between two samples.
func TestMemory_ChecksMoreOftenNearTheLimit(t *testing.T) {
	m := NewMemory(2 << 30)
	high := uint64(2<<30) / 10 * 9
	cases := []struct {
		used uint64
		want time.Duration
	}{
		{0, memoryCheckMax},
		{20 << 20, memoryCheckMax}, // an idle agent: once a second
		{high - memoryGrowthBound/4, 250 * time.Millisecond},
		{high - 1<<20, memoryCheckMin},
		{high, memoryCheckMin},
		{3 << 30, memoryCheckMin},
	}
	for _, c := range cases {
		got := m.nextCheck(c.used)
		if got != c.want {
			t.Errorf("nextCheck(%d) = %v, want %v", c.used, got, c.want)
		}
		// Never later than the bound allows, but for the shortest wait.
		if c.used < high && got > memoryCheckMin && float64(high-c.used)/memoryGrowthBound < got.Seconds()-1e-9 {
			t.Errorf("nextCheck(%d) = %v lets the heap pass 90%% first", c.used, got)
		}
	}
}
