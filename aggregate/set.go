package aggregate

import "github.com/bucky3/bucky3/engine"

// addMember records a set member. Only a member not seen in this interval
// allocates: the lookup with string(m) does not copy m.
func (ser *series) addMember(m []byte) {
	if _, ok := ser.members[string(m)]; ok {
		return
	}
	if ser.members == nil {
		ser.members = make(map[string]struct{})
	}
	ser.members[string(m)] = struct{}{}
}

// set emits count, the number of distinct members.
func (f *flusher) set(ser *series) {
	fs := f.fields.carve(1)
	fs[0] = engine.Field{Name: "count", Value: engine.Number(float64(len(ser.members)))}
	f.emit(f.t.o.SetsBucket, "", "", fs)
}
