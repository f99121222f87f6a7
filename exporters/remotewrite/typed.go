package remotewrite

import (
	"slices"
	"strconv"
	"time"

	"github.com/bucky3/bucky3/engine"
)

// A remote write receiver stores what it is sent: a counter must arrive as
// the cumulative series Prometheus would scrape, so the encoder keeps the
// running totals of every typed series it sent. Typed values hold one
// interval's change; these totals turn them into cumulative samples.

// family is what a typed series is, as Prometheus types it.
type family uint8

const (
	famCounter family = iota + 1
	famGauge
	famHistogram
	famSummary
)

// totals is one series' running state. A series takes a new family (a
// mapping changed) or new bucket bounds by starting again from zero, which
// rate() reads as a counter reset.
type totals struct {
	fam    family
	value  float64   // counter total, gauge value
	count  uint64    // histogram, summary
	sum    float64   // histogram, summary
	bounds []float64 // classic bounds (shared with the batch, read-only)
	counts []uint64  // per bucket, not cumulative, +Inf last
}

func (t *totals) copyFrom(o *totals) {
	counts := append(t.counts[:0], o.counts...)
	*t = *o
	t.counts = counts
}

// typedSeries is a series' committed totals and, while a request holding
// it is built, the pending ones the request sends: they become committed
// once the request is answered, and are forgotten if it is to be retried,
// so a retried metric adds its change once.
type typedSeries struct {
	committed, pending totals
	dirty              bool
	lastSeen           int64 // Unix ms of the last metric that changed it
	ttl                int64 // ms, 0 = never expires
}

// typedTotals holds the typed series of an encoder.
type typedTotals struct {
	series    map[string]*typedSeries
	dirty     []*typedSeries
	key       []byte    // scratch: the series key
	sorted    []float64 // scratch: a summary's sorted samples
	lastSweep int64
}

// sweepEvery is how often expired series are looked for.
const sweepEvery = int64(time.Minute / time.Millisecond)

// commit makes the pending totals of the request just answered the
// committed ones.
func (tt *typedTotals) commit() {
	for _, s := range tt.dirty {
		s.committed, s.pending = s.pending, s.committed
		s.dirty = false
	}
	clear(tt.dirty)
	tt.dirty = tt.dirty[:0]
}

// discard forgets the pending totals of a request that will be retried.
func (tt *typedTotals) discard() {
	for _, s := range tt.dirty {
		s.dirty = false
	}
	clear(tt.dirty)
	tt.dirty = tt.dirty[:0]
}

// expire drops the series whose metrics asked for a ttl and went idle
// longer than it, at most once a minute.
func (tt *typedTotals) expire(nowMs int64) {
	if nowMs-tt.lastSweep < sweepEvery {
		return
	}
	tt.lastSweep = nowMs
	for k, s := range tt.series {
		if s.ttl > 0 && !s.dirty && nowMs-s.lastSeen > s.ttl {
			delete(tt.series, k)
		}
	}
}

// familyOf returns the family of a typed value, 0 for none; a plain number
// is a gauge only where the typed layout names it after its bucket.
func familyOf(v *engine.Value, typedNumber bool) family {
	switch v.Kind {
	case engine.KindCounter:
		if f, ok := v.Float(); ok && f >= 0 {
			return famCounter
		}
	case engine.KindGaugeDelta:
		if _, ok := v.Float(); ok {
			return famGauge
		}
	case engine.KindNumber:
		if typedNumber && IsSample(*v) {
			return famGauge
		}
	case engine.KindHistogram:
		if v.Dist != nil {
			return famHistogram
		}
	case engine.KindSummary:
		if v.Dist != nil {
			return famSummary
		}
	}
	return 0
}

// isTyped reports whether the encoder keeps totals for v: the typed kinds,
// and plain numbers of a typed-layout metric.
func (e *Encoder) isTyped(m *engine.Metric, v *engine.Value) bool {
	return v.Typed() || e.TypedLayout && typedShape(m) && v.Kind == engine.KindNumber
}

// typedShape reports whether m has the typed layout's shape: one field
// named "value".
func typedShape(m *engine.Metric) bool {
	return len(m.Fields) == 1 && m.Fields[0].Name == "value"
}

// addTyped adds the series of one typed field and reports how many it
// added; 0 when the value has nothing to send (a negative or non-finite
// counter, a non-finite gauge change) or the memory budget refused a new
// series. The labels of m are prepared; nameAt is where __name__ goes.
func (e *Encoder) addTyped(m *engine.Metric, f *engine.Field, nameAt int, ts int64) int {
	fam := familyOf(&f.Value, true)
	if fam == 0 {
		return 0
	}
	tt := &e.typed
	start := len(e.arena)
	e.arena = AppendTypedName(e.arena, m.Bucket, f.Name)
	name := e.arena[start:]

	tt.key = append(tt.key[:0], name...)
	for _, l := range e.labels {
		tt.key = append(tt.key, 0xff)
		tt.key = append(tt.key, e.arena[l.name.start:l.name.end]...)
		tt.key = append(tt.key, 0xfe)
		tt.key = append(tt.key, e.arena[l.value.start:l.value.end]...)
	}
	s := tt.series[string(tt.key)]
	if s == nil {
		if e.Memory.Tight() {
			e.arena = e.arena[:start]
			e.refused++
			return 0
		}
		if tt.series == nil {
			tt.series = make(map[string]*typedSeries)
		}
		s = &typedSeries{}
		tt.series[string(tt.key)] = s
	}
	if !s.dirty {
		s.pending.copyFrom(&s.committed)
		s.dirty = true
		tt.dirty = append(tt.dirty, s)
	}
	s.lastSeen = max(s.lastSeen, ts)
	s.ttl = 0
	if f.Value.Meta != nil {
		s.ttl = f.Value.Meta.TTL.Milliseconds()
	}
	p := &s.pending
	if p.fam != fam {
		p.copyFrom(&totals{fam: fam})
	}

	v := &f.Value
	added := 0
	emit := func(suffix, extraName, extraValue string, x float64) {
		n := len(e.arena)
		e.arena = append(e.arena, name...)
		e.arena = append(e.arena, suffix...)
		e.appendSeries(e.arena[n:], nameAt, extraName, extraValue, x, ts)
		e.arena = e.arena[:n]
		added++
	}
	switch fam {
	case famCounter:
		p.value += v.Num
		emit("", "", "", p.value)
	case famGauge:
		if v.Kind == engine.KindGaugeDelta {
			p.value += v.Num
		} else {
			p.value = v.Num
		}
		emit("", "", "", p.value)
	case famHistogram:
		d := v.Dist
		classic := len(d.Bounds) > 0 && len(d.Counts) == len(d.Bounds)+1
		if classic && !slices.Equal(p.bounds, d.Bounds) {
			p.copyFrom(&totals{fam: fam, bounds: d.Bounds, counts: make([]uint64, len(d.Counts))})
		}
		p.count += d.Count
		p.sum += d.Sum
		if classic {
			var cum uint64
			for i, c := range d.Counts {
				p.counts[i] += c
				cum += p.counts[i]
				le := "+Inf"
				if i < len(d.Bounds) {
					le = strconv.FormatFloat(d.Bounds[i], 'g', -1, 64)
				}
				emit("_bucket", "le", le, float64(cum))
			}
		}
		emit("_sum", "", "", p.sum)
		emit("_count", "", "", float64(p.count))
	case famSummary:
		d := v.Dist
		p.count += d.Count
		p.sum += d.Sum
		if tt.sorted = engine.SortedSamples(tt.sorted, d); len(tt.sorted) > 0 {
			for _, o := range engine.Objectives(v.Meta) {
				emit("", "quantile", strconv.FormatFloat(o.Q, 'g', -1, 64), engine.SampleQuantile(tt.sorted, o.Q))
			}
		}
		emit("_sum", "", "", p.sum)
		emit("_count", "", "", float64(p.count))
	}
	e.arena = e.arena[:start]
	return added
}

// appendSeries writes one series: the prepared labels, __name__ = name
// and the extra label when extraName is not empty (which replaces a tag of
// that name), holding one sample.
func (e *Encoder) appendSeries(name []byte, nameAt int, extraName, extraValue string, v float64, ts int64) {
	series := e.root.AppendMessage(fieldTimeSeries)
	extraDone := extraName == ""
	for j := 0; j <= len(e.labels); j++ {
		if j == nameAt {
			appendLabel(series, nameLabel, name)
		}
		var ln []byte
		if j < len(e.labels) {
			l := &e.labels[j]
			ln = e.arena[l.name.start:l.name.end]
		}
		if !extraDone && (j == len(e.labels) || string(ln) >= extraName) {
			appendLabelString(series, extraName, extraValue)
			extraDone = true
			if string(ln) == extraName {
				continue
			}
		}
		if j < len(e.labels) {
			l := &e.labels[j]
			appendLabel(series, ln, e.arena[l.value.start:l.value.end])
		}
	}
	s := series.AppendMessage(fieldSamples)
	s.AppendDouble(fieldSampleVal, v)
	s.AppendInt64(fieldSampleTime, ts)
	e.samples++
}
