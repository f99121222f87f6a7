package aggregate

import (
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/bucky3/bucky3/engine"
)

// Flush ends the interval: it returns the metrics of every series added
// since the previous Flush (or New), as SPEC §4 defines them, and forgets
// those series. now is the flush time: the interval is the time since the
// previous Flush's now, and series that carried no timestamp are stamped
// with it when AddTimestamps is set.
//
// Flush may run concurrently with Writers, which are blocked only while
// it swaps each stripe's state; calls to Flush are serialised. The
// metrics, their tags and fields are new and owned by the caller; each
// metric has its own tags and fields slices, so modifying one never
// affects another.
func (t *Table) Flush(now time.Time) []engine.Metric {
	t.flushMu.Lock()
	defer t.flushMu.Unlock()
	f := flusher{t: t}
	// A zero interval (two flushes within one clock tick) would make
	// every rate infinite.
	f.interval = max(now.Sub(t.last), time.Millisecond).Seconds()
	t.last = now
	if t.o.AddTimestamps {
		f.now = now.UnixMilli()
	}

	total := 0
	for i := range t.stripes {
		st := &t.stripes[i]
		st.mu.Lock()
		st.index, st.spareIndex = st.spareIndex, st.index
		st.series, st.spareSeries = st.spareSeries, st.series
		st.gen++
		st.mu.Unlock()
		t.live.Add(-int64(st.spareSeries.len()))
		total += st.spareSeries.len()
	}

	f.metrics = make([]engine.Metric, 0, total+t.timerMetrics())
	done := 0
	for i := range t.stripes {
		st := &t.stripes[i]
		for j := range int32(st.spareSeries.len()) {
			// On one CPU a long flush would starve the socket readers and
			// the kernel drop datagrams: let waiting readers go first.
			if done++; done%flushYieldEvery == 0 {
				runtime.Gosched()
			}
			ser := st.spareSeries.at(j)
			f.series(ser)
			ser.recycle()
		}
		clear(st.spareIndex)
		st.spareSeries.reset()
	}
	return f.metrics
}

// timerMetrics returns how many metrics the timers of the swapped-out
// series emit beyond one each, at most, so that the batch is allocated
// once instead of copied as it grows. Only a table whose timers emit
// several needs the pass over the series.
func (t *Table) timerMetrics() int {
	most := len(t.thresholds) - 1
	for _, r := range t.rules {
		most = max(most, len(t.thresholds)+len(r.bins)-1)
	}
	if most <= 0 {
		return 0
	}
	n := 0
	for i := range t.stripes {
		st := &t.stripes[i]
		for j := range int32(st.spareSeries.len()) {
			if ser := st.spareSeries.at(j); ser.kind == kindTimer && ser.typ == nil {
				n += len(t.thresholds) - 1
				if ser.rule != nil {
					n += len(ser.rule.bins)
				}
			}
		}
	}
	return max(n, 0)
}

// flushYieldEvery is how many series Flush summarises between yields:
// a stripe's share of 10k series over 256 stripes (bench/RESULTS.md,
// Round 7 and "Design notes").
const flushYieldEvery = 64

// flushYieldSamples is about how many timer samples Flush handles
// between yields within series, so that one huge timer is no longer a
// stall than 64 small series.
const flushYieldSamples = 1 << 14

// did counts n samples of a timer's work, and yields after every
// flushYieldSamples.
func (f *flusher) did(n int) {
	if f.work += n; f.work >= flushYieldSamples {
		f.work = 0
		f.yields++
		runtime.Gosched()
	}
}

// flusher builds the metrics of one Flush.
type flusher struct {
	t        *Table
	interval float64 // seconds
	now      int64   // timestamp of series without one
	metrics  []engine.Metric
	tags     arena[engine.Tag]
	fields   arena[engine.Field]
	// The distributions of a typed table's timers and their slices.
	dists   arena[engine.Distribution]
	natives arena[engine.NativeBuckets]
	buckets arena[engine.NativeBucket]
	counts  arena[uint64]
	floats  arena[float64]

	// The current series: its timestamp, bucket tag ("" for none), and
	// tags with name set and bucket removed, sorted.
	ts     int64
	bucket string
	base   []engine.Tag
	raw    []engine.Tag // scratch: the key's tags without bucket

	// Scratch of timers: each threshold's upper, each bin's summary.
	uppers  []float64
	targets []int
	binSums []binSum
	work    int // samples handled since the last yield
	yields  int // yields within series, for tests
}

// series emits the metrics of ser.
func (f *flusher) series(ser *series) {
	f.ts = ser.ts
	if f.ts == 0 {
		f.ts = f.now
	}
	if ser.typ != nil {
		f.typed(ser)
		return
	}
	// The key's tags are sorted: name goes in at its place, replacing a
	// tag of that key, in the one pass that views them. Tags alias the
	// key, which is never copied.
	f.bucket = ""
	f.base = f.base[:0]
	named := false
	name, rest := cutField(ser.key[1:])
	for rest != "" {
		var key, value string
		key, rest = cutField(rest)
		value, rest = cutField(rest)
		if key == "bucket" {
			f.bucket = value
			continue
		}
		if !named && key >= "name" {
			f.base, named = append(f.base, engine.Tag{Key: "name", Value: name}), true
			if key == "name" {
				continue
			}
		}
		f.base = append(f.base, engine.Tag{Key: key, Value: value})
	}
	if !named {
		f.base = append(f.base, engine.Tag{Key: "name", Value: name})
	}

	switch ser.kind {
	case kindCounter:
		f.counter(ser)
	case kindGauge:
		f.gauge(ser)
	case kindTimer:
		f.timer(ser)
	case kindSet:
		f.set(ser)
	}
}

// emit appends a metric of the current series with fields fs, in the
// series' bucket tag or else in bucket. A non-empty key adds the tag
// key=value, overriding a series tag of the same key.
func (f *flusher) emit(bucket, key, value string, fs []engine.Field) {
	if f.bucket != "" {
		bucket = f.bucket
	}
	var tags []engine.Tag
	if key == "" {
		tags = append(f.tags.carve(len(f.base))[:0], f.base...)
	} else {
		tags = insertTag(f.tags.carve(len(f.base) + 1)[:0], f.base, key, value)
	}
	f.metrics = append(f.metrics, engine.Metric{Bucket: bucket, Fields: fs, Timestamp: f.ts, Tags: tags})
}

// insertTag appends the sorted tags src to dst with key=value inserted in
// order, replacing a tag of src with the same key.
func insertTag(dst, src []engine.Tag, key, value string) []engine.Tag {
	i, found := slices.BinarySearchFunc(src, key, func(t engine.Tag, key string) int { return strings.Compare(t.Key, key) })
	dst = append(dst, src[:i]...)
	dst = append(dst, engine.Tag{Key: key, Value: value})
	if found {
		i++
	}
	return append(dst, src[i:]...)
}

// arena hands out slices carved from shared chunks, so that one
// allocation serves many metrics. Chunks grow from small to arenaChunk
// elements, so small flushes do not over-allocate.
type arena[T any] struct {
	free []T
	size int
}

const arenaChunk = 4096

// carve returns n elements. The result's capacity is n, so appending to
// it never writes into another metric's elements.
func (a *arena[T]) carve(n int) []T {
	if len(a.free) < n {
		a.size = min(max(2*a.size, 16), arenaChunk)
		a.free = make([]T, max(n, a.size))
	}
	s := a.free[:n:n]
	a.free = a.free[n:]
	return s
}
