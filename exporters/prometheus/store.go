package prometheus

import (
	"bytes"
	"slices"
	"sync"

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

	received *engine.Counter
	dropped  *engine.Counter
}

func newStore(stats *engine.Stats) *store {
	return &store{
		families: map[string]*family{},
		received: stats.Counter("metrics_received"),
		dropped:  stats.Counter("metrics_dropped"),
	}
}

// ingest renders every numeric and boolean field of b as the newest
// sample of its series, seen at now (Unix ns). A known series costs no
// allocation. Non-finite numbers are skipped and counted as dropped;
// strings and nulls are not samples and are ignored.
func (s *store) ingest(b *engine.Batch, now int64, addTimestamps bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
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
					s.dropped.Inc()
				}
				continue
			}
			key := AppendSeries(s.scratch[:0], m.Bucket, m.Tags, f.Name)
			s.scratch = key
			// A sanitised name has no '{': the first one ends it.
			fam := s.family(key[:bytes.IndexByte(key, '{')])
			j, ok := fam.index[string(key)]
			if !ok {
				key := string(key)
				j = len(fam.series)
				fam.series = append(fam.series, series{key: key, tail: make([]byte, 0, tailCap)})
				fam.index[key] = j
			}
			sr := &fam.series[j]
			sr.tail = AppendValue(sr.tail[:0], v, ts)
			sr.seen = now
		}
	}
	s.received.Add(uint64(len(b.Metrics)))
}

// family returns the family named name, creating it.
func (s *store) family(name []byte) *family {
	if fam, ok := s.families[string(name)]; ok {
		return fam
	}
	n := string(name)
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
	names := s.names[:0]
	for _, n := range s.names {
		fam := s.families[n]
		kept := fam.series[:0]
		for _, sr := range fam.series {
			if sr.seen < cutoff {
				delete(fam.index, sr.key)
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
}

// appendPage appends the whole exposition: the families in name order,
// each its header then its series.
func (s *store) appendPage(dst []byte) []byte {
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
	return dst
}
