package engine

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Counter is a cumulative, monotonic count. Its methods are safe for
// concurrent use and do not allocate.
type Counter struct{ v atomic.Uint64 }

// Add adds n to the counter.
func (c *Counter) Add(n uint64) { c.v.Add(n) }

// Inc adds one to the counter.
func (c *Counter) Inc() { c.v.Add(1) }

// Load returns the current count.
func (c *Counter) Load() uint64 { return c.v.Load() }

// Gauge is a value that can go up and down (metrics_buffered). Its methods
// are safe for concurrent use.
type Gauge struct{ v atomic.Int64 }

// Set sets the gauge.
func (g *Gauge) Set(n int64) { g.v.Store(n) }

// Add adds n (possibly negative) to the gauge.
func (g *Gauge) Add(n int64) { g.v.Add(n) }

// Load returns the current value.
func (g *Gauge) Load() int64 { return g.v.Load() }

// Stats holds the self-report counters of one module. Counters and gauges
// are created on first use and live as long as the Stats, so a module
// looks them up once (at construction) and keeps the pointers for its hot
// path. The counters survive module restarts: they count since the agent
// started the module the first time.
type Stats struct {
	started time.Time

	mu       sync.Mutex
	counters map[string]*Counter
	gauges   map[string]*Gauge

	// FlushErrors is present in every module's report.
	FlushErrors *Counter
}

// NewStats returns an empty Stats whose uptime starts now.
func NewStats() *Stats {
	s := &Stats{started: time.Now(), counters: map[string]*Counter{}, gauges: map[string]*Gauge{}}
	s.FlushErrors = s.Counter("flush_errors")
	return s
}

// Counter returns the counter named name, creating it at zero.
func (s *Stats) Counter(name string) *Counter {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.counters[name]
	if !ok {
		c = new(Counter)
		s.counters[name] = c
	}
	return c
}

// Gauge returns the gauge named name, creating it at zero.
func (s *Stats) Gauge(name string) *Gauge {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.gauges[name]
	if !ok {
		g = new(Gauge)
		s.gauges[name] = g
	}
	return g
}

// Uptime returns the time since the Stats was created.
func (s *Stats) Uptime() time.Duration { return time.Since(s.started) }

// Snapshot returns every counter and gauge as fields sorted by name,
// preceded by uptime (seconds).
func (s *Stats) Snapshot() []Field {
	s.mu.Lock()
	fields := make([]Field, 0, len(s.counters)+len(s.gauges)+1)
	for name, c := range s.counters {
		fields = append(fields, Field{Name: name, Value: Number(float64(c.Load()))})
	}
	for name, g := range s.gauges {
		fields = append(fields, Field{Name: name, Value: Number(float64(g.Load()))})
	}
	s.mu.Unlock()
	slices.SortFunc(fields, func(a, b Field) int { return strings.Compare(a.Name, b.Name) })
	return append([]Field{{Name: "uptime", Value: Number(s.Uptime().Seconds())}}, fields...)
}

// StatValue is the current value of one counter or gauge of a Stats.
type StatValue struct {
	Name  string
	Gauge bool // a gauge, not a cumulative counter
	Value float64
}

// Values returns every counter and gauge of s, sorted by name.
func (s *Stats) Values() []StatValue {
	s.mu.Lock()
	out := make([]StatValue, 0, len(s.counters)+len(s.gauges))
	for name, c := range s.counters {
		out = append(out, StatValue{Name: name, Value: float64(c.Load())})
	}
	for name, g := range s.gauges {
		out = append(out, StatValue{Name: name, Gauge: true, Value: float64(g.Load())})
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b StatValue) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// ModuleStats is one module's counters, as the agent's own metrics show them.
type ModuleStats struct {
	Name  string
	Kind  ModuleKind
	Stats *Stats
}
