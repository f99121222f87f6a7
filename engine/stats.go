package engine

import (
	"math"
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

// Histogram counts observations in fixed buckets, with their sum and
// largest value since it was created. Its methods are safe for concurrent
// use; Observe does not allocate and costs a few atomic adds.
type Histogram struct {
	bounds []float64       // upper bounds, ascending; +Inf is implicit
	counts []atomic.Uint64 // per bucket, not cumulative; the last is +Inf's
	sum    atomic.Uint64   // float64 bits
	max    atomic.Uint64   // float64 bits
}

// NewHistogram returns a Histogram with the given bucket upper bounds,
// which must ascend.
func NewHistogram(bounds []float64) *Histogram {
	return &Histogram{bounds: slices.Clone(bounds), counts: make([]atomic.Uint64, len(bounds)+1)}
}

// ExponentialBounds returns n bucket bounds: start, start×factor, …
func ExponentialBounds(start, factor float64, n int) []float64 {
	b := make([]float64, n)
	for i := range b {
		b[i] = start * math.Pow(factor, float64(i))
	}
	return b
}

// Observe adds v, which must not be negative (times, sizes). Small
// values end the bucket search first, as they are the common ones.
func (h *Histogram) Observe(v float64) {
	i := 0
	for i < len(h.bounds) && v > h.bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	for {
		old := h.sum.Load()
		if h.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			break
		}
	}
	// Non-negative floats order as their bits do.
	bits := math.Float64bits(v)
	for {
		old := h.max.Load()
		if bits <= old || h.max.CompareAndSwap(old, bits) {
			break
		}
	}
}

// HistogramValue is the state of a Histogram at one time.
type HistogramValue struct {
	// Bounds are the buckets' upper bounds; Counts has one more element,
	// the count above the last bound. Counts are per bucket, not
	// cumulative.
	Bounds []float64
	Counts []uint64
	Count  uint64
	Sum    float64
	Max    float64 // the largest observation, 0 for none
}

// Load returns the counts, sum and largest observation. Concurrent
// observations may be seen in some of them and not yet in others.
func (h *Histogram) Load() HistogramValue {
	v := HistogramValue{Bounds: h.bounds, Counts: make([]uint64, len(h.counts))}
	for i := range h.counts {
		v.Counts[i] = h.counts[i].Load()
		v.Count += v.Counts[i]
	}
	v.Sum = math.Float64frombits(h.sum.Load())
	v.Max = math.Float64frombits(h.max.Load())
	return v
}

// Stats holds the self-report counters of one module. Counters and gauges
// are created on first use and live as long as the Stats, so a module
// looks them up once (at construction) and keeps the pointers for its hot
// path. The counters survive module restarts: they count since the agent
// started the module the first time.
type Stats struct {
	started time.Time

	mu         sync.Mutex
	counters   map[string]*Counter
	gauges     map[string]*Gauge
	histograms map[string]*Histogram

	// FlushErrors is present in every module's report.
	FlushErrors *Counter
}

// NewStats returns an empty Stats whose uptime starts now.
func NewStats() *Stats {
	s := &Stats{started: time.Now(), counters: map[string]*Counter{}, gauges: map[string]*Gauge{}, histograms: map[string]*Histogram{}}
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

// Histogram returns the histogram named name, creating it empty with
// bounds; an existing one keeps the bounds it was created with.
func (s *Stats) Histogram(name string, bounds []float64) *Histogram {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.histograms[name]
	if !ok {
		h = NewHistogram(bounds)
		s.histograms[name] = h
	}
	return h
}

// Uptime returns the time since the Stats was created.
func (s *Stats) Uptime() time.Duration { return time.Since(s.started) }

// Snapshot returns every counter and gauge as fields sorted by name,
// preceded by uptime (seconds). A histogram h is three fields: h_count
// and h_sum (cumulative) and h_max, its largest observation since the
// module first started; its buckets are left to Histograms.
func (s *Stats) Snapshot() []Field {
	s.mu.Lock()
	fields := make([]Field, 0, len(s.counters)+len(s.gauges)+3*len(s.histograms)+1)
	for name, c := range s.counters {
		fields = append(fields, Field{Name: name, Value: Number(float64(c.Load()))})
	}
	for name, g := range s.gauges {
		fields = append(fields, Field{Name: name, Value: Number(float64(g.Load()))})
	}
	for name, h := range s.histograms {
		v := h.Load()
		fields = append(fields,
			Field{Name: name + "_count", Value: Number(float64(v.Count))},
			Field{Name: name + "_sum", Value: Number(v.Sum)},
			Field{Name: name + "_max", Value: Number(v.Max)})
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

// HistogramStat is the current state of one histogram of a Stats.
type HistogramStat struct {
	Name string
	HistogramValue
}

// Histograms returns every histogram of s, sorted by name. Values leaves
// them out: a histogram is no single number.
func (s *Stats) Histograms() []HistogramStat {
	s.mu.Lock()
	out := make([]HistogramStat, 0, len(s.histograms))
	for name, h := range s.histograms {
		out = append(out, HistogramStat{Name: name, HistogramValue: h.Load()})
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b HistogramStat) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// ModuleStats is one module's counters, as the agent's own metrics show them.
type ModuleStats struct {
	Name  string
	Kind  ModuleKind
	Stats *Stats
}
