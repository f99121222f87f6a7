package statsd

import (
	"hash/maphash"
	"math/bits"

	"github.com/bucky3/bucky3/aggregate"
	"github.com/bucky3/bucky3/parse"
)

// knownLines remembers, for the shapes of lines a reader accepted (the
// line without its values, see parse.AppendShape), the series they fed,
// their type and sample rate. A line of a known shape, nearly every line
// of a steady load, then costs a hash of its shape, the parse of its
// values and one aggregate.Writer.AddTo: no tag parsing, sorting or key.
//
// The memo is set associative: a shape's hash picks a set of knownWays
// slots, whose entries share one cache line, and a new shape evicts a slot
// of its set not hit since the clock hand last passed (CLOCK). Memory
// stays bounded however many series there are, and slots reuse their
// buffers, so evictions do not allocate.
type knownLines struct {
	// entries[i] is slot i's entry (see entryOf), 0 when empty. lines is
	// filled in the order shapes arrive, not by hash, so that a datagram's
	// lines, which clients send in the same order every time, find their
	// records side by side (bench/RESULTS.md, Round 7).
	entries []uint64
	lines   []knownLine
	sets    []clock
	// seed keys the shapes' hashes: maphash is twice as fast as xxhash on
	// a shape (bench/RESULTS.md, Round 5), and a seed no client knows keeps
	// one from crafting shapes that all land in one set.
	seed maphash.Seed
	// batch holds the lines load split off the datagram, their shapes in
	// shapes.
	batch  []pending
	shapes []byte

	// sparse is set when a window of lookups hit seldom (far more series
	// than slots, where the memo only adds work): then one line in
	// sparseEvery, picked at random so that no periodic load escapes,
	// tries the memo until a window of tries hits again. Never while half
	// the slots are empty: those misses are a cold start, which sparse
	// mode would stretch sixteenfold. See bench/RESULTS.md, "Design notes:
	// statsd_server reader path".
	sparse        bool
	random        uint64 // xorshift state
	lookups, hits uint32 // in the current window
	filled        int    // slots ever filled, the next free index in lines
}

// The memo's size, ~5 MiB per reader when full. Sets of 8 keep nearly all
// of 10k series, which 2-way sets lost to conflicts (bench/RESULTS.md,
// "Design notes: statsd_server reader path").
const (
	knownWays  = 8
	knownSets  = 4096
	knownSlots = knownWays * knownSets
)

// An entry keeps its index in lines in the bits of lineMask and the shape
// hash's other bits (its tag) above them, with the lowest of those set so
// that no entry is 0. A tag that matches is confirmed by comparing the
// shapes.
const lineMask = knownSlots - 1 // knownSlots is a power of two

// entryOf returns the entry of the shape hash h stored at line.
func entryOf(h uint64, line int) uint64 { return h&^lineMask | knownSlots | uint64(line) }

// tagMatches reports whether entry e may hold the shape hash h.
func tagMatches(e, h uint64) bool { return e&^lineMask == h&^lineMask|knownSlots }

// The sparse mode's window and thresholds (see knownLines.sparse).
const (
	windowLookups = 1024
	minWindowHits = windowLookups / 4
	sparseEvery   = 16
)

// batchLines is how many lines load looks up together: with thousands of
// series what a lookup touches is seldom in the cache, and prefetching it
// for a whole batch first overlaps the misses (bench/RESULTS.md, "Design
// notes: statsd_server reader path").
const batchLines = 32

// maxShapeLen bounds a slot's shape, so that huge tag sections cannot
// make the memo big: longer shapes are parsed in full every time.
const maxShapeLen = 256

type knownLine struct {
	shape []byte
	ref   aggregate.Ref
	rate  float64
	// bareTags is how many bare tags the line had; the hit path counts
	// them again (tags_ignored_bare).
	bareTags uint16
	typ      parse.Type
	// dropped is the mapping's outcome when it drops the shape's lines
	// (mapKeep otherwise); scale multiplies the values of the lines a
	// mapping scales in the source (see scaleValues), 1 for none.
	dropped uint8
	scale   float64
}

// pending is a line of the batch.
type pending struct {
	line, values []byte
	// shape is nil when the line is not looked up: it has no shape, a
	// too long one, or sparse mode skips it.
	shape []byte
	hash  uint64 // never 0
	// slot is where load found the hash's tag, -1 for nowhere: a hint
	// for find, as remembering an earlier line of the batch may have
	// changed it.
	slot int
}

// clock is the CLOCK replacement state of a set: a bit per way hit since
// the hand last passed it, and the hand.
type clock struct {
	used uint8
	hand uint8
}

func newKnownLines() *knownLines {
	return &knownLines{
		entries: make([]uint64, knownSlots),
		lines:   make([]knownLine, knownSlots),
		sets:    make([]clock, knownSets),
		seed:    maphash.MakeSeed(),
		batch:   make([]pending, 0, batchLines),
		shapes:  make([]byte, 0, batchLines*(maxShapeLen+8)),
		random:  0x9e3779b97f4a7c15,
	}
}

// load splits up to batchLines lines off packet into k.batch, computes
// their shapes and prefetches what looking them up will touch. It returns
// the rest of packet.
func (k *knownLines) load(packet []byte) []byte {
	k.batch, k.shapes = k.batch[:0], k.shapes[:0]
	for len(k.batch) < batchLines {
		var line []byte
		if line, packet = parse.NextLine(packet); len(line) == 0 {
			break
		}
		k.batch = k.batch[:len(k.batch)+1]
		p := &k.batch[len(k.batch)-1]
		*p = pending{line: line, slot: -1}
		if k.skip() {
			continue
		}
		// Shapes start 8-byte aligned, so that the hash's 8-byte loads
		// line up with the copy's stores that just wrote them.
		start := (len(k.shapes) + 7) &^ 7
		k.shapes = k.shapes[:start]
		var ok bool
		if k.shapes, p.values, ok = parse.AppendShape(k.shapes, p.line); ok && len(k.shapes)-start <= maxShapeLen {
			p.shape = k.shapes[start:len(k.shapes):len(k.shapes)]
			p.hash = max(maphash.Bytes(k.seed, p.shape), 1)
			prefetchSet(&k.entries[setOf(p.hash)*knownWays])
		} else {
			k.shapes = k.shapes[:start]
		}
	}
	// Each step reads what the previous one prefetched.
	for i := range k.batch {
		if p := &k.batch[i]; p.shape != nil {
			if p.slot = k.slotOf(p); p.slot >= 0 {
				kl := &k.lines[k.entries[p.slot]&lineMask]
				prefetchLine(kl)
				prefetchLineEnd(kl)
			}
		}
	}
	for i := range k.batch {
		if p := &k.batch[i]; p.slot >= 0 {
			kl := &k.lines[k.entries[p.slot]&lineMask]
			prefetchBytes(kl.shape)
			series, sample := kl.ref.Hints()
			prefetch(series)
			if sample != 0 {
				prefetch(sample)
			}
		}
	}
	return packet
}

// skip reports whether sparse mode leaves the next line out.
func (k *knownLines) skip() bool {
	if !k.sparse {
		return false
	}
	k.random ^= k.random << 13
	k.random ^= k.random >> 7
	k.random ^= k.random << 17
	return k.random%sparseEvery != 0
}

// slotOf returns the slot whose tag is p's hash's, -1 for none.
func (k *knownLines) slotOf(p *pending) int {
	set := setOf(p.hash)
	for way, e := range k.entries[set*knownWays:][:knownWays] {
		if tagMatches(e, p.hash) {
			return set*knownWays + way
		}
	}
	return -1
}

// find returns the slot of p's shape, nil if it is unknown or p has none.
func (k *knownLines) find(p *pending) *knownLine {
	if p.shape == nil {
		return nil
	}
	if k.lookups++; k.lookups == windowLookups {
		k.sparse = k.hits < minWindowHits && k.filled >= knownSlots/2
		k.lookups, k.hits = 0, 0
	}
	slot := p.slot
	if slot < 0 || !tagMatches(k.entries[slot], p.hash) {
		if slot = k.slotOf(p); slot < 0 {
			return nil
		}
	}
	kl := &k.lines[k.entries[slot]&lineMask]
	if string(kl.shape) != string(p.shape) {
		return nil
	}
	k.sets[slot/knownWays].used |= 1 << (slot % knownWays)
	k.hits++
	return kl
}

// setOf returns the set of a hash, which its top bits pick.
func setOf(hash uint64) int { return int(hash >> (64 - bits.Len(knownSets-1))) }

// remember returns a slot for p's shape, which find did not know, with the
// shape, s's type and rate and bareTags stored; the caller sets its ref.
// It returns nil when that shape cannot be remembered: the line had none,
// or was too long, or s carries a timestamp (which the parser checks
// against the clock, so the same shape may be rejected later), or it has
// too many bare tags.
func (k *knownLines) remember(p *pending, s *parse.Sample, bareTags uint32) *knownLine {
	if p.shape == nil || s.Timestamp != 0 || bareTags > 1<<16-1 {
		return nil
	}
	set := setOf(p.hash)
	c := &k.sets[set]
	for c.used&(1<<c.hand) != 0 {
		c.used &^= 1 << c.hand
		c.hand = (c.hand + 1) % knownWays
	}
	way := c.hand
	c.used |= 1 << way
	c.hand = (c.hand + 1) % knownWays
	i := set*knownWays + int(way)
	line := int(k.entries[i] & lineMask)
	if k.entries[i] == 0 {
		line = k.filled
		k.filled++
	}
	k.entries[i] = entryOf(p.hash, line)
	kl := &k.lines[line]
	kl.shape = append(kl.shape[:0], p.shape...)
	kl.rate, kl.bareTags, kl.typ = s.Rate, uint16(bareTags), s.Type
	kl.dropped, kl.scale = mapKeep, 1
	return kl
}
