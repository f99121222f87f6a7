package parse

import (
	"bytes"
	"math"
	"slices"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// Kind says which member of a JSONField is meaningful. The values match
// engine.Kind, so a consumer converts with a plain cast.
type Kind uint8

// The kinds of a flat JSON value.
const (
	KindNull Kind = iota
	KindNumber
	KindString
	KindBool
)

// JSONField is one key/value pair of a flat JSON object. Key and Str are
// unescaped views into the JSON parser's scratch space.
type JSONField struct {
	Key  []byte
	Kind Kind
	Num  float64 // finite
	Str  []byte  // valid UTF-8
	Bool bool
}

// Object is one accepted JSON line. Its slices alias the JSON parser that
// produced it and are valid until that parser's next Parse or Reset.
type Object struct {
	// Fields are sorted by key, keys unique (the last occurrence wins),
	// at least one, never the timestamp key.
	Fields []JSONField
	// Timestamp is the object's timestamp key in milliseconds since the
	// epoch, 0 when it had none.
	Timestamp int64
}

// JSON parses datagrams of newline-delimited flat JSON objects (SPEC §5).
// The zero value is ready to use once its exported options are set. It
// must not be shared between goroutines: give each reader its own.
type JSON struct {
	// TimestampWindow is how far, in seconds, an object's timestamp may be
	// from now; 0 means 600.
	TimestampWindow float64
	// MaxFields is the most fields an object may hold, the timestamp key
	// and repeated keys aside; 0 means 256.
	MaxFields int
	// MaxKeyLength is the longest key accepted, in bytes unescaped; 0
	// means 256.
	MaxKeyLength int

	// Counters of the last Parse, reset by each Parse and Reset.
	Lines    uint32             // non-empty lines
	Rejected [NumReasons]uint32 // invalid lines by reason

	p       fastjson.Parser
	objects []Object
	fields  []JSONField
	// buf holds the keys and strings of every line: fastjson reuses its
	// own buffer for the next line.
	buf []byte
}

// Reset forgets the objects of the last Parse and zeroes the counters,
// keeping the memory for reuse.
func (j *JSON) Reset() {
	j.Lines, j.Rejected = 0, [NumReasons]uint32{}
	j.objects = j.objects[:0]
	j.fields = j.fields[:0]
	j.buf = j.buf[:0]
}

// Parse returns the objects of the valid lines of packet, in order. They
// alias j and are valid until the next Parse or Reset; packet is not
// retained. Invalid lines are dropped and counted in j.Rejected.
func (j *JSON) Parse(packet []byte, nowMs int64) []Object {
	j.Reset()
	for line, rest := NextLine(packet); len(line) > 0; line, rest = NextLine(rest) {
		j.Lines++
		nf, nb := len(j.fields), len(j.buf)
		o, err := j.parseLine(line, nowMs)
		if err != nil {
			j.fields, j.buf = j.fields[:nf], j.buf[:nb]
			r, _ := ReasonOf(err)
			j.Rejected[r]++
			continue
		}
		j.objects = append(j.objects, o)
	}
	return j.objects
}

func (j *JSON) parseLine(line []byte, nowMs int64) (Object, error) {
	v, err := j.p.ParseBytes(line)
	if err != nil {
		return Object{}, ErrBadJSON
	}
	if v.Type() != fastjson.TypeObject {
		return Object{}, ErrNotObject
	}
	obj, _ := v.Object()
	var o Object
	start := len(j.fields)
	maxFields, maxKey := j.maxFields(), j.maxKeyLength()
	obj.Visit(func(key []byte, v *fastjson.Value) {
		if err != nil {
			return
		}
		// fastjson has parsed the whole line already; the limits bound
		// what an object keeps (and costs downstream), not the parse.
		if len(key) > maxKey && string(key) != "timestamp" {
			err = ErrKeyTooLong
			return
		}
		if !utf8.Valid(key) {
			err = ErrBadUTF8
			return
		}
		f := JSONField{Key: key}
		switch v.Type() {
		case fastjson.TypeNull:
		case fastjson.TypeTrue:
			f.Kind, f.Bool = KindBool, true
		case fastjson.TypeFalse:
			f.Kind = KindBool
		case fastjson.TypeNumber:
			f.Kind = KindNumber
			f.Num, err = v.Float64()
			if err != nil || math.IsNaN(f.Num) || math.IsInf(f.Num, 0) {
				err = ErrBadValue
				return
			}
		case fastjson.TypeString:
			f.Kind = KindString
			f.Str, _ = v.StringBytes()
			if !utf8.Valid(f.Str) {
				err = ErrBadUTF8
				return
			}
		default:
			err = ErrNested
			return
		}
		if string(key) == "timestamp" {
			if f.Kind != KindNumber {
				err = ErrBadTimestamp
				return
			}
			o.Timestamp, err = timestampMs(f.Num, nowMs, j.windowMs())
			return
		}
		if len(j.fields)-start == maxFields {
			err = ErrTooManyFields
			return
		}
		f.Key = j.keep(key)
		f.Str = j.keep(f.Str)
		j.fields = append(j.fields, f)
	})
	if err != nil {
		return Object{}, err
	}
	fields := j.fields[start:]
	slices.SortStableFunc(fields, func(a, b JSONField) int { return bytes.Compare(a.Key, b.Key) })
	out := fields[:0]
	for i := range fields {
		if i+1 < len(fields) && bytes.Equal(fields[i].Key, fields[i+1].Key) {
			continue
		}
		out = append(out, fields[i])
	}
	if len(out) == 0 {
		return Object{}, ErrEmpty
	}
	j.fields = j.fields[:start+len(out)]
	o.Fields = j.fields[start:len(j.fields):len(j.fields)]
	return o, nil
}

// keep copies b into j.buf, since fastjson overwrites b on the next line.
// Earlier views stay valid when buf grows: they keep the old array.
func (j *JSON) keep(b []byte) []byte {
	if b == nil {
		return nil
	}
	off := len(j.buf)
	j.buf = append(j.buf, b...)
	return j.buf[off:len(j.buf):len(j.buf)]
}

// windowMs returns TimestampWindow in milliseconds, fractions kept.
func (j *JSON) windowMs() float64 {
	if !(j.TimestampWindow > 0) {
		return 600_000
	}
	return j.TimestampWindow * 1000
}

func (j *JSON) maxFields() int {
	if j.MaxFields <= 0 {
		return 256
	}
	return j.MaxFields
}

func (j *JSON) maxKeyLength() int {
	if j.MaxKeyLength <= 0 {
		return 256
	}
	return j.MaxKeyLength
}
