package prometheus

import (
	"bytes"
	"math"
	"strconv"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/encoding/protodelim"

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

// appendProto appends the typed layout in the delimited protobuf format,
// with native histograms (and their classic buckets, when the series has
// them). It returns the version of the store the page shows.
func (s *typedStore) appendProto(dst []byte) ([]byte, uint64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	buf := bytes.NewBuffer(dst)
	for _, n := range s.names {
		fam := s.families[n]
		mf := &dto.MetricFamily{Name: &fam.name, Help: &fam.help, Type: fam.typ.dto()}
		mf.Metric = make([]*dto.Metric, 0, len(fam.order))
		for _, ser := range fam.order {
			mf.Metric = append(mf.Metric, ser.dto(fam.typ))
		}
		// Writing to a bytes.Buffer does not fail, and every field is set.
		_, _ = protodelim.MarshalTo(buf, mf)
	}
	return buf.Bytes(), s.version.Load()
}

func (t famType) dto() *dto.MetricType {
	switch t {
	case famCounter:
		return dto.MetricType_COUNTER.Enum()
	case famGauge:
		return dto.MetricType_GAUGE.Enum()
	case famHistogram:
		return dto.MetricType_HISTOGRAM.Enum()
	}
	return dto.MetricType_SUMMARY.Enum()
}

// dto returns the series as a protobuf metric of family type t.
func (ser *tseries) dto(t famType) *dto.Metric {
	m := &dto.Metric{Label: make([]*dto.LabelPair, len(ser.pairs))}
	for i, p := range ser.pairs {
		m.Label[i] = &dto.LabelPair{Name: new(p.name), Value: new(validLabelValue(p.value))}
	}
	switch t {
	case famCounter:
		m.Counter = &dto.Counter{Value: new(ser.value)}
	case famGauge:
		m.Gauge = &dto.Gauge{Value: new(ser.value)}
	case famSummary:
		sm := ser.summ
		m.Summary = &dto.Summary{SampleCount: new(sm.count), SampleSum: new(sm.sum)}
		for i, o := range sm.objectives {
			m.Summary.Quantile = append(m.Summary.Quantile, &dto.Quantile{Quantile: new(o.Q), Value: new(sm.values[i])})
		}
	case famHistogram:
		m.Histogram = ser.hist.dto()
	}
	return m
}

// dto returns h as a protobuf histogram: the classic buckets cumulative
// without +Inf, and the native buckets as spans and deltas. A native
// histogram with nothing to show gets an empty span, as client_golang
// gives it, so scrapers still see it as native.
func (h *histState) dto() *dto.Histogram {
	out := &dto.Histogram{SampleCount: new(h.count), SampleSum: new(h.sum)}
	var cum uint64
	for i, b := range h.bounds {
		cum += h.counts[i]
		out.Bucket = append(out.Bucket, &dto.Bucket{CumulativeCount: new(cum), UpperBound: new(b)})
	}
	n := h.native
	if n == nil {
		return out
	}
	out.Schema = new(n.schema)
	out.ZeroThreshold = new(n.zeroThreshold)
	out.ZeroCount = new(n.zeroCount)
	out.PositiveSpan, out.PositiveDelta = dtoSpans(n.positive)
	out.NegativeSpan, out.NegativeDelta = dtoSpans(n.negative)
	if n.zeroThreshold == 0 && n.zeroCount == 0 && len(out.PositiveSpan) == 0 && len(out.NegativeSpan) == 0 {
		out.PositiveSpan = []*dto.BucketSpan{{Offset: new(int32(0)), Length: new(uint32(0))}}
	}
	return out
}

func dtoSpans(buckets []engine.NativeBucket) ([]*dto.BucketSpan, []int64) {
	spans, deltas := encodeSpans(buckets)
	if spans == nil {
		return nil, nil
	}
	out := make([]*dto.BucketSpan, len(spans))
	for i, sp := range spans {
		out[i] = &dto.BucketSpan{Offset: new(sp.Offset), Length: new(sp.Length)}
	}
	return out, deltas
}
