package prometheus

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/proto"

	"github.com/bucky3/bucky3/engine"
)

// The reference encoding: the typed store as client_model's generated
// types, which appendProto must decode to.

func (s *typedStore) dtoFamilies() []*dto.MetricFamily {
	var out []*dto.MetricFamily
	for _, n := range s.names {
		fam := s.families[n]
		typ := map[famType]dto.MetricType{famCounter: dto.MetricType_COUNTER, famGauge: dto.MetricType_GAUGE,
			famHistogram: dto.MetricType_HISTOGRAM, famSummary: dto.MetricType_SUMMARY}[fam.typ]
		mf := &dto.MetricFamily{Name: new(fam.name), Help: new(fam.help), Type: &typ}
		for _, ser := range fam.order {
			mf.Metric = append(mf.Metric, ser.dto(fam.typ))
		}
		out = append(out, mf)
	}
	return out
}

func (ser *tseries) dto(t famType) *dto.Metric {
	m := &dto.Metric{}
	for _, p := range ser.pairs {
		m.Label = append(m.Label, &dto.LabelPair{Name: new(p.name), Value: new(validLabelValue(p.value))})
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
	out.Schema, out.ZeroThreshold, out.ZeroCount = new(n.schema), new(n.zeroThreshold), new(n.zeroCount)
	out.PositiveSpan, out.PositiveDelta = dtoSpans(n.positive)
	out.NegativeSpan, out.NegativeDelta = dtoSpans(n.negative)
	if n.zeroThreshold == 0 && n.zeroCount == 0 && len(out.PositiveSpan) == 0 && len(out.NegativeSpan) == 0 {
		out.PositiveSpan = []*dto.BucketSpan{{Offset: new(int32(0)), Length: new(uint32(0))}}
	}
	return out
}

// dtoSpans is client_golang's makeBuckets over a sorted bucket list.
func dtoSpans(buckets []engine.NativeBucket) ([]*dto.BucketSpan, []int64) {
	var (
		spans  []*dto.BucketSpan
		deltas []int64
		prev   int64
		next   int32
	)
	appendDelta := func(c int64) {
		*spans[len(spans)-1].Length++
		deltas = append(deltas, c-prev)
		prev = c
	}
	for n, b := range buckets {
		gap := b.Index - next
		if n == 0 || gap > 2 {
			spans = append(spans, &dto.BucketSpan{Offset: new(gap), Length: new(uint32(0))})
		} else {
			for range gap {
				appendDelta(0)
			}
		}
		appendDelta(int64(b.Count))
		next = b.Index + 1
	}
	return spans, deltas
}

func decodeProto(t testing.TB, b []byte) []*dto.MetricFamily {
	t.Helper()
	var out []*dto.MetricFamily
	r := bytes.NewReader(b)
	for {
		mf := &dto.MetricFamily{}
		err := protodelim.UnmarshalFrom(r, mf)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		out = append(out, mf)
	}
}

// TestTypedProtoMatchesClientModel checks the hand-written encoding
// against client_model's generated one on every kind of family and on
// native histograms with gaps, negative buckets and reductions.
func TestTypedProtoMatchesClientModel(t *testing.T) {
	s, _ := typedStoreAt(t, 0)
	for _, b := range typedBatches() {
		ingestAt(s, 0, b...)
	}
	r := rand.New(rand.NewPCG(5, 6))
	meta := &engine.TypeMeta{NativeMaxBuckets: 30}
	for i := range 500 {
		v := (r.Float64() - 0.3) * float64(i)
		val := histogram([]float64{-1, 0, 1}, schemaOf(int32(i%4)), v, -v/2, 0)
		val.Meta = meta
		ingestAt(s, 0, typedMetric("mixed", []engine.Tag{{Key: "k", Value: "\xff"}}, val))
	}
	ingestAt(s, 0, typedMetric("empty_native", nil, histogram(nil, schemaOf(2))))
	b, _ := s.appendProto(nil)
	got, want := decodeProto(t, b), s.dtoFamilies()
	if len(got) != len(want) {
		t.Fatalf("%d families, want %d", len(got), len(want))
	}
	for i := range want {
		if !proto.Equal(got[i], want[i]) {
			t.Errorf("family %s:\n got %v\nwant %v", want[i].GetName(), got[i], want[i])
		}
	}
}
