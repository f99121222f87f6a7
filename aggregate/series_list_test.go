package aggregate

import (
	"strconv"
	"testing"
)

// TestSeriesList checks that a list keeps every series where it was put
// across chunks, never grows a chunk past seriesChunk, and after a reset
// hands out the same series again, with the buffers they kept.
func TestSeriesList(t *testing.T) {
	var l seriesList
	const n = 3*seriesChunk + 5
	for i := range n {
		at, ser := l.push()
		if int(at) != i {
			t.Fatalf("push %d returned position %d", i, at)
		}
		ser.key = strconv.Itoa(i)
	}
	if l.len() != n || len(l.chunks) != 4 {
		t.Fatalf("len %d in %d chunks, want %d in 4", l.len(), len(l.chunks), n)
	}
	for c, chunk := range l.chunks {
		if cap(chunk) != seriesChunk {
			t.Fatalf("chunk %d has capacity %d, want %d", c, cap(chunk), seriesChunk)
		}
	}
	first := make([]*series, n)
	for i := range n {
		first[i] = l.at(int32(i))
		if first[i].key != strconv.Itoa(i) {
			t.Fatalf("series %d has key %q", i, first[i].key)
		}
		first[i].recycle()
		first[i].samples = append(first[i].samples, 1)
	}
	l.reset()
	if l.len() != 0 {
		t.Fatalf("len %d after reset", l.len())
	}
	for i := range n {
		if _, ser := l.push(); ser != first[i] || cap(ser.samples) == 0 {
			t.Fatalf("push %d after reset: a different series, or one without its buffer", i)
		}
	}
}
