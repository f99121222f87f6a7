package statsd

import (
	"github.com/cespare/xxhash/v2"

	"github.com/bucky3/bucky3/aggregate"
	"github.com/bucky3/bucky3/parse"
)

// knownLines remembers, for the shapes of lines a reader accepted (the
// line without its values, see parse.AppendShape), the series they fed,
// their type and sample rate. A line of a known shape then costs copying
// and hashing its shape, parsing its values and one aggregate.Writer.AddTo:
// no tag parsing and sorting, no key building, no index lookup. Nearly
// every line of a steady load has a known shape, as clients send the same
// series with the same tags and rate over and over.
//
// The memo is two-way set associative, and a new shape evicts the less
// recently hit of its set, so memory stays bounded (knownSlots shapes of
// at most maxShapeLen bytes) however many series there are; a slot reuses
// its buffer, so evictions do not allocate either.
type knownLines struct {
	slots []knownLine
	// shape holds the current line's shape, hash its hash and ok whether
	// it has one, between find and remember.
	shape []byte
	hash  uint64
	ok    bool

	// With far more series than slots, each seen seldom, nearly every
	// lookup misses and the memo only adds work (a third more per line
	// at 100k series each sent once per interval). So after a window of
	// lookups with few hits, only one line in sparseEvery tries the memo,
	// until a window of those tries hits again.
	sparse        bool
	lines         uint32 // lines seen in sparse mode
	lookups, hits uint32 // in the current window
}

// knownSlots is the size of a reader's memo: 32768 × ~90 bytes plus the
// shapes, ~5 MiB per reader when full. Two ways of 16384 sets keep 10k
// series of a busy host without evictions.
const knownSlots = 1 << 15

// The sparse mode's window and thresholds (see knownLines.sparse).
const (
	windowLookups = 1024
	minWindowHits = windowLookups / 4
	sparseEvery   = 16
)

// maxShapeLen bounds what one slot holds. Longer shapes are parsed in full
// every time: a hostile client with huge tag sections cannot make the
// memo big.
const maxShapeLen = 256

type knownLine struct {
	hash  uint64
	shape []byte
	ref   aggregate.Ref
	rate  float64
	// bareTags is how many bare tags the line had; the hit path counts
	// them again (tags_ignored_bare).
	bareTags uint16
	typ      parse.Type
	// recent is set on the way of a set hit last; the other way is the
	// one a new shape evicts.
	recent bool
}

func newKnownLines() *knownLines {
	return &knownLines{slots: make([]knownLine, knownSlots), shape: make([]byte, 0, maxShapeLen)}
}

// find computes the shape of line and returns its slot if it is known;
// values are line's values either way.
// find computes the shape of line and returns its slot if it is known. In
// sparse mode most lines are not looked up: find returns nil, and values
// nil, for them.
func (k *knownLines) find(line []byte) (kl *knownLine, values []byte) {
	if k.sparse {
		if k.lines++; k.lines%sparseEvery != 0 {
			k.ok = false
			return nil, nil
		}
	}
	k.shape, values, k.ok = parse.AppendShape(k.shape[:0], line)
	if !k.ok || len(k.shape) > maxShapeLen {
		k.ok = false
		return nil, values
	}
	k.hash = xxhash.Sum64(k.shape)
	if k.lookups++; k.lookups == windowLookups {
		k.sparse = k.hits < minWindowHits
		k.lookups, k.hits = 0, 0
	}
	set := k.slots[k.hash&(knownSlots-1)&^1:][:2]
	for i := range set {
		if kl := &set[i]; kl.hash == k.hash && string(kl.shape) == string(k.shape) {
			if !kl.recent {
				kl.recent, set[1-i].recent = true, false
			}
			k.hits++
			return kl, values
		}
	}
	return nil, values
}

// remember returns the slot for the shape find last computed, evicting
// the less recent way of its set, with the shape, s's type and rate and
// bareTags stored; the caller sets its ref. It returns nil when that
// shape cannot be remembered: the line had none, or was too long, or s
// carries a timestamp (which the parser checks against the clock, so the
// same shape may be rejected later), or it has too many bare tags.
func (k *knownLines) remember(s *parse.Sample, bareTags uint32) *knownLine {
	if !k.ok || s.Timestamp != 0 || bareTags > 1<<16-1 {
		return nil
	}
	set := k.slots[k.hash&(knownSlots-1)&^1:][:2]
	i := 0
	if set[0].recent {
		i = 1
	}
	kl := &set[i]
	kl.hash = k.hash
	kl.shape = append(kl.shape[:0], k.shape...)
	kl.rate, kl.bareTags, kl.typ = s.Rate, uint16(bareTags), s.Type
	kl.recent, set[1-i].recent = true, false
	return kl
}
