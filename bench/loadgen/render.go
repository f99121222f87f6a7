package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// typeNames are the StatsD types the generator can send, in report order.
var typeNames = [...]string{"c", "ms", "g", "s", "h", "d"}

// types is typeNames as a slice.
var types = typeNames[:]

// typeIndex returns t's index in types, or -1.
func typeIndex(t string) int { return slices.Index(types, t) }

// parseMix reads "c=50,ms=30,g=15,s=5" into weights indexed like types.
func parseMix(s string) ([]int, error) {
	w := make([]int, len(types))
	total := 0
	for part := range strings.SplitSeq(s, ",") {
		name, num, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, fmt.Errorf("mix: %q is not type=weight", part)
		}
		i := typeIndex(name)
		if i < 0 {
			return nil, fmt.Errorf("mix: unknown type %q (want one of %s)", name, strings.Join(types, ", "))
		}
		n, err := strconv.Atoi(num)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("mix: weight of %s: %q is not a non-negative integer", name, num)
		}
		w[i] += n
		total += n
	}
	if total == 0 {
		return nil, fmt.Errorf("mix: all weights are zero")
	}
	return w, nil
}

// schedule spreads the weights, reduced by their greatest common divisor,
// over one cycle with smooth weighted round robin, so that every type
// recurs evenly and each appears exactly weight/gcd times per cycle
// ("c=50,ms=30,g=15,s=5" gives a cycle of 20 with 10, 6, 3 and 1).
func schedule(weights []int) []int {
	g := 0
	for _, w := range weights {
		g = gcd(g, w)
	}
	total := 0
	reduced := make([]int, len(weights))
	for i, w := range weights {
		reduced[i] = w / g
		total += reduced[i]
	}
	current := make([]int, len(weights))
	cycle := make([]int, 0, total)
	for range total {
		best := -1
		for i, w := range reduced {
			current[i] += w
			if w > 0 && (best < 0 || current[i] > current[best]) {
				best = i
			}
		}
		current[best] -= total
		cycle = append(cycle, best)
	}
	return cycle
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// shape is what a ring of datagrams is rendered from.
type shape struct {
	series         int   // distinct series: series i is named lg_<type>_<i>
	linesPerPacket int   // lines per datagram
	tags           int   // DogStatsD tags per line
	cycle          []int // type indexes from schedule
}

// ring holds pre-rendered datagrams, back to back in buf, and the running
// totals the report is computed from, so that senders count nothing per
// packet. It is read-only once rendered and shared by all senders.
type ring struct {
	buf []byte
	// off[p] is where packet p starts; off[len(off)-1] == len(buf).
	off []int
	// byType[t][p] is the number of type-t lines in packets [0, p).
	byType [][]uint64
	// counterSum[p] is the sum of counter values in packets [0, p).
	counterSum []uint64
	lpp        int
}

// maxDatagram is the largest UDP payload over IPv4.
const maxDatagram = 65507

// render builds the ring: line k is series k mod series, and the ring has
// lcm(series, linesPerPacket) lines so that it wraps on both a series and
// a packet boundary. Series i has type cycle[i mod len(cycle)], so a
// series never changes type and, when series is a multiple of the cycle
// length, the type mix of a full ring is exact. Counters always send 1
// with no sample rate: a server's flushed counter sums must equal the
// number of counter lines it accepted.
func render(sh shape) (*ring, error) {
	if sh.series < 1 || sh.linesPerPacket < 1 || sh.tags < 0 || len(sh.cycle) == 0 {
		return nil, fmt.Errorf("render: series and lines per packet must be at least 1")
	}
	lines := sh.series / gcd(sh.series, sh.linesPerPacket) * sh.linesPerPacket
	packets := lines / sh.linesPerPacket
	r := &ring{
		off:        make([]int, 0, packets+1),
		byType:     make([][]uint64, len(types)),
		counterSum: make([]uint64, packets+1),
		lpp:        sh.linesPerPacket,
	}
	for t := range r.byType {
		r.byType[t] = make([]uint64, packets+1)
	}
	count := make([]uint64, len(types))
	var sum uint64
	for p := range packets {
		start := len(r.buf)
		r.off = append(r.off, start)
		for j := range sh.linesPerPacket {
			if j > 0 {
				r.buf = append(r.buf, '\n')
			}
			k := p*sh.linesPerPacket + j
			t := sh.cycle[(k%sh.series)%len(sh.cycle)]
			r.buf = appendLine(r.buf, k, k%sh.series, t, sh.tags)
			count[t]++
			if types[t] == "c" {
				sum++
			}
		}
		if n := len(r.buf) - start; n > maxDatagram {
			return nil, fmt.Errorf("render: a datagram of %d lines is %d bytes, above %d", sh.linesPerPacket, n, maxDatagram)
		}
		for t := range count {
			r.byType[t][p+1] = count[t]
		}
		r.counterSum[p+1] = sum
	}
	r.off = append(r.off, len(r.buf))
	return r, nil
}

// tagModuli give tag j of series i the value i mod tagModuli[j], so tags
// vary between series but never make one series several.
var tagModuli = []int{7, 13, 101, 3, 5, 11, 17, 19}

// appendLine appends line k of the ring, a sample of series i of type t:
// lg_c_42:1|c|#t0:v0,t1:v3,t2:v42.
func appendLine(dst []byte, k, i, t, tags int) []byte {
	dst = append(dst, "lg_"...)
	dst = append(dst, types[t]...)
	dst = append(dst, '_')
	dst = strconv.AppendInt(dst, int64(i), 10)
	dst = append(dst, ':')
	switch types[t] {
	case "c":
		dst = append(dst, '1')
	case "s":
		dst = append(dst, 'm')
		dst = strconv.AppendInt(dst, int64(k%50), 10)
	default:
		dst = strconv.AppendInt(dst, int64(k%997), 10)
	}
	dst = append(dst, '|')
	dst = append(dst, types[t]...)
	for j := range tags {
		if j == 0 {
			dst = append(dst, "|#"...)
		} else {
			dst = append(dst, ',')
		}
		dst = append(dst, 't')
		dst = strconv.AppendInt(dst, int64(j), 10)
		dst = append(dst, ":v"...)
		m := 23 + j
		if j < len(tagModuli) {
			m = tagModuli[j]
		}
		dst = strconv.AppendInt(dst, int64(i%m), 10)
	}
	return dst
}

// packets is the number of datagrams in the ring.
func (r *ring) packets() int { return len(r.off) - 1 }

// packet returns datagram p; it aliases the ring.
func (r *ring) packet(p int) []byte { return r.buf[r.off[p]:r.off[p+1]] }

// tally counts what was sent.
type tally struct {
	packets, lines, bytes, counterSum uint64
	byType                            [len(typeNames)]uint64
}

// addTo adds to tl the n consecutive packets from start, wrapping around
// the ring. It costs the same for any n: senders call it once per batch.
func (r *ring) addTo(tl *tally, start int, n uint64) {
	P := uint64(r.packets())
	full, rem := n/P, n%P
	tl.packets += n
	tl.lines += n * uint64(r.lpp)
	// span adds packets [a, b) of one pass over the ring.
	span := func(a, b int, times uint64) {
		for t := range tl.byType {
			tl.byType[t] += times * (r.byType[t][b] - r.byType[t][a])
		}
		tl.counterSum += times * (r.counterSum[b] - r.counterSum[a])
		tl.bytes += times * uint64(r.off[b]-r.off[a])
	}
	span(0, int(P), full)
	end := uint64(start) + rem
	if end <= P {
		span(start, int(end), 1)
	} else {
		span(start, int(P), 1)
		span(0, int(end-P), 1)
	}
}

// add accumulates o into tl.
func (tl *tally) add(o tally) {
	tl.packets += o.packets
	tl.lines += o.lines
	tl.bytes += o.bytes
	tl.counterSum += o.counterSum
	for t := range o.byType {
		tl.byType[t] += o.byType[t]
	}
}
