package aggregate

import (
	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/parse"
)

// addGauge keeps the last value; a signed value adds to the current one.
// A series is created by its first sample with value 0, so a signed first
// sample adding to 0 sets the gauge, as SPEC §4.2 asks. abs records an
// absolute value, which a typed gauge needs to tell a value from a change.
func (ser *series) addGauge(s *parse.Sample) {
	for _, v := range s.Values {
		if s.Delta {
			ser.value += v
		} else {
			ser.value = v
			ser.abs = true
		}
	}
}

// gauge emits value.
func (f *flusher) gauge(ser *series) {
	fs := f.fields.carve(1)
	fs[0] = engine.Field{Name: "value", Value: engine.Number(ser.value)}
	f.emit(f.t.o.GaugesBucket, "", "", fs)
}
