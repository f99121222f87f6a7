package parse

// Type is the StatsD metric type of a sample.
type Type uint8

// The StatsD types. Distribution is aggregated as a timer; Histogram is a
// timer that is also binned (the aggregator bins every timer-like sample).
const (
	Counter      Type = iota + 1 // c
	Gauge                        // g
	Timer                        // ms
	Histogram                    // h
	Set                          // s
	Distribution                 // d
)

// Tag is a tag view. Key and Value alias the packet or the parser's
// scratch space; Value is already unescaped.
type Tag struct {
	Key   []byte
	Value []byte
}

// Sample is one accepted StatsD line. Every slice aliases the packet or
// the parser that produced it and is valid until that parser's next Parse
// or Reset: a consumer that keeps anything must copy it.
type Sample struct {
	// Name is the series name (already sanitized when the parser was asked to).
	Name []byte
	Type Type
	// Values holds the packed values (name:1:2:3|c gives three), at least
	// one, all finite. Empty for sets.
	Values []float64
	// SetMember is the opaque member of a set sample.
	SetMember []byte
	// Delta is true for a gauge whose value carried a sign: it adds to the
	// series' current value when the series already has one this interval.
	Delta bool
	// Rate is the sample rate, in (0, 1]; 1 when the line had none.
	Rate float64
	// Tags are sorted by key, keys unique (the last occurrence wins). They
	// exclude the timestamp tag and include bucket and container_id when
	// present.
	Tags []Tag
	// Timestamp is the sample's own time in milliseconds since the epoch
	// (timestamp tag or |T field), 0 when it had none.
	Timestamp int64
}

// String returns the type as written on the wire: c, g, ms, h, s or d.
func (t Type) String() string {
	switch t {
	case Counter:
		return "c"
	case Gauge:
		return "g"
	case Timer:
		return "ms"
	case Histogram:
		return "h"
	case Set:
		return "s"
	case Distribution:
		return "d"
	}
	return "invalid"
}
