package aggregate

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/bucky3/bucky3/parse"
)

// kind is how a series aggregates. It is part of the series key, so a
// counter and a gauge of the same name and tags never share state.
type kind uint8

const (
	kindCounter kind = iota + 1
	kindGauge
	kindTimer
	kindSet
)

func kindOf(t parse.Type) kind {
	switch t {
	case parse.Counter:
		return kindCounter
	case parse.Gauge:
		return kindGauge
	case parse.Timer, parse.Histogram, parse.Distribution:
		return kindTimer
	case parse.Set:
		return kindSet
	}
	return 0
}

// series is the state of one series during one interval. It lives in a
// stripe's slice and is recycled at flush rather than freed.
type series struct {
	// key is the canonical key (see appendKey). The name and tags the
	// flush emits are substrings of it, so it is the one allocation a new
	// series costs, and emitted metrics may keep it after recycling.
	key  string
	kind kind
	// next is the position of the next series with the same hash in the
	// stripe's slice, -1 for none.
	next int32
	// ts is the last sample timestamp in milliseconds, 0 for none.
	ts int64
	// value is a counter's sum of value/rate or a gauge's value.
	value float64
	// samples are a timer's samples, sorted only at flush.
	samples []float64
	// rule is the histogram rule of a timer, chosen at creation.
	rule    *histRule
	members map[string]struct{}
}

// stripe is one independently locked part of a Table.
type stripe struct {
	mu sync.Mutex
	// index maps a key hash to the position in series of the most recent
	// series with that hash; others with the same hash are chained by next.
	index  map[uint64]int32
	series []series
	// spareIndex and spareSeries hold the previous interval's state; only
	// Flush touches them, swapping them with the live pair under mu.
	spareIndex  map[uint64]int32
	spareSeries []series
}

// Table aggregates StatsD samples between flushes. Samples are added
// through Writers, one per goroutine; Flush may run concurrently with them.
type Table struct {
	o           Options
	rules       []*histRule
	thresholds  []int    // PercentileThresholds × 100, so that k is exact
	percentiles []string // the percentile tag of each threshold
	mask        uint64
	stripes     []stripe
	// sum64 hashes a key: xxhash.Sum64, replaced in tests to force
	// collisions.
	sum64   func([]byte) uint64
	live    atomic.Int64 // series in the live maps, bounded by MaxSeries
	dropped atomic.Uint64

	flushMu sync.Mutex
	last    time.Time // time of the previous Flush, or of New
}

// New returns an empty Table; the first Flush's interval starts now.
func New(o Options) (*Table, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	t := &Table{
		o:       o,
		mask:    uint64(o.Stripes - 1),
		stripes: make([]stripe, o.Stripes),
		sum64:   xxhash.Sum64,
		last:    time.Now(),
	}
	for i := range o.Histograms {
		r, err := compileRule(&o.Histograms[i])
		if err != nil {
			return nil, fmt.Errorf("histograms[%d].%w", i, err)
		}
		t.rules = append(t.rules, r)
	}
	for _, p := range o.PercentileThresholds {
		t.thresholds = append(t.thresholds, int(math.Round(p*100)))
		t.percentiles = append(t.percentiles, percentileTag(p))
	}
	for i := range t.stripes {
		t.stripes[i].index = make(map[uint64]int32)
		t.stripes[i].spareIndex = make(map[uint64]int32)
	}
	return t, nil
}

// SeriesDropped returns how many samples were dropped since New because
// they would have started a series beyond MaxSeries.
func (t *Table) SeriesDropped() uint64 { return t.dropped.Load() }

// Writer adds samples to a Table. It owns the scratch space series keys
// are built in, so it must not be shared between goroutines: give each
// reader goroutine its own. Any number of Writers may add to one Table
// concurrently with each other and with Flush.
type Writer struct {
	t   *Table
	key []byte
}

// NewWriter returns a Writer adding to t.
func (t *Table) NewWriter() *Writer { return &Writer{t: t, key: make([]byte, 0, 256)} }

// Add folds s into its series; s is not retained. Adding to a series
// that already exists in this interval does not allocate. Add returns
// false when s is dropped: because it would start a series beyond
// MaxSeries (counted in SeriesDropped) or because its Type is unknown.
func (w *Writer) Add(s *parse.Sample) bool {
	k := kindOf(s.Type)
	if k == 0 {
		return false
	}
	w.key = appendKey(w.key[:0], k, s)
	t := w.t
	h := t.sum64(w.key)
	st := &t.stripes[h&t.mask]
	st.mu.Lock()
	ser := st.lookup(h, w.key)
	if ser == nil {
		if ser = t.create(st, h, k, w.key, s.Name); ser == nil {
			st.mu.Unlock()
			t.dropped.Add(1)
			return false
		}
	}
	switch k {
	case kindCounter:
		ser.addCounter(s)
	case kindGauge:
		ser.addGauge(s)
	case kindTimer:
		ser.samples = append(ser.samples, s.Values...)
	case kindSet:
		ser.addMember(s.SetMember)
	}
	if s.Timestamp != 0 {
		ser.ts = s.Timestamp
	}
	st.mu.Unlock()
	return true
}

// appendKey appends the canonical key of a sample of kind k: the kind,
// then the name and each tag key and value, each preceded by its length so
// that two different series can never have the same key. The parser has
// already sorted the tags and made their keys unique.
func appendKey(dst []byte, k kind, s *parse.Sample) []byte {
	dst = append(dst, byte(k))
	dst = appendField(dst, s.Name)
	for _, tag := range s.Tags {
		dst = appendField(dst, tag.Key)
		dst = appendField(dst, tag.Value)
	}
	return dst
}

func appendField(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// cutField splits the first field written by appendField off key.
func cutField(key string) (field, rest string) {
	var n, shift uint
	i := 0
	for ; key[i] >= 0x80; i++ {
		n |= uint(key[i]&0x7f) << shift
		shift += 7
	}
	n |= uint(key[i]) << shift
	i++
	return key[i : i+int(n)], key[i+int(n):]
}

// lookup returns the series whose key is key, nil if there is none. The
// full key is compared, so series whose hashes collide stay apart.
func (st *stripe) lookup(h uint64, key []byte) *series {
	i, ok := st.index[h]
	if !ok {
		return nil
	}
	for i >= 0 {
		ser := &st.series[i]
		if ser.key == string(key) {
			return ser
		}
		i = ser.next
	}
	return nil
}

// create adds a series to st, reusing a recycled slot when there is one.
// It returns nil when the table already holds MaxSeries series.
func (t *Table) create(st *stripe, h uint64, k kind, key, name []byte) *series {
	if t.live.Add(1) > int64(t.o.MaxSeries) {
		t.live.Add(-1)
		return nil
	}
	n := len(st.series)
	if n < cap(st.series) {
		st.series = st.series[:n+1]
	} else {
		st.series = append(st.series, series{})
	}
	ser := &st.series[n]
	ser.key = string(key)
	ser.kind = k
	ser.next = -1
	if head, ok := st.index[h]; ok {
		ser.next = head
	}
	st.index[h] = int32(n)
	if k == kindTimer {
		ser.rule = t.ruleFor(name)
	}
	return ser
}

// ruleFor returns the first histogram rule matching name, nil for none.
func (t *Table) ruleFor(name []byte) *histRule {
	for _, r := range t.rules {
		if r.re.Match(name) {
			return r
		}
	}
	return nil
}

// Recycled series keep their buffers for the next interval, unless an
// unusually busy interval made them big enough that keeping them would
// pin memory a quiet table no longer needs.
const (
	maxRecycledSamples = 1 << 16
	maxRecycledMembers = 1 << 12
)

// recycle empties ser for a later series.
func (ser *series) recycle() {
	samples, members := ser.samples[:0], ser.members
	if cap(samples) > maxRecycledSamples {
		samples = nil
	}
	if len(members) > maxRecycledMembers {
		members = nil
	}
	clear(members)
	*ser = series{samples: samples, members: members}
}
