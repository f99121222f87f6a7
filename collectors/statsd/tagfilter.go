package statsd

import (
	"github.com/bucky3/bucky3/aggregate"
	"github.com/bucky3/bucky3/parse"
)

// tagFilter drops the tags that tag_allowlist or tag_denylist leave out.
// It runs on a line's parsed tags before the series key is built, so lines
// that differ only in dropped tags feed one series; known lines keep the
// series their shape fed and never run it again.
type tagFilter struct {
	keys map[string]struct{}
	// allow keeps the listed keys; otherwise they are dropped.
	allow bool
}

// newTagFilter returns the filter of o's lists, nil when both are empty.
func newTagFilter(o *Options) *tagFilter {
	list, allow := o.TagDenylist, false
	if len(o.TagAllowlist) > 0 {
		list, allow = o.TagAllowlist, true
	}
	if len(list) == 0 {
		return nil
	}
	f := &tagFilter{keys: make(map[string]struct{}, len(list)), allow: allow}
	for _, k := range list {
		f.keys[k] = struct{}{}
	}
	return f
}

// apply removes the filtered tags from tags in place, keeping their order,
// and returns the shortened slice, capped like the parser's.
func (f *tagFilter) apply(tags []parse.Tag) []parse.Tag {
	out := tags[:0]
	for _, t := range tags {
		if _, listed := f.keys[string(t.Key)]; listed == f.allow {
			out = append(out, t)
		}
	}
	return out[:len(out):len(out)]
}

// prepare is what happens to a parsed line between the parser and the
// table: the tag lists, then the mapping. A reader runs it once per new
// line shape; its result is remembered with the shape.
type prepare struct {
	filter  *tagFilter  // nil without tag lists
	mapper  *lineMapper // nil without mapping_config
	typed   bool
	scratch mapScratch
}

func newPrepare(s *Server) prepare {
	return prepare{filter: newTagFilter(&s.o), mapper: s.mapper, typed: s.o.Layout == layoutTyped}
}

// apply filters and maps s in place (see lineMapper.apply).
func (x *prepare) apply(s *parse.Sample) (st *aggregate.SeriesType, scale float64, outcome uint8) {
	if x.filter != nil {
		s.Tags = x.filter.apply(s.Tags)
	}
	if x.mapper == nil {
		return nil, 1, mapKeep
	}
	return x.mapper.apply(s, x.typed, &x.scratch)
}
