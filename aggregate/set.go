package aggregate

import (
	"github.com/axiomhq/hyperloglog"

	"github.com/bucky3/bucky3/engine"
)

// addMember records a set member of ser, a series of t. Only a member not
// seen in this interval allocates: the lookup with string(m) does not copy
// m. A member beyond MaxSetSize turns the set into a sketch for the rest
// of the interval, which costs a hash and a register update per member.
func (ser *series) addMember(t *Table, m []byte) {
	if ser.over != nil {
		ser.over.sketch.Insert(m)
		return
	}
	if _, ok := ser.members[string(m)]; ok {
		return
	}
	if len(ser.members) >= t.o.MaxSetSize {
		t.startSketch(ser)
		ser.over.sketch.Insert(m)
		return
	}
	if ser.members == nil {
		ser.members = make(map[string]struct{})
	}
	ser.members[string(m)] = struct{}{}
}

// startSketch moves the members of ser into a HyperLogLog++ sketch of
// precision 14 (16 KiB, about 0.8% standard error), dense from the start:
// MaxSetSize members would fill the sparse form anyway. The map is let go,
// so that the series holds only the sketch.
func (t *Table) startSketch(ser *series) {
	sk := hyperloglog.NewNoSparse()
	for m := range ser.members {
		sk.Insert([]byte(m))
	}
	ser.members = nil
	ser.over = &overflow{sketch: sk}
	t.estimated.Add(1)
}

// set emits count, the number of distinct members. An estimate is never
// below the count known exact when the set became a sketch.
func (f *flusher) set(ser *series) {
	fs := f.fields.carve(1)
	fs[0] = engine.Field{Name: "count", Value: engine.Number(f.setCount(ser))}
	f.emit(f.t.o.SetsBucket, "", "", fs)
}

// setCount returns the number of distinct members of ser.
func (f *flusher) setCount(ser *series) float64 {
	if ser.over != nil {
		return float64(max(ser.over.sketch.Estimate(), uint64(f.t.o.MaxSetSize)+1))
	}
	return float64(len(ser.members))
}
