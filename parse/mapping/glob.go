package mapping

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// globFSM is statsd_exporter's glob trie: one root per metric type, one
// state per dot-separated component, `*` a transition of its own. Its
// quirks are kept on purpose, since they decide which rule wins: a rule is
// attached only to a state it creates (a glob equal to a prefix path of an
// earlier, longer glob, or a repeated glob, never matches), and a repeated
// glob moves its state's priority to the later position.
type globFSM struct {
	roots     [3]*globState // counter, gauge, observer
	count     int
	ordered   bool // the lowest-priority (earliest) matching rule wins
	backtrack bool // search every path, not only the greedy one
}

type globState struct {
	next             map[string]*globState
	minLeft, maxLeft int // components left after this one, over the rules through it
	rule             *Rule
	prio             int
}

func newGlobFSM(ordered bool) *globFSM {
	f := &globFSM{ordered: ordered}
	for i := range f.roots {
		f.roots[i] = &globState{next: map[string]*globState{}}
	}
	return f
}

// add inserts a validated glob and returns its number of captures.
func (f *globFSM) add(match string, mt MetricType, r *Rule) int {
	fields := strings.Split(match, ".")
	roots := f.roots[:]
	if mt != MatchAny {
		roots = f.roots[mt-1 : mt]
	}
	captures := 0
	for _, s := range roots {
		captures = 0
		for i, field := range fields {
			left := len(fields) - i - 1
			n, ok := s.next[field]
			if !ok {
				n = &globState{next: map[string]*globState{}, minLeft: left, maxLeft: left}
				s.next[field] = n
				if left == 0 {
					n.rule = r
				}
			} else {
				n.minLeft = min(n.minLeft, left)
				n.maxLeft = max(n.maxLeft, left)
			}
			if field == "*" {
				captures++
			}
			s = n
		}
		s.prio = f.count
	}
	f.count++
	return captures
}

// globSearch is one lookup: a depth-first walk preferring the literal
// transition over `*`, the order statsd_exporter's backtracking stack gives.
type globSearch struct {
	f        *globFSM
	fields   []string
	caps     []string
	best     *globState
	bestCaps []string
}

// find returns the matching rule and the captures its templates index.
// buf is scratch for the components and captures (three times their
// number; a shorter one is replaced).
func (f *globFSM) find(name string, mt MetricType, buf []string) (*Rule, []string) {
	n := strings.Count(name, ".") + 1
	if cap(buf) < 3*n {
		buf = make([]string, 3*n)
	}
	buf = buf[:3*n]
	fields := buf[:n:n]
	for i := 0; i < n-1; i++ {
		j := strings.IndexByte(name, '.')
		fields[i], name = name[:j], name[j+1:]
	}
	fields[n-1] = name
	g := globSearch{f: f, fields: fields, caps: buf[n : 2*n : 2*n], bestCaps: buf[2*n:]}
	g.walk(f.roots[mt-1], 0, 0)
	if g.best == nil {
		return nil, nil
	}
	return g.best.rule, g.bestCaps
}

func viable(s *globState, left int) *globState {
	if s == nil || left > s.maxLeft || left < s.minLeft {
		return nil
	}
	return s
}

// walk tries the transitions out of s for component i, nc captures taken.
// It returns true when the search is over (unordered: first match).
func (g *globSearch) walk(s *globState, i, nc int) bool {
	if len(s.next) == 0 {
		return false
	}
	field := g.fields[i]
	left := len(g.fields) - i - 1
	star := viable(s.next["*"], left)
	if exact := viable(s.next[field], left); exact != nil {
		if g.step(exact, i, nc) {
			return true
		}
		if !g.f.backtrack || star == nil {
			return false
		}
	} else if star == nil {
		return false
	}
	g.caps[nc] = field
	return g.step(star, i, nc+1)
}

func (g *globSearch) step(s *globState, i, nc int) bool {
	if s.rule != nil && i == len(g.fields)-1 {
		if !g.f.ordered {
			g.best, g.bestCaps = s, g.caps
			return true
		}
		if g.best == nil || g.best.prio > s.prio {
			g.best = s
			copy(g.bestCaps, g.caps)
		}
		return false
	}
	if i+1 >= len(g.fields) {
		return false
	}
	return g.walk(s, i+1, nc)
}

// needBacktracking is statsd_exporter's test for whether an unordered trie
// must search beyond the greedy path: some glob with a `*` shares a prefix
// up to that `*` with another glob of the same length, and neither covers
// the other. An ordered trie always searches every path.
func needBacktracking(globs []string, ordered bool) bool {
	if ordered {
		return true
	}
	byLen := map[int][]string{}
	for _, g := range globs {
		n := strings.Count(g, ".") + 1
		byLen[n] = append(byLen[n], g)
	}
	for _, rules := range byLen {
		if len(rules) == 1 {
			continue
		}
		for i1, r1 := range rules {
			if !strings.Contains(r1, "*") {
				continue
			}
			need := false
			for k := 0; k < len(r1); k++ {
				if r1[k] != '*' {
					continue
				}
				for i2, r2 := range rules {
					if i2 != i1 && strings.HasPrefix(r2, r1[:k]) {
						need = true
						break
					}
				}
			}
			for i2, r2 := range rules {
				if i2 != i1 && (globCovers(r1, r2) || globCovers(r2, r1)) {
					need = false
				}
			}
			if need {
				return true
			}
		}
	}
	return false
}

// globCovers reports whether glob matches s read as a metric name
// (both have the same number of components).
func globCovers(glob, s string) bool {
	for {
		gi := strings.IndexByte(glob, '.')
		si := strings.IndexByte(s, '.')
		if (gi < 0) != (si < 0) {
			return false
		}
		gf, sf := glob, s
		if gi >= 0 {
			gf, sf = glob[:gi], s[:si]
		}
		if gf != "*" && gf != sf {
			return false
		}
		if gi < 0 {
			return true
		}
		glob, s = glob[gi+1:], s[si+1:]
	}
}

// templateRefRE finds the references of a glob rule's templates. Anything
// that is not a capture number in range (a name, $1_x read as one name,
// $9 past the captures) expands to nothing, as in statsd_exporter.
var templateRefRE = regexp.MustCompile(`\$\{?([a-zA-Z0-9_\$]+)\}?`)

// template is a glob rule's name or label template, in statsd_exporter's
// form: a Sprintf format and the capture each %s takes (-1: the whole
// metric name, for $0).
type template struct {
	layout string
	refs   []int
	// parts are the literal pieces around the references, set when the
	// template holds no % of its own (Sprintf then is plain concatenation).
	parts []string
}

func newTemplate(tpl string, captures int) template {
	ms := templateRefRE.FindAllStringSubmatch(tpl, -1)
	t := template{layout: tpl}
	for _, m := range ms {
		idx, err := strconv.Atoi(m[1])
		if err != nil || idx > captures || idx < 0 {
			t.layout = strings.ReplaceAll(t.layout, m[0], "")
			continue
		}
		t.layout = strings.ReplaceAll(t.layout, m[0], "%s")
		t.refs = append(t.refs, idx-1)
	}
	if len(t.refs) > 0 && !strings.Contains(tpl, "%") {
		t.parts = strings.Split(t.layout, "%s")
	}
	return t
}

func (t *template) format(name string, caps []string) string {
	if len(t.refs) == 0 {
		return t.layout
	}
	if t.parts != nil {
		size := 0
		for i, idx := range t.refs {
			size += len(t.parts[i]) + len(t.arg(idx, name, caps))
		}
		var b strings.Builder
		b.Grow(size + len(t.parts[len(t.refs)]))
		for i, idx := range t.refs {
			b.WriteString(t.parts[i])
			b.WriteString(t.arg(idx, name, caps))
		}
		b.WriteString(t.parts[len(t.refs)])
		return b.String()
	}
	args := make([]any, len(t.refs))
	for i, idx := range t.refs {
		args[i] = t.arg(idx, name, caps)
	}
	// Sprintf, not a plain join: a % in a template reads as statsd_exporter
	// reads it.
	return fmt.Sprintf(t.layout, args...)
}

func (t *template) arg(idx int, name string, caps []string) string {
	if idx < 0 {
		return name
	}
	return caps[idx]
}
