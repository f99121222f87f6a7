package docker

import (
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/bucky3/bucky3/engine"
)

// validTagKey reports whether k matches [A-Za-z][A-Za-z0-9_]*, the tag
// names every destination accepts without escaping.
func validTagKey(k string) bool {
	if k == "" || !isLetter(k[0]) {
		return false
	}
	for i := 1; i < len(k); i++ {
		if !isLetter(k[i]) && !isDigit(k[i]) && k[i] != '_' {
			return false
		}
	}
	return true
}

// labelTagKey turns a label name into a tag name: every byte outside
// [A-Za-z0-9_] becomes '_', so the reverse-DNS names Docker recommends
// (com.example.team) keep their meaning (com_example_team). A name that
// does not start with a letter, or that is reserved, has no tag.
func labelTagKey(label string) (string, bool) {
	if label == "" || !isLetter(label[0]) {
		return "", false
	}
	b := []byte(label)
	for i, c := range b {
		if !isLetter(c) && !isDigit(c) && c != '_' {
			b[i] = '_'
		}
	}
	k := string(b)
	return k, !isReserved(k)
}

// validTagValue reports whether v can be a tag value: not empty, valid
// UTF-8 and free of control characters, which line protocols cannot carry.
func validTagValue(v string) bool {
	if v == "" || !utf8.ValidString(v) {
		return false
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

func isReserved(k string) bool {
	_, ok := slices.BinarySearch(reservedTags, k)
	return ok
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool  { return '0' <= c && c <= '9' }

// containerTags returns the tags every metric of a container carries,
// sorted by key. Precedence, lowest first: labels (image labels merged
// with container labels, as inspect reports them), env_mapping, then
// docker_name and docker_id. Labels whose sanitised names collide are
// applied in label-name order, so the outcome does not depend on map
// iteration.
func containerTags(name, id string, labels map[string]string, env []string, mapping map[string]string) []engine.Tag {
	tags := make([]engine.Tag, 0, len(labels)+len(mapping)+2)
	for _, l := range slices.Sorted(maps.Keys(labels)) {
		k, ok := labelTagKey(l)
		if ok && validTagValue(labels[l]) {
			tags = append(tags, engine.Tag{Key: k, Value: labels[l]})
		}
	}
	if len(mapping) > 0 {
		// Docker keeps the last of duplicate variables, and so does this.
		for _, kv := range env {
			k, v, _ := strings.Cut(kv, "=")
			if tag, ok := mapping[k]; ok && validTagValue(v) {
				tags = append(tags, engine.Tag{Key: tag, Value: v})
			}
		}
	}
	tags = append(tags,
		engine.Tag{Key: "docker_name", Value: strings.TrimPrefix(name, "/")},
		engine.Tag{Key: "docker_id", Value: shortID(id)},
	)
	return engine.SortTags(tags)
}

// withName returns base plus a name tag, in a new slice: base is shared by
// all metrics of a container.
func withName(base []engine.Tag, name string) []engine.Tag {
	tags := make([]engine.Tag, 0, len(base)+1)
	i, _ := slices.BinarySearchFunc(base, "name", func(t engine.Tag, k string) int { return strings.Compare(t.Key, k) })
	tags = append(tags, base[:i]...)
	tags = append(tags, engine.Tag{Key: "name", Value: name})
	return append(tags, base[i:]...)
}

// shortID is the 12-character ID the docker CLI shows.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
