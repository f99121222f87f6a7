package aggregate

import (
	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/parse"
)

// addCounter adds each packed value scaled by the sample rate: a sampled
// counter counts for the samples that were not sent, without replicating.
func (ser *series) addCounter(s *parse.Sample) {
	for _, v := range s.Values {
		ser.value += v / s.Rate
	}
}

// counter emits count and rate (count per second of the interval).
func (f *flusher) counter(ser *series) {
	fs := f.fields.carve(2)
	fs[0] = engine.Field{Name: "count", Value: engine.Number(ser.value)}
	fs[1] = engine.Field{Name: "rate", Value: engine.Number(ser.value / f.interval)}
	f.emit(f.t.o.CountersBucket, "", "", fs)
}
