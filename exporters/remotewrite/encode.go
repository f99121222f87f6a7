package remotewrite

import (
	"bytes"
	"slices"

	"github.com/VictoriaMetrics/easyproto"
	"github.com/bucky3/bucky3/engine"
)

// Field numbers of the remote write 1.0 messages (prompb/types.proto,
// prompb/remote.proto):
//
//	WriteRequest { repeated TimeSeries timeseries = 1; }
//	TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
//	Label        { string name = 1; string value = 2; }
//	Sample       { double value = 1; int64 timestamp = 2; }
const (
	fieldTimeSeries = 1
	fieldLabels     = 1
	fieldSamples    = 2
	fieldName       = 1
	fieldValue      = 2
	fieldSampleVal  = 1
	fieldSampleTime = 2
)

var nameLabel = []byte("__name__")

// Encoder builds Prometheus remote write 1.0 WriteRequest messages
// (uncompressed protobuf). Each numeric field of a metric becomes one time
// series named <bucket>_<field>, labelled with the metric's tags, holding
// one sample. The zero value is ready to use; once its buffers have grown
// it does not allocate.
//
// Typed values (statsd_server's typed layout) become the cumulative series
// Prometheus would scrape: the encoder keeps each typed series' running
// totals (see addTyped), committed by Commit once the request holding them
// was answered and forgotten by Discard when it is to be retried.
//
// An Encoder is not safe for concurrent use.
type Encoder struct {
	// TypedLayout names a metric whose only field is "value" after its
	// bucket and keeps a plain number there as a gauge (the one a gauge
	// delta adds to), as statsd_server's typed layout means it.
	TypedLayout bool
	// Memory refuses new typed series while it is tight; nil never does.
	Memory *engine.Memory

	typed   typedTotals
	refused int // typed fields refused by Memory since Reset

	m       easyproto.Marshaler
	root    *easyproto.MessageMarshaler
	samples int

	// arena holds the sanitised label names and values of the metric
	// being added, and its series name; labels index into it.
	arena  []byte
	labels []label
}

type label struct{ name, value span }

type span struct{ start, end int }

// Reset starts a new, empty WriteRequest. Typed totals the previous
// request left pending are forgotten, as by Discard.
func (e *Encoder) Reset() {
	e.m.Reset()
	e.root = nil
	e.samples = 0
	e.refused = 0
	e.typed.discard()
}

// Commit keeps the typed totals of the request built since Reset: it was
// answered (accepted or refused for good), so its changes count.
func (e *Encoder) Commit() { e.typed.commit() }

// Discard forgets the typed totals of the request built since Reset: it
// is to be retried, and the retry adds its changes again.
func (e *Encoder) Discard() { e.typed.discard() }

// Expire drops the typed series whose metrics set a ttl and that were not
// seen for longer than it; it looks at most once a minute.
func (e *Encoder) Expire(nowMs int64) { e.typed.expire(nowMs) }

// TypedSeries returns how many typed series the encoder keeps totals for.
func (e *Encoder) TypedSeries() int { return len(e.typed.series) }

// Refused returns how many typed fields the memory budget refused since
// Reset, for want of room for their new series.
func (e *Encoder) Refused() int { return e.refused }

// Samples returns the number of samples added since Reset.
func (e *Encoder) Samples() int { return e.samples }

// Add adds one series per finite numeric field of m, from m.Fields[first]
// on, while the request holds fewer than limit samples. It returns the
// index of the first field not looked at (len(m.Fields) when it reached
// the end) and the number of series it added. Strings, booleans, null and
// non-finite numbers are skipped, as prometheus_exporter skips them (a NaN
// too close to Prometheus' staleness marker would end a series). The sample's timestamp is
// m's, or nowMs when m has none.
//
// Labels are the tags with a non-empty value, sanitised (AppendLabelName,
// AppendLabelValue), sorted by name, with __name__ among them; of tags
// whose keys sanitise to the same name only the first is kept.
func (e *Encoder) Add(m *engine.Metric, nowMs int64, first, limit int) (next, added int) {
	if e.root == nil {
		e.root = e.m.MessageMarshaler()
	}
	ts := m.Timestamp
	if ts == 0 {
		ts = nowMs
	}
	nameAt := e.prepareLabels(m.Tags)
	for i := first; i < len(m.Fields); i++ {
		if e.samples >= limit {
			return i, added
		}
		f := &m.Fields[i]
		if e.isTyped(m, &f.Value) {
			// A typed field's series go whole into one request.
			added += e.addTyped(m, f, nameAt, ts)
			continue
		}
		if !IsSample(f.Value) {
			continue
		}
		start := len(e.arena)
		e.arena = AppendMetricName(e.arena, m.Bucket, f.Name)
		series := e.root.AppendMessage(fieldTimeSeries)
		for j := range e.labels {
			if j == nameAt {
				appendLabel(series, nameLabel, e.arena[start:])
			}
			l := &e.labels[j]
			appendLabel(series, e.arena[l.name.start:l.name.end], e.arena[l.value.start:l.value.end])
		}
		if nameAt == len(e.labels) {
			appendLabel(series, nameLabel, e.arena[start:])
		}
		s := series.AppendMessage(fieldSamples)
		s.AppendDouble(fieldSampleVal, f.Value.Num)
		s.AppendInt64(fieldSampleTime, ts)
		e.arena = e.arena[:start]
		e.samples++
		added++
	}
	return len(m.Fields), added
}

func appendLabel(series *easyproto.MessageMarshaler, name, value []byte) {
	l := series.AppendMessage(fieldLabels)
	l.AppendBytes(fieldName, name)
	l.AppendBytes(fieldValue, value)
}

func appendLabelString(series *easyproto.MessageMarshaler, name, value string) {
	l := series.AppendMessage(fieldLabels)
	l.AppendString(fieldName, name)
	l.AppendString(fieldValue, value)
}

// prepareLabels fills e.labels and e.arena from tags and returns the index
// before which __name__ goes.
func (e *Encoder) prepareLabels(tags []engine.Tag) int {
	e.arena, e.labels = e.arena[:0], e.labels[:0]
	for _, t := range tags {
		if t.Value == "" {
			continue // an empty label value means no label in Prometheus
		}
		var l label
		l.name.start = len(e.arena)
		e.arena = AppendLabelName(e.arena, t.Key)
		l.name.end = len(e.arena)
		l.value.start = l.name.end
		e.arena = AppendLabelValue(e.arena, t.Value)
		l.value.end = len(e.arena)
		e.labels = append(e.labels, l)
	}
	// Tags are sorted by key already; sanitising can reorder them (only
	// when a key has a byte that becomes '_'), and a stable sort keeps the
	// first of equal names first.
	slices.SortStableFunc(e.labels, e.compareNames)
	e.labels = slices.CompactFunc(e.labels, func(a, b label) bool { return e.compareNames(a, b) == 0 })
	nameAt := len(e.labels)
	for j, l := range e.labels {
		if bytes.Compare(e.arena[l.name.start:l.name.end], nameLabel) > 0 {
			nameAt = j
			break
		}
	}
	return nameAt
}

func (e *Encoder) compareNames(a, b label) int {
	return bytes.Compare(e.arena[a.name.start:a.name.end], e.arena[b.name.start:b.name.end])
}

// AppendRequest appends the WriteRequest built since Reset, as protobuf,
// to dst. It does not allocate when dst has room.
func (e *Encoder) AppendRequest(dst []byte) []byte {
	if e.root == nil {
		return dst
	}
	return e.m.Marshal(dst)
}
