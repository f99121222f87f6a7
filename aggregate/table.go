package aggregate

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
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

// series is the state of one series during one interval, recycled at
// flush. The fields an add touches come first: a counter or gauge add, and
// the reader's prefetch of it (Ref.Hints), needs one cache line.
type series struct {
	kind kind
	// abs is set when a gauge took an absolute value this interval.
	abs bool
	// next is the position of the next series with the same hash in the
	// stripe's slice, -1 for none.
	next int32
	// value is a counter's sum of value/rate or a gauge's value.
	value float64
	// samples are a timer's samples, in arrival order (the flush selects,
	// not sorts): at most MaxTimerSamples, past which a reservoir (see over).
	samples []float64
	members map[string]struct{}
	// over is the state of a timer or set past its per-interval cap
	// (timer.go, set.go); nil below it.
	over *overflow
	// ts is the last sample timestamp in milliseconds, 0 for none.
	ts int64
	// key is the canonical key (see appendKey), the one allocation of a
	// new series: the emitted name and tags are substrings of it.
	key string
	// rule is the histogram rule of a timer, chosen at creation.
	rule *histRule
	// typ is the type of a series of a typed table, nil otherwise; obs
	// holds a typed timer's observations (typed.go).
	typ *SeriesType
	obs *observations
}

// stripe is one independently locked part of a Table.
type stripe struct {
	mu sync.Mutex
	// index maps a key hash to the position in series of the most recent
	// series with that hash; others with the same hash are chained by next.
	index  map[uint64]int32
	series seriesList
	// spareIndex and spareSeries hold the previous interval's state; only
	// Flush touches them, swapping them with the live pair under mu.
	spareIndex  map[uint64]int32
	spareSeries seriesList
	// gen counts the swaps, from 1: within one gen a series keeps its
	// position in series, so a Ref of the current gen can skip the index.
	gen uint64
}

// seriesList holds a stripe's series in creation order, in chunks of up
// to seriesChunk that never move: growing copies nothing and leaves the
// GC no old array (bench/RESULTS.md, Round 7). reset keeps the chunks and
// their series' buffers for the next interval.
type seriesList struct {
	chunks [][]series
	n      int32
}

const (
	seriesChunkBits = 12
	seriesChunk     = 1 << seriesChunkBits
)

// at returns the series at position i, which must be below len.
func (l *seriesList) at(i int32) *series {
	return &l.chunks[i>>seriesChunkBits][i&(seriesChunk-1)]
}

func (l *seriesList) len() int { return int(l.n) }

// push adds a series at the end, recycled or zero, and returns its
// position. Only the first chunk grows, so a small stripe stays small.
func (l *seriesList) push() (int32, *series) {
	c := int(l.n >> seriesChunkBits)
	if c == len(l.chunks) {
		size := seriesChunk
		if c == 0 {
			size = 8
		}
		l.chunks = append(l.chunks, make([]series, 0, size))
	}
	chunk := &l.chunks[c]
	if n := len(*chunk); n < cap(*chunk) {
		*chunk = (*chunk)[:n+1]
	} else { // only the first chunk grows, and never past seriesChunk
		grown := make([]series, n+1, min(2*n, seriesChunk))
		copy(grown, *chunk)
		*chunk = grown
	}
	i := l.n
	l.n++
	return i, l.at(i)
}

// reset empties the list, keeping its chunks.
func (l *seriesList) reset() {
	for c := range l.chunks {
		l.chunks[c] = l.chunks[c][:0]
	}
	l.n = 0
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
	// sum64 is xxhash.Sum64; tests replace it to force collisions.
	sum64   func([]byte) uint64
	live    atomic.Int64 // series in the live maps, bounded by MaxSeries
	dropped atomic.Uint64
	// droppedMemory counts new series refused while Memory was tight;
	// sampled and estimated count series that passed their cap.
	droppedMemory atomic.Uint64
	sampled       atomic.Uint64
	estimated     atomic.Uint64
	// seed starts each reservoir's random stream.
	seed atomic.Uint64
	// defaults are the SeriesTypes of a typed table's samples added
	// without one: [0] for most, [1] for ms timers (defaultType).
	defaults [2]SeriesType

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
	t.seed.Store(rand.Uint64())
	t.defaults[0] = SeriesType{Buckets: o.DefaultBuckets}
	t.defaults[1] = SeriesType{Buckets: o.DefaultBuckets, Scale: 0.001}
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
		t.stripes[i].gen = 1
	}
	return t, nil
}

// SeriesDropped returns how many samples were dropped since New because
// they would have started a series beyond MaxSeries.
func (t *Table) SeriesDropped() uint64 { return t.dropped.Load() }

// Series returns how many series the table holds in the current interval.
func (t *Table) Series() int64 { return t.live.Load() }

// MemoryDropped returns how many samples were dropped since New because
// they would have started a series while Options.Memory was tight.
func (t *Table) MemoryDropped() uint64 { return t.droppedMemory.Load() }

// TimersSampled returns how many timer series, counted once per interval,
// passed MaxTimerSamples since New: their percentiles come from a sample.
func (t *Table) TimersSampled() uint64 { return t.sampled.Load() }

// SetsEstimated returns how many set series, counted once per interval,
// passed MaxSetSize since New: their count is an estimate.
func (t *Table) SetsEstimated() uint64 { return t.estimated.Load() }

// Writer adds samples to a Table. It owns the scratch space keys are built
// in, so each goroutine needs its own; any number of Writers may add to
// one Table concurrently with each other and with Flush.
type Writer struct {
	t   *Table
	key []byte
}

// NewWriter returns a Writer adding to t.
func (t *Table) NewWriter() *Writer { return &Writer{t: t, key: make([]byte, 0, 256)} }

// Add folds s into its series; s is not retained. Adding to a series
// that already exists in this interval does not allocate. Add returns
// false when s is dropped: because it would start a series beyond
// MaxSeries (counted in SeriesDropped) or while memory is tight (counted
// in MemoryDropped), or because its Type is unknown. On a typed table a
// new series takes the table's default SeriesType (AddTyped).
func (w *Writer) Add(s *parse.Sample) bool {
	var ref Ref
	return w.addRef(s, w.t.defaultType(s.Type), &ref)
}

// Ref remembers a series, so that adding to it again through AddTo skips
// building and hashing its key: a reader keeps one for each kind of line
// it sees often. A Ref stays usable across flushes (the first AddTo after
// a Flush looks the series up by key) and is only ever used with the
// Writer's Table. The zero Ref is not usable.
type Ref struct {
	key  string
	hash uint64
	gen  uint64 // the stripe's gen when slot was found
	slot int32
	// typ is the series' type on a typed table, to start it again.
	typ *SeriesType
	// at and next are the prefetch hints of the last add (see hints.go).
	at, next uintptr
}

// AddRef is Add that also sets ref to the series s was added to.
func (w *Writer) AddRef(s *parse.Sample, ref *Ref) bool {
	return w.addRef(s, w.t.defaultType(s.Type), ref)
}

// addRef is AddRef for a series of type typ, nil on a table that is not
// typed.
func (w *Writer) addRef(s *parse.Sample, typ *SeriesType, ref *Ref) bool {
	k := kindOf(s.Type)
	if k == 0 {
		return false
	}
	w.key = appendKey(w.key[:0], k, s)
	t := w.t
	h := t.sum64(w.key)
	st := &t.stripes[h&t.mask]
	st.mu.Lock()
	slot := find(st, h, w.key)
	if slot < 0 {
		if slot = create(t, st, h, w.key, typ); slot < 0 {
			st.mu.Unlock()
			return false
		}
	}
	ser := st.series.at(slot)
	ser.add(t, s)
	*ref = Ref{key: ser.key, hash: h, gen: st.gen, slot: slot, typ: ser.typ}
	ref.at, ref.next = hintsOf(ser)
	st.mu.Unlock()
	return true
}

// AddTo adds s to the series ref was set to by AddRef or AddTyped, which
// must have the same kind as s: its Name and Tags are ignored. After a
// Flush, AddTo starts the series again, of the type it had, so it may drop
// s as Add does.
func (w *Writer) AddTo(ref *Ref, s *parse.Sample) bool {
	t := w.t
	st := &t.stripes[ref.hash&t.mask]
	st.mu.Lock()
	if ref.gen != st.gen {
		slot := find(st, ref.hash, ref.key)
		if slot < 0 {
			if slot = create(t, st, ref.hash, ref.key, ref.typ); slot < 0 {
				st.mu.Unlock()
				return false
			}
		}
		ref.gen, ref.slot = st.gen, slot
	}
	ser := st.series.at(ref.slot)
	ser.add(t, s)
	ref.at, ref.next = hintsOf(ser)
	st.mu.Unlock()
	return true
}

// add folds s, whose kind is ser's, into ser, a series of t.
func (ser *series) add(t *Table, s *parse.Sample) {
	switch ser.kind {
	case kindCounter:
		ser.addCounter(s)
	case kindGauge:
		ser.addGauge(s)
	case kindTimer:
		// Below the cap a sample costs an append; sampling starts past it.
		if ser.typ != nil {
			ser.observe(t, s)
		} else if len(ser.samples)+len(s.Values) <= t.o.MaxTimerSamples {
			ser.samples = append(ser.samples, s.Values...)
		} else {
			t.addSampled(ser, s.Values)
		}
	case kindSet:
		ser.addMember(t, s.SetMember)
	}
	if s.Timestamp != 0 {
		ser.ts = s.Timestamp
	}
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

// find returns the position in st.series of the series whose key is key,
// -1 if there is none. The full key is compared, so series whose hashes
// collide stay apart.
func find[K string | []byte](st *stripe, h uint64, key K) int32 {
	i, ok := st.index[h]
	if !ok {
		return -1
	}
	for i >= 0 {
		ser := st.series.at(i)
		if ser.key == string(key) {
			return i
		}
		i = ser.next
	}
	return -1
}

// create adds the series of key to st, of type typ on a typed table,
// reusing a recycled slot when there is one, and returns its position. It returns -1, counted, while memory
// is tight (the budget costs one atomic load, on this path only) or when
// the table already holds MaxSeries series. The key is copied only when
// the series is kept: a refusal, which a flood repeats, allocates nothing.
func create[K string | []byte](t *Table, st *stripe, h uint64, key K, typ *SeriesType) int32 {
	if t.o.Memory != nil && t.o.Memory.Tight() {
		t.droppedMemory.Add(1)
		return -1
	}
	if t.live.Add(1) > int64(t.o.MaxSeries) {
		t.live.Add(-1)
		t.dropped.Add(1)
		return -1
	}
	n, ser := st.series.push()
	ser.key = string(key)
	ser.kind = kind(ser.key[0])
	ser.next = -1
	if head, ok := st.index[h]; ok {
		ser.next = head
	}
	st.index[h] = n
	switch {
	case typ != nil:
		ser.typ = typ
		if ser.kind == kindTimer {
			if ser.obs == nil {
				ser.obs = new(observations)
			}
			ser.obs.start(typ)
		}
	case ser.kind == kindTimer:
		name, _ := cutField(ser.key[1:])
		ser.rule = t.ruleFor(name)
	}
	return n
}

// ruleFor returns the first histogram rule matching name, nil for none.
func (t *Table) ruleFor(name string) *histRule {
	for _, r := range t.rules {
		if r.re.MatchString(name) {
			return r
		}
	}
	return nil
}

// Recycled series keep their buffers, unless a busy interval made them
// so big that they would pin memory a quiet table no longer needs.
const (
	maxRecycledSamples = 1 << 16
	maxRecycledMembers = 1 << 12
	maxRecycledNative  = 1 << 8
)

// recycle empties ser for a later series.
func (ser *series) recycle() {
	samples, members, obs := ser.samples[:0], ser.members, ser.obs
	if cap(samples) > maxRecycledSamples {
		samples = nil
	}
	if len(members) > maxRecycledMembers {
		members = nil
	}
	clear(members)
	if obs != nil && cap(obs.pos)+cap(obs.neg) > maxRecycledNative {
		obs = nil
	}
	*ser = series{samples: samples, members: members, obs: obs}
}
