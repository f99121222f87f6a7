package prometheus

import (
	"math"
	"slices"
	"time"

	"github.com/beorn7/perks/quantile"

	"github.com/bucky3/bucky3/engine"
)

// The summary defaults of client_golang, which statsd_exporter keeps, and
// statsd_exporter's default objectives.
const (
	defaultMaxAge     = 10 * time.Minute
	defaultAgeBuckets = 5
)

var defaultObjectives = []engine.Quantile{{Q: 0.5, Error: 0.05}, {Q: 0.9, Error: 0.01}, {Q: 0.99, Error: 0.001}}

// summaryState is a series' summary: cumulative sum and count, and
// quantiles over a sliding window of maxAge, kept as client_golang's
// summary keeps them: ageBuckets streams that each see every observation,
// staggered so that the oldest (the head) covers up to maxAge and is reset
// and moved to the back every maxAge/ageBuckets.
type summaryState struct {
	objectives []engine.Quantile // sorted by Q
	count      uint64
	sum        float64

	streams  []*quantile.Stream
	head     int
	headExp  int64 // when the head stream expires, in exporter ns
	duration int64 // maxAge / ageBuckets, ns

	// values are the quantiles of the window as last computed, in the
	// order of objectives: rendering only reads them.
	values []float64
	// scratch holds the weighted samples of one interval.
	scratch quantile.Samples
}

// newSummaryState returns an empty summary as meta describes it (nil:
// the defaults), its window starting at now.
func newSummaryState(meta *engine.TypeMeta, now int64) *summaryState {
	objectives := defaultObjectives
	maxAge, ageBuckets := defaultMaxAge, defaultAgeBuckets
	if meta != nil {
		if len(meta.Quantiles) > 0 {
			objectives = slices.SortedFunc(slices.Values(meta.Quantiles), func(a, b engine.Quantile) int {
				return compareFloat(a.Q, b.Q)
			})
			// One line per quantile: a repeated one would repeat a series.
			objectives = slices.CompactFunc(objectives, func(a, b engine.Quantile) bool { return a.Q == b.Q })
		}
		if meta.MaxAge > 0 {
			maxAge = meta.MaxAge
		}
		if meta.AgeBuckets > 0 {
			ageBuckets = meta.AgeBuckets
		}
	}
	targets := make(map[float64]float64, len(objectives))
	for _, o := range objectives {
		targets[o.Q] = o.Error
	}
	s := &summaryState{
		objectives: objectives,
		streams:    make([]*quantile.Stream, ageBuckets),
		// A window too short to split would rotate without end.
		duration: max(int64(maxAge)/int64(ageBuckets), int64(time.Millisecond)),
		values:   make([]float64, len(objectives)),
	}
	for i := range s.streams {
		s.streams[i] = quantile.NewTargeted(targets)
	}
	s.headExp = now + s.duration
	s.refresh()
	return s
}

func compareFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// add adds one interval's observations. When Samples are fewer than
// Count they are a uniform sample, so each stands for Count/len(Samples)
// observations; sum and count are the distribution's own.
func (s *summaryState) add(d *engine.Distribution, now int64) {
	s.rotate(now)
	s.count += d.Count
	s.sum += d.Sum
	if len(d.Samples) == 0 {
		return
	}
	width := 1.0
	if d.Count > uint64(len(d.Samples)) {
		width = float64(d.Count) / float64(len(d.Samples))
	}
	s.scratch = s.scratch[:0]
	for _, v := range d.Samples {
		if math.IsNaN(v) {
			continue
		}
		s.scratch = append(s.scratch, quantile.Sample{Value: v, Width: width})
	}
	for _, st := range s.streams {
		// Merge sorts its argument: every stream gets its own copy of
		// the order, which is the same after the first.
		st.Merge(s.scratch)
	}
	s.refresh()
}

// rotate resets the streams whose window ended by now and reports
// whether it did, so the caller knows the quantiles changed.
func (s *summaryState) rotate(now int64) bool {
	rotated := false
	for now >= s.headExp {
		s.streams[s.head].Reset()
		s.head = (s.head + 1) % len(s.streams)
		s.headExp += s.duration
		rotated = true
		// A series idle for many windows needs one pass, not one per
		// window.
		if now-s.headExp > int64(len(s.streams))*s.duration {
			for _, st := range s.streams {
				st.Reset()
			}
			s.headExp = now + s.duration
		}
	}
	if rotated {
		s.refresh()
	}
	return rotated
}

// refresh recomputes the quantiles from the head stream: NaN while the
// window holds no observation, as client_golang writes them.
func (s *summaryState) refresh() {
	head := s.streams[s.head]
	for i, o := range s.objectives {
		if head.Count() == 0 {
			s.values[i] = math.NaN()
			continue
		}
		s.values[i] = head.Query(o.Q)
	}
}
