package prometheus

import (
	"bytes"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/bucky3/bucky3/engine"
)

// tailCap is the capacity given to a new series' value bytes: enough for
// the longest float, a millisecond timestamp and the separators, so that
// refreshing a series never reallocates.
const tailCap = 48

// series is one sample line, split where it changes: key (the metric name
// and labels) is fixed for the series' life and doubles as its map key,
// tail (AppendValue) is rewritten in place on every refresh.
type series struct {
	key  string
	tail []byte
	// seen is when the series was last refreshed, in Unix nanoseconds.
	seen int64
}

// family holds the series of one metric name in the order they first
// appeared, which keeps a page stable between scrapes.
type family struct {
	header []byte
	series []series
	index  map[string]int
}

// Budget is what the store asks of a memory budget before it keeps a new
// series; *engine.Memory is one.
type Budget interface {
	// Tight reports whether growth must be refused now.
	Tight() bool
}

// storeLimits bound what the store keeps.
type storeLimits struct {
	// maxSeries caps the series held; new ones beyond it are dropped.
	maxSeries int
	// memory refuses new series while tight; nil never does.
	memory Budget
	// reserved reports the family names the page's own metrics use; data
	// families of those names are dropped. Nil reserves none.
	reserved func(name string) bool
}

// store is the exporter's table of current samples. Ingest and evict run
// on the exporter's goroutine while scrapes read concurrently: writers take
// mu exclusively, appendPage shares it.
type store struct {
	mu       sync.RWMutex
	families map[string]*family
	// names are the keys of families, sorted: the page order.
	names []string
	// scratch is the line being rendered; only touched under mu.
	scratch []byte
	// count is the number of series held.
	count  int
	limits storeLimits
	// version changes whenever the page would: a scrape re-renders only
	// when it differs from the version of the page it holds.
	version atomic.Uint64

	received *engine.Counter
	// dropped is the total of the dropped* counters by reason below.
	dropped          *engine.Counter
	droppedNotFinite *engine.Counter
	droppedMaxSeries *engine.Counter
	droppedMemory    *engine.Counter
	droppedReserved  *engine.Counter
	seriesGauge      *engine.Gauge
}

func newStore(stats *engine.Stats, limits storeLimits) *store {
	if limits.maxSeries <= 0 {
		limits.maxSeries = int(^uint(0) >> 1)
	}
	return &store{
		families:         map[string]*family{},
		limits:           limits,
		received:         stats.Counter("metrics_received"),
		dropped:          stats.Counter("metrics_dropped"),
		droppedNotFinite: stats.Counter("metrics_dropped_not_finite"),
		droppedMaxSeries: stats.Counter("metrics_dropped_max_series"),
		droppedMemory:    stats.Counter("metrics_dropped_memory_limit"),
		droppedReserved:  stats.Counter("metrics_dropped_reserved_name"),
		seriesGauge:      stats.Gauge("series"),
	}
}

// setReserved sets the test for reserved family names. Families created
// before keep their data.
func (s *store) setReserved(reserved func(string) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limits.reserved = reserved
}

// drop counts one dropped field under its reason and in the total.
func (s *store) drop(reason *engine.Counter) {
	reason.Inc()
	s.dropped.Inc()
}

// ingest renders every numeric and boolean field of b as the newest
// sample of its series, seen at now (Unix ns). A known series costs no
// allocation. A new series is dropped, counted by reason, beyond
// max_series, while memory is tight, or when its family name is reserved.
// Non-finite numbers are skipped and counted as dropped; strings and nulls
// are not samples and are ignored.
func (s *store) ingest(b *engine.Batch, now int64, addTimestamps bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := false
	for i := range b.Metrics {
		m := &b.Metrics[i]
		ts := m.Timestamp
		if !addTimestamps {
			ts = 0
		}
		for _, f := range m.Fields {
			v, ok := f.Value.Float()
			if !ok {
				if f.Value.Kind == engine.KindNumber {
					s.drop(s.droppedNotFinite)
				}
				continue
			}
			key := AppendSeries(s.scratch[:0], m.Bucket, m.Tags, f.Name)
			s.scratch = key
			// A sanitised name has no '{': the first one ends it.
			name := key[:bytes.IndexByte(key, '{')]
			fam := s.families[string(name)]
			j, ok := -1, false
			if fam != nil {
				j, ok = fam.index[string(key)]
			}
			if !ok {
				if fam, j = s.newSeries(fam, name, key); fam == nil {
					continue
				}
			}
			sr := &fam.series[j]
			sr.tail = AppendValue(sr.tail[:0], v, ts)
			sr.seen = now
			changed = true
		}
	}
	s.received.Add(uint64(len(b.Metrics)))
	if changed {
		s.version.Add(1)
	}
}

// newSeries adds the series key to fam (nil: the family name does not
// exist yet) and returns its family and index, or a nil family when a
// limit refuses it (counted).
func (s *store) newSeries(fam *family, name, key []byte) (*family, int) {
	switch {
	case s.count >= s.limits.maxSeries:
		s.drop(s.droppedMaxSeries)
		return nil, 0
	case s.limits.memory != nil && s.limits.memory.Tight():
		s.drop(s.droppedMemory)
		return nil, 0
	case fam == nil && s.limits.reserved != nil && s.limits.reserved(string(name)):
		s.drop(s.droppedReserved)
		return nil, 0
	}
	if fam == nil {
		fam = s.addFamily(string(name))
	}
	k := string(key)
	j := len(fam.series)
	fam.series = append(fam.series, series{key: k, tail: make([]byte, 0, tailCap)})
	fam.index[k] = j
	s.count++
	s.seriesGauge.Set(int64(s.count))
	return fam, j
}

// addFamily creates the family named n.
func (s *store) addFamily(n string) *family {
	fam := &family{header: AppendFamilyHeader(nil, n), index: map[string]int{}}
	s.families[n] = fam
	i, _ := slices.BinarySearch(s.names, n)
	s.names = slices.Insert(s.names, i, n)
	return fam
}

// evict removes the series last seen before cutoff (Unix ns), and the
// families left empty.
func (s *store) evict(cutoff int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	before := s.count
	names := s.names[:0]
	for _, n := range s.names {
		fam := s.families[n]
		kept := fam.series[:0]
		for _, sr := range fam.series {
			if sr.seen < cutoff {
				delete(fam.index, sr.key)
				s.count--
				continue
			}
			if len(kept) != fam.index[sr.key] {
				fam.index[sr.key] = len(kept)
			}
			kept = append(kept, sr)
		}
		clear(fam.series[len(kept):])
		fam.series = kept
		if len(kept) == 0 {
			delete(s.families, n)
			continue
		}
		names = append(names, n)
	}
	clear(s.names[len(names):])
	s.names = names
	if s.count != before {
		s.seriesGauge.Set(int64(s.count))
		s.version.Add(1)
	}
}

// appendPage appends the whole exposition: the families in name order,
// each its header then its series. It returns the version of the store
// the page shows.
func (s *store) appendPage(dst []byte) ([]byte, uint64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, n := range s.names {
		fam := s.families[n]
		dst = append(dst, fam.header...)
		for i := range fam.series {
			dst = append(dst, fam.series[i].key...)
			dst = append(dst, fam.series[i].tail...)
		}
	}
	return dst, s.version.Load()
}
