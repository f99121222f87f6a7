package prometheus

import (
	"math"
	"strconv"

	"github.com/VictoriaMetrics/easyproto"

	"github.com/bucky3/bucky3/engine"
)

// appendText appends the typed layout in the text format 0.0.4, as
// client_golang's expfmt writes it: families by name, series by labels,
// a histogram's buckets then _sum and _count per series. Native
// histograms have no text form: their classic buckets are written, and
// only the +Inf bucket when they have none. It returns the version of the
// store the page shows.
func (s *typedStore) appendText(dst []byte) ([]byte, uint64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, n := range s.names {
		fam := s.families[n]
		dst = append(dst, "# HELP "...)
		dst = append(dst, n...)
		dst = append(dst, ' ')
		dst = appendHelp(dst, fam.help)
		dst = append(dst, "\n# TYPE "...)
		dst = append(dst, n...)
		dst = append(dst, ' ')
		dst = append(dst, fam.typ.String()...)
		dst = append(dst, '\n')
		for _, ser := range fam.order {
			switch fam.typ {
			case famCounter, famGauge:
				dst = appendTypedSample(dst, n, "", ser.labels, "", 0, ser.value)
			case famHistogram:
				h := ser.hist
				var cum uint64
				for i, b := range h.bounds {
					cum += h.counts[i]
					dst = appendTypedSample(dst, n, "_bucket", ser.labels, "le", b, float64(cum))
				}
				dst = appendTypedSample(dst, n, "_bucket", ser.labels, "le", math.Inf(1), float64(h.count))
				dst = appendTypedSample(dst, n, "_sum", ser.labels, "", 0, h.sum)
				dst = appendTypedSample(dst, n, "_count", ser.labels, "", 0, float64(h.count))
			case famSummary:
				sm := ser.summ
				for i, o := range sm.objectives {
					dst = appendTypedSample(dst, n, "", ser.labels, "quantile", o.Q, sm.values[i])
				}
				dst = appendTypedSample(dst, n, "_sum", ser.labels, "", 0, sm.sum)
				dst = appendTypedSample(dst, n, "_count", ser.labels, "", 0, float64(sm.count))
			}
		}
	}
	return dst, s.version.Load()
}

// appendHelp appends help escaped for a HELP line: backslash and newline.
func appendHelp(dst []byte, help string) []byte {
	for i := 0; i < len(help); i++ {
		switch c := help[i]; c {
		case '\\':
			dst = append(dst, `\\`...)
		case '\n':
			dst = append(dst, `\n`...)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// appendTypedSample appends one line: name+suffix, the labels and, when
// extra is set, extra="bound" last, then the value.
func appendTypedSample(dst []byte, name, suffix, labels, extra string, bound, v float64) []byte {
	dst = append(dst, name...)
	dst = append(dst, suffix...)
	if labels != "" || extra != "" {
		dst = append(dst, '{')
		dst = append(dst, labels...)
		if extra != "" {
			if labels != "" {
				dst = append(dst, ',')
			}
			dst = append(dst, extra...)
			dst = append(dst, '=', '"')
			dst = appendFloat(dst, bound)
			dst = append(dst, '"')
		}
		dst = append(dst, '}')
	}
	dst = append(dst, ' ')
	dst = appendFloat(dst, v)
	return append(dst, '\n')
}

// appendFloat spells f as expfmt does.
func appendFloat(dst []byte, f float64) []byte {
	switch {
	case math.IsInf(f, 1):
		return append(dst, "+Inf"...)
	case math.IsInf(f, -1):
		return append(dst, "-Inf"...)
	case math.IsNaN(f):
		return append(dst, "NaN"...)
	}
	return strconv.AppendFloat(dst, f, 'g', -1, 64)
}

// protoScratch is what one protobuf rendering reuses.
type protoScratch struct {
	m      easyproto.Marshaler
	spans  []nativeSpan
	deltas []int64
}

// Field numbers of io.prometheus.client's metrics.proto.
const (
	pfFamilyName, pfFamilyHelp, pfFamilyType, pfFamilyMetric = 1, 2, 3, 4

	pfMetricLabel, pfMetricGauge, pfMetricCounter, pfMetricSummary, pfMetricHistogram = 1, 2, 3, 4, 7
	pfLabelName, pfLabelValue                                                         = 1, 2
	pfValue                                                                           = 1 // of Gauge and Counter

	pfSummaryCount, pfSummarySum, pfSummaryQuantile = 1, 2, 3
	pfQuantileQ, pfQuantileValue                    = 1, 2

	pfHistCount, pfHistSum, pfHistBucket                         = 1, 2, 3
	pfHistSchema, pfHistZeroThreshold, pfHistZeroCount           = 5, 6, 7
	pfHistNegSpan, pfHistNegDelta, pfHistPosSpan, pfHistPosDelta = 9, 10, 12, 13
	pfBucketCount, pfBucketBound                                 = 1, 2
	pfSpanOffset, pfSpanLength                                   = 1, 2
)

// metricTypes are the MetricType enum values of the family types.
var metricTypes = [...]int32{famCounter: 0, famGauge: 1, famSummary: 2, famHistogram: 4}

// appendProto appends the typed layout in the delimited protobuf format,
// with native histograms (and their classic buckets, when the series has
// them). It returns the version of the store the page shows.
func (s *typedStore) appendProto(dst []byte) ([]byte, uint64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ps, _ := s.protoScratch.Get().(*protoScratch)
	if ps == nil {
		ps = new(protoScratch)
	}
	defer s.protoScratch.Put(ps)
	for _, n := range s.names {
		fam := s.families[n]
		ps.m.Reset()
		mf := ps.m.MessageMarshaler()
		mf.AppendString(pfFamilyName, fam.name)
		mf.AppendString(pfFamilyHelp, fam.help)
		mf.AppendInt32(pfFamilyType, metricTypes[fam.typ])
		for _, ser := range fam.order {
			ps.appendSeries(mf.AppendMessage(pfFamilyMetric), fam.typ, ser)
		}
		dst = ps.m.MarshalWithLen(dst)
	}
	return dst, s.version.Load()
}

// appendSeries writes ser as a Metric of family type t.
func (ps *protoScratch) appendSeries(m *easyproto.MessageMarshaler, t famType, ser *tseries) {
	for _, p := range ser.pairs {
		l := m.AppendMessage(pfMetricLabel)
		l.AppendString(pfLabelName, p.name)
		l.AppendString(pfLabelValue, validLabelValue(p.value))
	}
	switch t {
	case famCounter:
		m.AppendMessage(pfMetricCounter).AppendDouble(pfValue, ser.value)
	case famGauge:
		m.AppendMessage(pfMetricGauge).AppendDouble(pfValue, ser.value)
	case famSummary:
		sm := ser.summ
		sp := m.AppendMessage(pfMetricSummary)
		sp.AppendUint64(pfSummaryCount, sm.count)
		sp.AppendDouble(pfSummarySum, sm.sum)
		for i, o := range sm.objectives {
			q := sp.AppendMessage(pfSummaryQuantile)
			q.AppendDouble(pfQuantileQ, o.Q)
			q.AppendDouble(pfQuantileValue, sm.values[i])
		}
	case famHistogram:
		ps.appendHistogram(m.AppendMessage(pfMetricHistogram), ser.hist)
	}
}

// appendHistogram writes h: the classic buckets cumulative without +Inf,
// and the native buckets as spans and deltas. A native histogram with
// nothing to show gets an empty span, as client_golang gives it, so
// scrapers still see it as native.
func (ps *protoScratch) appendHistogram(hp *easyproto.MessageMarshaler, h *histState) {
	hp.AppendUint64(pfHistCount, h.count)
	hp.AppendDouble(pfHistSum, h.sum)
	var cum uint64
	for i, b := range h.bounds {
		cum += h.counts[i]
		bp := hp.AppendMessage(pfHistBucket)
		bp.AppendUint64(pfBucketCount, cum)
		bp.AppendDouble(pfBucketBound, b)
	}
	n := h.native
	if n == nil {
		return
	}
	hp.AppendSint32(pfHistSchema, n.schema)
	hp.AppendDouble(pfHistZeroThreshold, n.zeroThreshold)
	hp.AppendUint64(pfHistZeroCount, n.zeroCount)
	ps.appendBuckets(hp, pfHistNegSpan, pfHistNegDelta, n.negative)
	ps.appendBuckets(hp, pfHistPosSpan, pfHistPosDelta, n.positive)
	if n.zeroThreshold == 0 && n.zeroCount == 0 && len(n.positive) == 0 && len(n.negative) == 0 {
		sp := hp.AppendMessage(pfHistPosSpan)
		sp.AppendSint32(pfSpanOffset, 0)
		sp.AppendUint32(pfSpanLength, 0)
	}
}

// appendBuckets writes buckets as spans and deltas, the deltas unpacked as
// proto2 declares them.
func (ps *protoScratch) appendBuckets(hp *easyproto.MessageMarshaler, spanField, deltaField uint32, buckets []engine.NativeBucket) {
	ps.spans, ps.deltas = appendSpans(ps.spans[:0], ps.deltas[:0], buckets)
	for _, sp := range ps.spans {
		m := hp.AppendMessage(spanField)
		m.AppendSint32(pfSpanOffset, sp.Offset)
		m.AppendUint32(pfSpanLength, sp.Length)
	}
	for _, d := range ps.deltas {
		hp.AppendSint64(deltaField, d)
	}
}
