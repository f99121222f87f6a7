package statsd

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/bucky3/bucky3/aggregate"
	"github.com/bucky3/bucky3/parse"
	"github.com/bucky3/bucky3/parse/mapping"
)

// lineMapper applies mapping_config to parsed lines as statsd_exporter
// does: the first rule matching the raw name and type drops the line, or
// renames it, merges its labels into the line's tags and gives its series
// type. It is shared by the readers and read-only: the series types are
// built once per rule in New.
type lineMapper struct {
	m *mapping.Mapper
	// types holds each rule's series types, Defaults' included: [0] for
	// counters, gauges, sets, histograms and distributions, [1] for ms
	// timers, which statsd_exporter converts to seconds.
	types map[*mapping.Rule]*[2]aggregate.SeriesType
}

func newLineMapper(m *mapping.Mapper) (*lineMapper, error) {
	lm := &lineMapper{m: m, types: make(map[*mapping.Rule]*[2]aggregate.SeriesType, len(m.Rules())+1)}
	for _, r := range append(m.Rules()[:len(m.Rules()):len(m.Rules())], m.Defaults()) {
		sts := &[2]aggregate.SeriesType{seriesTypeOf(r, false), seriesTypeOf(r, true)}
		for i := range sts {
			if err := sts[i].Validate(); err != nil {
				return nil, fmt.Errorf("mapping_config: mapping %d (%q): %w", r.Index, r.Match, err)
			}
		}
		lm.types[r] = sts
	}
	return lm, nil
}

// seriesTypeOf returns the series type rule r gives a typed series; timer
// is true for ms lines, whose values statsd_exporter divides by 1000
// before the rule's scale.
func seriesTypeOf(r *mapping.Rule, timer bool) aggregate.SeriesType {
	st := aggregate.SeriesType{
		Buckets:      r.Buckets,
		NativeFactor: r.NativeFactor,
		Meta:         r.TypeMeta(),
	}
	if r.ObserverType == mapping.ObserverSummary {
		st.Observer = aggregate.ObserverSummary
	}
	// An explicit scale of 0, which SeriesType cannot say, zeroes the
	// values in apply instead.
	scale := r.Scale
	if scale == 0 {
		scale = 1
	}
	if timer {
		scale *= 0.001
	}
	if scale != 1 {
		st.Scale = scale
	}
	return st
}

// The outcomes of mapping a line other than keeping it, counted in
// lines_filtered_mapping and lines_dropped_mapping_empty_name.
const (
	mapKeep      uint8 = iota
	mapDrop            // action: drop
	mapEmptyName       // the name template expanded to "" (statsd_exporter drops it too)
	numMapOutcomes
)

// mapScratch is a reader's memory for mapped names and tags, reused.
type mapScratch struct {
	name, buf, esc []byte
	tags           []parse.Tag
	shadowed       []bool // by label: a tag of the line has its name
}

// apply maps s in place and returns the outcome, the series type of s
// (nil for the table's default) and the scale it has applied to the
// values (1 for none; see scaleValues). s.Name and s.Tags may then alias
// sc until its next apply.
func (lm *lineMapper) apply(s *parse.Sample, typed bool, sc *mapScratch) (st *aggregate.SeriesType, scale float64, outcome uint8) {
	res, ok := lm.m.Map(string(s.Name), s.Type)
	rule := res.Rule
	scale = 1
	switch {
	case !ok:
		rule = lm.m.Defaults() // unmatched: the name stays, the defaults type it
	case res.Drop:
		return nil, 1, mapDrop
	case res.Name == "":
		return nil, 1, mapEmptyName
	default:
		sc.name = append(sc.name[:0], res.Name...)
		s.Name = sc.name[:len(sc.name):len(sc.name)]
		if len(res.Labels) > 0 {
			s.Tags = mergeLabels(s.Tags, res.Labels, rule.HonorLabels, sc)
		}
		scale = scaleValues(s, rule.Scale, typed)
	}
	if typed {
		st = &lm.types[rule][b2i(s.Type == parse.Timer)]
	}
	return st, scale, mapKeep
}

// mergeLabels returns tags merged with labels into sc, sorted by key. As
// in statsd_exporter, which escapes tag keys before it merges, a label
// replaces each tag whose key escapes to the label's name (k.x and k_x for
// the label k_x), unless honor (honor_labels) keeps the tags instead.
func mergeLabels(tags []parse.Tag, labels []mapping.Label, honor bool, sc *mapScratch) []parse.Tag {
	sc.buf, sc.tags, sc.shadowed = sc.buf[:0], sc.tags[:0], sc.shadowed[:0]
	for range labels {
		sc.shadowed = append(sc.shadowed, false)
	}
	for _, t := range tags {
		sc.esc = mapping.AppendEscaped(sc.esc[:0], string(t.Key))
		j := slices.IndexFunc(labels, func(l mapping.Label) bool { return l.Name == string(sc.esc) })
		if j >= 0 {
			sc.shadowed[j] = true
			if !honor {
				continue
			}
		}
		sc.tags = append(sc.tags, t)
	}
	// Labels are copied into buf: its array must not move once tags
	// point into it.
	need := 0
	for _, l := range labels {
		need += len(l.Name) + len(l.Value)
	}
	if cap(sc.buf) < need {
		sc.buf = make([]byte, 0, need)
	}
	for j, l := range labels {
		if honor && sc.shadowed[j] {
			continue
		}
		off := len(sc.buf)
		sc.buf = append(sc.buf, l.Name...)
		sc.buf = append(sc.buf, l.Value...)
		name, end := off+len(l.Name), len(sc.buf)
		sc.tags = append(sc.tags, parse.Tag{Key: sc.buf[off:name:name], Value: sc.buf[name:end:end]})
	}
	slices.SortFunc(sc.tags, func(a, b parse.Tag) int { return bytes.Compare(a.Key, b.Key) })
	return sc.tags[:len(sc.tags):len(sc.tags)]
}

// scaleValues multiplies the values of s by a rule's scale where the
// source applies it, and returns it, 1 where it does not: counters and
// gauges, and typed observers when the scale is 0. The table scales other
// typed observers (seriesTypeOf); the bucky3 layout keeps their values.
func scaleValues(s *parse.Sample, scale float64, typed bool) float64 {
	observer := s.Type == parse.Timer || s.Type == parse.Histogram || s.Type == parse.Distribution
	if scale == 1 || !(s.Type == parse.Counter || s.Type == parse.Gauge || observer && typed && scale == 0) {
		return 1
	}
	for i := range s.Values {
		s.Values[i] *= scale
	}
	return scale
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
