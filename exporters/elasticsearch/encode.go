package elasticsearch

import (
	"crypto/sha1"
	"encoding/hex"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bucky3/bucky3/engine"
	"github.com/google/uuid"
)

// Encoder writes metrics as bulk index actions. It keeps scratch buffers
// between calls, so it must not be shared between goroutines.
type Encoder struct {
	indexName      string // static name or strftime pattern; "" means the bucket
	timestampField string // "" leaves the timestamp out
	bucketField    string // "" leaves the bucket out

	keys []docKey           // scratch: the document's keys, sorted
	flat []engine.FlatField // scratch: the flat fields of typed histograms and summaries
	fl   engine.Flattener
	doc  []byte // scratch: the canonical document
	hash []byte // scratch: namespace + document, the UUIDv5 input
}

// docKey is one member of a document; prio breaks ties between a field, a
// tag and the timestamp/bucket members of the same name (lowest wins).
type docKey struct {
	name string
	prio uint8
	src  uint8 // srcTimestamp, srcBucket, srcField or srcTag
	i    int   // index in m.Fields or m.Tags
}

const (
	srcTimestamp = iota
	srcBucket
	srcField
	srcTag
	srcFlat // e.flat[i]
)

// NewEncoder returns an encoder. indexName is a static index name or a
// pattern with strftime directives (%Y %m %d %H %M %S %j %y %%) applied to
// the metric's time in UTC; empty means the metric's bucket. An empty
// timestampField or bucketField leaves that member out of documents.
func NewEncoder(indexName, timestampField, bucketField string) *Encoder {
	return &Encoder{indexName: indexName, timestampField: timestampField, bucketField: bucketField}
}

// AppendAction appends the bulk action for m, two lines:
//
//	{"index":{"_index":"<index>","_id":"<uuid>"}}
//	<document>
//
// The document is canonical JSON (keys sorted, no spaces) holding m's
// fields, the tags whose names no field has, the timestamp (epoch
// milliseconds; now when m has none) and the bucket. The timestamp and
// bucket members win over fields and tags of the same name. Non-finite
// numbers are left out. Typed values are written as engine.Flattener
// flattens them: a counter's or gauge delta's number as it is, a histogram
// or summary as several number members (count, sum, le_…, p…). _id is the
// UUIDv5 (DNS namespace) of the document, the same as uuid.NewSHA1(uuid.NameSpaceDNS, document). It does not
// allocate once the encoder's scratch buffers have grown.
func (e *Encoder) AppendAction(dst []byte, m *engine.Metric, now time.Time) []byte {
	return e.appendAction(dst, m, now, nil)
}

// AppendActionIndex is AppendAction with the _index given: index is written
// as is, so it must be JSON-escaped already (AppendIndex's output is). A
// client uses it to send metrics to another index than their own.
func (e *Encoder) AppendActionIndex(dst []byte, m *engine.Metric, now time.Time, index []byte) []byte {
	if index == nil {
		index = []byte{}
	}
	return e.appendAction(dst, m, now, index)
}

// AppendIndex appends m's index name, JSON-escaped, as AppendAction would
// write it. It does not allocate when dst has room.
func (e *Encoder) AppendIndex(dst []byte, m *engine.Metric, now time.Time) []byte {
	return e.appendIndex(dst, m, millis(m, now))
}

// millis is m's timestamp, or now when it has none.
func millis(m *engine.Metric, now time.Time) int64 {
	if m.Timestamp != 0 {
		return m.Timestamp
	}
	return now.UnixMilli()
}

// appendAction writes the action for m with index as its _index, or m's
// own index name when index is nil.
func (e *Encoder) appendAction(dst []byte, m *engine.Metric, now time.Time, index []byte) []byte {
	ms := millis(m, now)
	e.doc = e.appendDocument(e.doc[:0], m, ms)

	e.hash = append(append(e.hash[:0], uuid.NameSpaceDNS[:]...), e.doc...)
	sum := sha1.Sum(e.hash)
	sum[6] = sum[6]&0x0f | 0x50 // version 5
	sum[8] = sum[8]&0x3f | 0x80 // RFC 4122 variant

	dst = append(dst, `{"index":{"_index":"`...)
	if index == nil {
		dst = e.appendIndex(dst, m, ms)
	} else {
		dst = append(dst, index...)
	}
	dst = append(dst, `","_id":"`...)
	dst = appendUUID(dst, sum[:16])
	dst = append(dst, "\"}}\n"...)
	dst = append(dst, e.doc...)
	return append(dst, '\n')
}

func (e *Encoder) appendDocument(dst []byte, m *engine.Metric, ms int64) []byte {
	e.keys = e.keys[:0]
	if e.timestampField != "" {
		e.keys = append(e.keys, docKey{name: e.timestampField, src: srcTimestamp})
	}
	if e.bucketField != "" {
		e.keys = append(e.keys, docKey{name: e.bucketField, src: srcBucket})
	}
	e.flat = e.flat[:0]
	for i, f := range m.Fields {
		switch f.Value.Kind {
		case engine.KindNumber, engine.KindCounter, engine.KindGaugeDelta:
			if math.IsNaN(f.Value.Num) || math.IsInf(f.Value.Num, 0) {
				continue
			}
		case engine.KindHistogram, engine.KindSummary:
			for _, ff := range e.fl.Flatten(f) {
				e.keys = append(e.keys, docKey{name: ff.Name, prio: 1, src: srcFlat, i: len(e.flat)})
				e.flat = append(e.flat, ff)
			}
			continue
		}
		e.keys = append(e.keys, docKey{name: f.Name, prio: 1, src: srcField, i: i})
	}
	for i, t := range m.Tags {
		e.keys = append(e.keys, docKey{name: t.Key, prio: 2, src: srcTag, i: i})
	}
	slices.SortFunc(e.keys, compareKeys)

	dst = append(dst, '{')
	for i, k := range e.keys {
		if i > 0 && e.keys[i-1].name == k.name {
			continue // a lower-priority member of the same name
		}
		if len(dst) > 1 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, k.name)
		dst = append(dst, ':')
		switch k.src {
		case srcTimestamp:
			dst = strconv.AppendInt(dst, ms, 10)
		case srcBucket:
			dst = appendJSONString(dst, m.Bucket)
		case srcField:
			dst = appendValue(dst, m.Fields[k.i].Value)
		case srcTag:
			dst = appendJSONString(dst, m.Tags[k.i].Value)
		case srcFlat:
			dst = appendFloat(dst, e.flat[k.i].Num)
		}
	}
	return append(dst, '}')
}

func compareKeys(a, b docKey) int {
	if c := strings.Compare(a.name, b.name); c != 0 {
		return c
	}
	return int(a.prio) - int(b.prio)
}

func appendValue(dst []byte, v engine.Value) []byte {
	switch v.Kind {
	case engine.KindNumber, engine.KindCounter, engine.KindGaugeDelta:
		return appendFloat(dst, v.Num)
	case engine.KindString:
		return appendJSONString(dst, v.Str)
	case engine.KindBool:
		return strconv.AppendBool(dst, v.Bool)
	}
	return append(dst, "null"...)
}

// appendIndex writes the JSON-escaped index name for m.
func (e *Encoder) appendIndex(dst []byte, m *engine.Metric, ms int64) []byte {
	if e.indexName == "" {
		return appendJSONChars(dst, m.Bucket)
	}
	if strings.IndexByte(e.indexName, '%') < 0 {
		return appendJSONChars(dst, e.indexName)
	}
	t := time.UnixMilli(ms).UTC()
	p := e.indexName
	for i := 0; i < len(p); i++ {
		if p[i] != '%' || i+1 == len(p) {
			dst = appendJSONChars(dst, p[i:i+1])
			continue
		}
		i++
		switch p[i] {
		case 'Y':
			dst = appendInt(dst, t.Year(), 4)
		case 'y':
			dst = appendInt(dst, t.Year()%100, 2)
		case 'm':
			dst = appendInt(dst, int(t.Month()), 2)
		case 'd':
			dst = appendInt(dst, t.Day(), 2)
		case 'H':
			dst = appendInt(dst, t.Hour(), 2)
		case 'M':
			dst = appendInt(dst, t.Minute(), 2)
		case 'S':
			dst = appendInt(dst, t.Second(), 2)
		case 'j':
			dst = appendInt(dst, t.YearDay(), 3)
		case '%':
			dst = append(dst, '%')
		default: // not a directive: keep it as written
			dst = appendJSONChars(dst, p[i-1:i+1])
		}
	}
	return dst
}

// appendInt writes n zero-padded to width digits.
func appendInt(dst []byte, n, width int) []byte {
	var b [20]byte
	s := strconv.AppendInt(b[:0], int64(n), 10)
	for range width - len(s) {
		dst = append(dst, '0')
	}
	return append(dst, s...)
}

func appendUUID(dst []byte, u []byte) []byte {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:16])
	return append(dst, b[:]...)
}

func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = appendJSONChars(dst, s)
	return append(dst, '"')
}

// appendJSONChars writes s escaped for the inside of a JSON string; invalid
// UTF-8 becomes U+FFFD, as encoding/json does.
func appendJSONChars(dst []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, `\n`...)
			case c == '\r':
				dst = append(dst, `\r`...)
			case c == '\t':
				dst = append(dst, `\t`...)
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return dst
}

// appendFloat writes f the way encoding/json does: plain decimals, with an
// exponent only for very large or very small magnitudes.
func appendFloat(dst []byte, f float64) []byte {
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		return strconv.AppendFloat(dst, f, 'e', -1, 64)
	}
	return strconv.AppendFloat(dst, f, 'f', -1, 64)
}
