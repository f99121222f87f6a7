package otlp

import (
	"slices"

	"github.com/VictoriaMetrics/easyproto"
	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/exporters/remotewrite"
)

// Field numbers of the OTLP messages used (opentelemetry/proto/collector/
// metrics/v1/metrics_service.proto, metrics/v1/metrics.proto,
// resource/v1/resource.proto, common/v1/common.proto, OTLP 1.x).
const (
	requestResourceMetrics = 1 // ExportMetricsServiceRequest.resource_metrics

	resourceMetricsResource = 1 // ResourceMetrics.resource
	resourceMetricsScope    = 2 // ResourceMetrics.scope_metrics
	resourceAttributes      = 1 // Resource.attributes

	scopeMetricsScope   = 1 // ScopeMetrics.scope
	scopeMetricsMetrics = 2 // ScopeMetrics.metrics
	scopeName           = 1 // InstrumentationScope.name

	metricName      = 1  // Metric.name
	metricGauge     = 5  // Metric.gauge
	metricSum       = 7  // Metric.sum
	metricHistogram = 9  // Metric.histogram
	metricExpHist   = 10 // Metric.exponential_histogram
	metricSummary   = 11 // Metric.summary

	dataPoints        = 1 // Gauge.data_points, Sum.data_points
	sumTemporality    = 2 // Sum.aggregation_temporality
	sumMonotonic      = 3 // Sum.is_monotonic
	temporalityDelta  = 1 // AggregationTemporality DELTA
	pointTimeUnixNano = 3 // NumberDataPoint.time_unix_nano (fixed64)
	pointAsDouble     = 4 // NumberDataPoint.as_double
	pointAttributes   = 7 // NumberDataPoint.attributes
	keyValueKey       = 1 // KeyValue.key
	keyValueValue     = 2 // KeyValue.value
	anyValueString    = 1 // AnyValue.string_value

	// HistogramDataPoint
	histTimeUnixNano = 3  // time_unix_nano (fixed64)
	histCount        = 4  // count (fixed64)
	histSum          = 5  // sum (double)
	histBucketCounts = 6  // bucket_counts (packed fixed64)
	histBounds       = 7  // explicit_bounds (packed double)
	histAttributes   = 9  // attributes
	histTemporality  = 2  // Histogram/ExponentialHistogram.aggregation_temporality
	expAttributes    = 1  // ExponentialHistogramDataPoint.attributes
	expTimeUnixNano  = 3  // time_unix_nano (fixed64)
	expCount         = 4  // count (fixed64)
	expSum           = 5  // sum (double)
	expScale         = 6  // scale (sint32)
	expZeroCount     = 7  // zero_count (fixed64)
	expPositive      = 8  // positive (Buckets)
	expNegative      = 9  // negative (Buckets)
	expZeroThreshold = 14 // zero_threshold (double)
	bucketsOffset    = 1  // Buckets.offset (sint32)
	bucketsCounts    = 2  // Buckets.bucket_counts (packed uint64)
	sumTimeUnixNano  = 3  // SummaryDataPoint.time_unix_nano (fixed64)
	sumCount         = 4  // SummaryDataPoint.count (fixed64)
	sumSum           = 5  // SummaryDataPoint.sum (double)
	sumQuantiles     = 6  // SummaryDataPoint.quantile_values
	sumAttributes    = 7  // SummaryDataPoint.attributes
	quantileQ        = 1  // ValueAtQuantile.quantile
	quantileValue    = 2  // ValueAtQuantile.value

	partialSuccess        = 1 // ExportMetricsServiceResponse.partial_success
	partialRejectedPoints = 1 // ExportMetricsPartialSuccess.rejected_data_points
	partialErrorMessage   = 2 // ExportMetricsPartialSuccess.error_message
)

// ScopeName is the name of the instrumentation scope of every metric.
const ScopeName = "bucky3"

// CounterField is the field of a counter bucket sent as a delta sum.
const CounterField = "count"

// Encoder builds OTLP ExportMetricsServiceRequest messages (uncompressed
// protobuf). Each finite numeric field of a metric becomes one Metric
// named <bucket>_<field> with one data point: a delta, monotonic Sum for
// the count field of a counter bucket, a Gauge otherwise. The tags named
// as resource attributes describe the resource; the other tags are the
// data point's attributes. Consecutive metrics with the same resource
// share one ResourceMetrics. A typed value (statsd_server's typed layout)
// becomes one Metric named after the bucket with the OTLP type that keeps
// its meaning (see addTyped).
//
// Once its buffers have grown it does not allocate. An Encoder is not
// safe for concurrent use.
type Encoder struct {
	// TypedLayout names a metric whose only field is "value" after its
	// bucket, as statsd_server's typed layout means it: its absolute
	// gauges share the name of its gauge deltas.
	TypedLayout bool

	resourceKeys   []string // sorted
	counterBuckets []string

	m      easyproto.Marshaler
	root   *easyproto.MessageMarshaler
	scope  *easyproto.MessageMarshaler // ScopeMetrics of the open ResourceMetrics
	res    []string                    // its resource values, "" for absent
	points int
	arena  []byte

	// scratch for typed histograms and summaries
	counts []uint64
	sorted []float64
}

// NewEncoder returns an encoder that lifts the tags named in
// resourceKeys into the resource and sends the count field of the buckets
// in counterBuckets as delta sums.
func NewEncoder(resourceKeys, counterBuckets []string) *Encoder {
	keys := slices.Clone(resourceKeys)
	slices.Sort(keys)
	return &Encoder{resourceKeys: slices.Compact(keys), counterBuckets: counterBuckets}
}

// Reset starts a new, empty request.
func (e *Encoder) Reset() {
	e.m.Reset()
	e.root, e.scope = nil, nil
	e.points = 0
}

// Points returns the number of data points added since Reset.
func (e *Encoder) Points() int { return e.points }

// Add adds a metric per finite numeric field of m and returns how many it
// added. Strings, booleans, null and non-finite numbers are skipped. The
// data point's time is m's timestamp, or nowNs (Unix nanoseconds) when m
// has none (or one before 1970, which OTLP cannot carry).
func (e *Encoder) Add(m *engine.Metric, nowNs uint64) (added int) {
	ts := nowNs
	if m.Timestamp > 0 {
		ts = uint64(m.Timestamp) * 1e6
	}
	counter := slices.Contains(e.counterBuckets, m.Bucket)
	for i := range m.Fields {
		f := &m.Fields[i]
		if !IsPoint(f.Value) {
			continue
		}
		if e.scope == nil || !e.sameResource(m.Tags) {
			e.openResource(m.Tags)
		}
		metric := e.scope.AppendMessage(scopeMetricsMetrics)
		if f.Value.Typed() {
			e.arena = remotewrite.AppendTypedName(e.arena[:0], m.Bucket, f.Name)
			metric.AppendBytes(metricName, e.arena)
			e.addTyped(metric, m.Tags, ts, f.Value)
			e.points++
			added++
			continue
		}
		if e.TypedLayout && len(m.Fields) == 1 {
			e.arena = remotewrite.AppendTypedName(e.arena[:0], m.Bucket, f.Name)
		} else {
			e.arena = remotewrite.AppendMetricName(e.arena[:0], m.Bucket, f.Name)
		}
		metric.AppendBytes(metricName, e.arena)
		var point *easyproto.MessageMarshaler
		if counter && f.Name == CounterField {
			sum := metric.AppendMessage(metricSum)
			point = sum.AppendMessage(dataPoints)
			e.appendPoint(point, m.Tags, ts, f.Value.Num)
			sum.AppendInt32(sumTemporality, temporalityDelta)
			sum.AppendBool(sumMonotonic, true)
		} else {
			point = metric.AppendMessage(metricGauge).AppendMessage(dataPoints)
			e.appendPoint(point, m.Tags, ts, f.Value.Num)
		}
		e.points++
		added++
	}
	return added
}

// IsPoint reports whether v becomes a data point: a finite number, typed
// gauge delta or non-negative typed counter increase (a monotonic sum
// cannot go down), or a typed histogram or summary.
func IsPoint(v engine.Value) bool {
	switch v.Kind {
	case engine.KindHistogram, engine.KindSummary:
		return v.Dist != nil
	case engine.KindCounter:
		f, ok := v.Float()
		return ok && f >= 0
	case engine.KindGaugeDelta:
		_, ok := v.Float()
		return ok
	}
	return remotewrite.IsSample(v)
}

// addTyped writes the data of a typed value into metric: a counter as a
// delta monotonic Sum, a gauge delta as a delta non-monotonic Sum (an
// up-down counter's change), a histogram as a delta ExponentialHistogram
// when it has native buckets and a delta Histogram otherwise, a summary as
// a Summary whose quantiles are estimated from the interval's samples.
func (e *Encoder) addTyped(metric *easyproto.MessageMarshaler, tags []engine.Tag, ts uint64, v engine.Value) {
	switch v.Kind {
	case engine.KindCounter, engine.KindGaugeDelta:
		sum := metric.AppendMessage(metricSum)
		e.appendPoint(sum.AppendMessage(dataPoints), tags, ts, v.Num)
		sum.AppendInt32(sumTemporality, temporalityDelta)
		sum.AppendBool(sumMonotonic, v.Kind == engine.KindCounter)
	case engine.KindHistogram:
		d := v.Dist
		if d.Native != nil {
			h := metric.AppendMessage(metricExpHist)
			h.AppendInt32(histTemporality, temporalityDelta)
			p := h.AppendMessage(dataPoints)
			p.AppendFixed64(expTimeUnixNano, ts)
			p.AppendFixed64(expCount, d.Count)
			p.AppendDouble(expSum, d.Sum)
			p.AppendSint32(expScale, d.Native.Schema)
			p.AppendFixed64(expZeroCount, d.Native.ZeroCount)
			p.AppendDouble(expZeroThreshold, d.Native.ZeroThreshold)
			e.appendBuckets(p, expPositive, d.Native.Positive)
			e.appendBuckets(p, expNegative, d.Native.Negative)
			e.appendAttributes(p, expAttributes, tags)
			return
		}
		h := metric.AppendMessage(metricHistogram)
		h.AppendInt32(histTemporality, temporalityDelta)
		p := h.AppendMessage(dataPoints)
		p.AppendFixed64(histTimeUnixNano, ts)
		p.AppendFixed64(histCount, d.Count)
		p.AppendDouble(histSum, d.Sum)
		if len(d.Counts) == len(d.Bounds)+1 {
			p.AppendFixed64s(histBucketCounts, d.Counts)
			p.AppendDoubles(histBounds, d.Bounds)
		}
		e.appendAttributes(p, histAttributes, tags)
	case engine.KindSummary:
		d := v.Dist
		p := metric.AppendMessage(metricSummary).AppendMessage(dataPoints)
		p.AppendFixed64(sumTimeUnixNano, ts)
		p.AppendFixed64(sumCount, d.Count)
		p.AppendDouble(sumSum, d.Sum)
		if e.sorted = engine.SortedSamples(e.sorted, d); len(e.sorted) > 0 {
			for _, o := range engine.Objectives(v.Meta) {
				q := p.AppendMessage(sumQuantiles)
				q.AppendDouble(quantileQ, o.Q)
				q.AppendDouble(quantileValue, engine.SampleQuantile(e.sorted, o.Q))
			}
		}
		e.appendAttributes(p, sumAttributes, tags)
	}
}

// appendBuckets writes a native histogram's sparse buckets as OTLP's dense
// ones. A Prometheus bucket i covers (base^(i-1), base^i], an OTLP bucket
// i covers (base^i, base^(i+1)]: the offset is one less.
func (e *Encoder) appendBuckets(p *easyproto.MessageMarshaler, field uint32, bs []engine.NativeBucket) {
	if len(bs) == 0 {
		return
	}
	first := bs[0].Index
	e.counts = e.counts[:0]
	for _, b := range bs {
		for int32(len(e.counts)) < b.Index-first {
			e.counts = append(e.counts, 0)
		}
		e.counts = append(e.counts, b.Count)
	}
	m := p.AppendMessage(field)
	m.AppendSint32(bucketsOffset, first-1)
	m.AppendUint64s(bucketsCounts, e.counts)
}

func (e *Encoder) appendAttributes(p *easyproto.MessageMarshaler, field uint32, tags []engine.Tag) {
	for _, t := range tags {
		if t.Value != "" && !e.isResourceKey(t.Key) {
			e.appendKeyValue(p, field, t.Key, t.Value)
		}
	}
}

// appendPoint writes a NumberDataPoint. Its scalars go first: easyproto
// wants a message's first field appended before another message is made.
func (e *Encoder) appendPoint(point *easyproto.MessageMarshaler, tags []engine.Tag, ts uint64, v float64) {
	point.AppendFixed64(pointTimeUnixNano, ts)
	point.AppendDouble(pointAsDouble, v)
	e.appendAttributes(point, pointAttributes, tags)
}

func (e *Encoder) appendKeyValue(mm *easyproto.MessageMarshaler, field uint32, key, value string) {
	kv := mm.AppendMessage(field)
	e.arena = remotewrite.AppendLabelValue(e.arena[:0], key)
	kv.AppendBytes(keyValueKey, e.arena)
	e.arena = remotewrite.AppendLabelValue(e.arena[:0], value)
	kv.AppendMessage(keyValueValue).AppendBytes(anyValueString, e.arena)
}

func (e *Encoder) isResourceKey(key string) bool {
	_, ok := slices.BinarySearch(e.resourceKeys, key)
	return ok
}

// sameResource reports whether tags give the open resource.
func (e *Encoder) sameResource(tags []engine.Tag) bool {
	for i, k := range e.resourceKeys {
		if v := tagValue(tags, k); v != e.res[i] {
			return false
		}
	}
	return true
}

// openResource starts a ResourceMetrics for the resource of tags, with
// its one ScopeMetrics.
func (e *Encoder) openResource(tags []engine.Tag) {
	if e.root == nil {
		e.root = e.m.MessageMarshaler()
	}
	e.res = e.res[:0]
	rm := e.root.AppendMessage(requestResourceMetrics)
	res := rm.AppendMessage(resourceMetricsResource)
	for _, k := range e.resourceKeys {
		v := tagValue(tags, k)
		e.res = append(e.res, v)
		if v != "" {
			e.appendKeyValue(res, resourceAttributes, k, v)
		}
	}
	e.scope = rm.AppendMessage(resourceMetricsScope)
	e.scope.AppendMessage(scopeMetricsScope).AppendString(scopeName, ScopeName)
}

// tagValue returns the value of the tag key of the sorted tags, "" when
// absent.
func tagValue(tags []engine.Tag, key string) string {
	i, ok := slices.BinarySearchFunc(tags, key, func(t engine.Tag, k string) int {
		switch {
		case t.Key < k:
			return -1
		case t.Key > k:
			return 1
		}
		return 0
	})
	if !ok {
		return ""
	}
	return tags[i].Value
}

// AppendRequest appends the request built since Reset, as protobuf, to
// dst. It does not allocate when dst has room.
func (e *Encoder) AppendRequest(dst []byte) []byte {
	if e.root == nil {
		return dst
	}
	return e.m.Marshal(dst)
}

// parseResponse reads an ExportMetricsServiceResponse: how many data
// points a partial success rejected, and why. A body it cannot read (a
// proxy's page, JSON) counts as full success: the status said so.
func parseResponse(b []byte) (rejected int64, message string) {
	var fc easyproto.FieldContext
	for len(b) > 0 {
		var err error
		if b, err = fc.NextField(b); err != nil {
			return 0, ""
		}
		if fc.FieldNum != partialSuccess {
			continue
		}
		ps, ok := fc.MessageData()
		if !ok {
			return 0, ""
		}
		var pc easyproto.FieldContext
		for len(ps) > 0 {
			if ps, err = pc.NextField(ps); err != nil {
				return 0, ""
			}
			switch pc.FieldNum {
			case partialRejectedPoints:
				rejected, _ = pc.Int64()
			case partialErrorMessage:
				message, _ = pc.String()
			}
		}
	}
	return rejected, message
}
