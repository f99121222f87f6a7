package engine

import (
	"sync"
	"sync/atomic"
)

// Beat is the liveness of one loop of a module: a socket reader, a flush
// loop, a destination's push loop. The loop calls Begin when it takes up a
// piece of work and End when it is done with it. A loop that is busy and
// has made no progress between two health checks is stuck; an idle one
// (waiting on an empty socket) is not. Begin and End cost an atomic add
// each, so a reader may call them per batch of datagrams. A nil *Beat
// does nothing.
type Beat struct {
	name   string
	begun  atomic.Uint64
	ended  atomic.Uint64
	lastB  uint64 // begun and ended at the previous check (health's lock)
	lastE  uint64
	module string
}

// Begin marks the start of a piece of work.
func (b *Beat) Begin() {
	if b != nil {
		b.begun.Add(1)
	}
}

// End marks the end of the piece of work Begin started.
func (b *Beat) End() {
	if b != nil {
		b.ended.Add(1)
	}
}

// health is the agent's readiness and liveness.
type health struct {
	mu      sync.Mutex
	beats   []*Beat
	pending atomic.Int64 // modules not started plus ready functions not called
	ready   chan struct{}
}

func newHealth() *health { return &health{ready: make(chan struct{})} }

// wait adds one thing that readiness waits for and returns the function
// that marks it done; that function may be called any number of times.
func (h *health) wait() func() {
	h.pending.Add(1)
	var once sync.Once
	return func() { once.Do(h.done) }
}

func (h *health) done() {
	if h.pending.Add(-1) == 0 {
		close(h.ready)
	}
}

func (h *health) beat(module, name string) *Beat {
	b := &Beat{module: module, name: name}
	h.mu.Lock()
	h.beats = append(h.beats, b)
	h.mu.Unlock()
	return b
}

// stuck returns the loops that were busy at the previous check and still
// are, without having finished anything since. Each call starts a new
// period.
func (h *health) stuck() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, b := range h.beats {
		begun, ended := b.begun.Load(), b.ended.Load()
		if begun != ended && begun == b.lastB && ended == b.lastE {
			out = append(out, b.module+"/"+b.name)
		}
		b.lastB, b.lastE = begun, ended
	}
	return out
}

// Beat returns the liveness handle of one of the module's loops, named
// for the logs (e.g. "reader 3"). Outside an agent it returns nil, which
// does nothing.
func (m Module) Beat(name string) *Beat {
	if m.health == nil {
		return nil
	}
	return m.health.beat(m.Name, name)
}

// AwaitReady makes the agent's readiness wait for the module: a module
// that must bind a socket or start a server before it can serve calls it
// in its constructor and calls the returned function once it can (every
// module is waited for until its Run starts anyway). The function may be
// called again after a restart; only the first call counts.
func (m Module) AwaitReady() (ready func()) {
	if m.health == nil {
		return func() {}
	}
	return m.health.wait()
}

// Ready is closed once every module has started and every module that
// called AwaitReady has said it is ready.
func (a *Agent) Ready() <-chan struct{} { return a.health.ready }

// Stuck returns the loops (module/loop) that were busy at the previous
// call and have made no progress since; each call starts a new period. A
// watchdog calls it once per period and pings only while it is empty.
func (a *Agent) Stuck() []string { return a.health.stuck() }

// Totals sums, over every module, the lines received, the series the
// sources hold (gauges named "series") and everything dropped, for a
// one-line status.
func (a *Agent) Totals() (lines, series, dropped uint64) {
	for _, ms := range a.allStats() {
		for _, v := range ms.Stats.Values() {
			switch {
			case v.Name == "lines_received" && !v.Gauge:
				lines += uint64(v.Value)
			case v.Name == "series" && v.Gauge && v.Value > 0 && ms.Kind == ModuleSource:
				series += uint64(v.Value)
			}
		}
		for _, l := range ms.Stats.Losses() {
			dropped += l.Count
		}
	}
	return lines, series, dropped
}
