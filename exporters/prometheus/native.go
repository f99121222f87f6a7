package prometheus

import (
	"slices"

	"github.com/bucky3/bucky3/engine"
)

// minNativeSchema is the coarsest schema of a native histogram: each
// bucket spans a factor of 2^16.
const minNativeSchema = -4

// defaultNativeMaxBuckets caps a native histogram's populated buckets
// when the series does not say: statsd_exporter's default.
const defaultNativeMaxBuckets = 256

// nativeState is the cumulative native histogram of a series: the sum of
// every interval's engine.NativeBuckets, at the finest schema that keeps
// the populated buckets within the cap.
type nativeState struct {
	schema        int32
	zeroThreshold float64
	zeroCount     uint64
	// positive and negative are the populated buckets, ascending by
	// index, as in engine.NativeBuckets.
	positive, negative []engine.NativeBucket
}

// add merges one interval's buckets into s, first bringing both to the
// coarser of their schemas, then halves the resolution while more than
// maxBuckets buckets are populated, as client_golang does when its bucket
// limit is hit (it has no reset or zero-bucket widening configured in
// statsd_exporter).
func (s *nativeState) add(n *engine.NativeBuckets, maxBuckets int) {
	if s.schema > n.Schema {
		s.reduceTo(n.Schema)
	}
	if n.ZeroThreshold > s.zeroThreshold {
		s.zeroThreshold = n.ZeroThreshold
	}
	s.zeroCount += n.ZeroCount
	shift := s.schema - n.Schema // <= 0
	s.positive = mergeBuckets(s.positive, n.Positive, -shift)
	s.negative = mergeBuckets(s.negative, n.Negative, -shift)
	if maxBuckets <= 0 {
		maxBuckets = defaultNativeMaxBuckets
	}
	for len(s.positive)+len(s.negative) > maxBuckets && s.schema > minNativeSchema {
		s.reduceTo(s.schema - 1)
	}
}

// reduceTo lowers the schema of s to schema, merging each run of
// 2^(s.schema-schema) buckets into one.
func (s *nativeState) reduceTo(schema int32) {
	if schema < minNativeSchema {
		schema = minNativeSchema
	}
	for s.schema > schema {
		s.positive = halve(s.positive)
		s.negative = halve(s.negative)
		s.schema--
	}
}

// coarser returns the index of the bucket holding bucket i after the
// schema drops by one: bucket i covers (base^(i-1), base^i], and with the
// base squared that is bucket ceil(i/2).
func coarser(i int32) int32 {
	if i > 0 {
		return (i + 1) / 2
	}
	return i / 2 // truncation towards zero is the ceiling here
}

// halve merges pairs of buckets in place for a schema one lower.
func halve(b []engine.NativeBucket) []engine.NativeBucket {
	out := b[:0]
	for _, x := range b {
		x.Index = coarser(x.Index)
		if n := len(out); n > 0 && out[n-1].Index == x.Index {
			out[n-1].Count += x.Count
			continue
		}
		out = append(out, x)
	}
	return out
}

// mergeBuckets adds add, at a schema shift steps finer than dst's, into
// dst; both are ascending by index and so is the result.
func mergeBuckets(dst, add []engine.NativeBucket, shift int32) []engine.NativeBucket {
	for _, x := range add {
		idx := x.Index
		for range shift {
			idx = coarser(idx)
		}
		i, found := slices.BinarySearchFunc(dst, idx, func(b engine.NativeBucket, t int32) int {
			return int(b.Index) - int(t)
		})
		if found {
			dst[i].Count += x.Count
			continue
		}
		dst = slices.Insert(dst, i, engine.NativeBucket{Index: idx, Count: x.Count})
	}
	return dst
}

// nativeSpan is one span of a native histogram's protobuf encoding: Offset
// buckets after the previous span's end (or from index 0 for the first),
// Length consecutive buckets.
type nativeSpan struct {
	Offset int32
	Length uint32
}

// appendSpans appends the spans and delta-encoded counts of buckets to
// spans and deltas, as client_golang writes them: gaps of one or two empty
// buckets are filled with zeros rather than starting a new span.
func appendSpans(spans []nativeSpan, deltas []int64, buckets []engine.NativeBucket) ([]nativeSpan, []int64) {
	first := len(spans)
	var (
		prev int64
		next int32
	)
	for _, b := range buckets {
		gap := b.Index - next
		if len(spans) == first || gap > 2 {
			spans = append(spans, nativeSpan{Offset: gap})
		} else {
			for range gap {
				spans[len(spans)-1].Length++
				deltas = append(deltas, -prev)
				prev = 0
			}
		}
		spans[len(spans)-1].Length++
		deltas = append(deltas, int64(b.Count)-prev)
		prev = int64(b.Count)
		next = b.Index + 1
	}
	return spans, deltas
}
