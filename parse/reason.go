package parse

import "errors"

// Reason is why a line was rejected. Its String is the snake_case suffix of
// the self-report counter (lines_invalid_<reason>).
type Reason uint8

// The rejection reasons shared by the StatsD and JSON parsers.
const (
	ReasonBadLine              Reason = iota // no ':' after the name
	ReasonBadName                            // name breaks the name rule
	ReasonBadValue                           // not a finite decimal number, or an empty set member
	ReasonBadType                            // missing or unknown type
	ReasonBadRate                            // rate not a number in (0, 1]
	ReasonBadTag                             // empty tag in the middle, or a bad tag key
	ReasonTooManyTags                        // more than MaxTags tags
	ReasonBadBucket                          // bucket tag value breaks the name rule
	ReasonBadTimestamp                       // timestamp not a number
	ReasonTimestampOutOfWindow               // timestamp further than TimestampWindow from now
	ReasonBadUTF8                            // invalid UTF-8 in a name, tag, set member or JSON string
	ReasonBadJSON                            // not JSON, or more than one value on the line
	ReasonNotObject                          // JSON value is not an object
	ReasonNested                             // object holds an object or array
	ReasonEmpty                              // object holds no field besides timestamp
	ReasonNameTooLong                        // name longer than MaxNameLength
	ReasonTagTooLong                         // tag key and value longer than MaxTagLength
	ReasonTooManyValues                      // more packed values than MaxValuesPerLine
	ReasonTooManyFields                      // more fields than MaxFields
	ReasonKeyTooLong                         // JSON key longer than MaxKeyLength
	NumReasons                               // number of reasons, for arrays indexed by Reason
)

// StatsDReasons returns the reasons StatsD rejects lines for, in Reason
// order: the lines_invalid_<reason> counters of a StatsD source.
func StatsDReasons() []Reason {
	return []Reason{ReasonBadLine, ReasonBadName, ReasonBadValue, ReasonBadType, ReasonBadRate, ReasonBadTag,
		ReasonTooManyTags, ReasonBadBucket, ReasonBadTimestamp, ReasonTimestampOutOfWindow, ReasonBadUTF8,
		ReasonNameTooLong, ReasonTagTooLong, ReasonTooManyValues}
}

// JSONReasons returns the reasons JSON rejects lines for, in Reason order:
// the lines_invalid_<reason> counters of a JSON source.
func JSONReasons() []Reason {
	return []Reason{ReasonBadValue, ReasonBadTimestamp, ReasonTimestampOutOfWindow, ReasonBadUTF8,
		ReasonBadJSON, ReasonNotObject, ReasonNested, ReasonEmpty, ReasonTooManyFields, ReasonKeyTooLong}
}

// The sentinel errors of the parsers, one per Reason.
var (
	ErrBadLine              = errors.New("parse: missing value separator")
	ErrBadName              = errors.New("parse: bad name")
	ErrBadValue             = errors.New("parse: bad value")
	ErrBadType              = errors.New("parse: bad type")
	ErrBadRate              = errors.New("parse: bad sample rate")
	ErrBadTag               = errors.New("parse: bad tag")
	ErrTooManyTags          = errors.New("parse: too many tags")
	ErrBadBucket            = errors.New("parse: bad bucket")
	ErrBadTimestamp         = errors.New("parse: bad timestamp")
	ErrTimestampOutOfWindow = errors.New("parse: timestamp out of window")
	ErrBadUTF8              = errors.New("parse: invalid utf-8")
	ErrBadJSON              = errors.New("parse: bad json")
	ErrNotObject            = errors.New("parse: json value is not an object")
	ErrNested               = errors.New("parse: nested json value")
	ErrEmpty                = errors.New("parse: empty json object")
	ErrNameTooLong          = errors.New("parse: name too long")
	ErrTagTooLong           = errors.New("parse: tag too long")
	ErrTooManyValues        = errors.New("parse: too many values")
	ErrTooManyFields        = errors.New("parse: too many json fields")
	ErrKeyTooLong           = errors.New("parse: json key too long")
)

// errReasons and reasonNames are indexed by Reason.
var (
	errReasons = [NumReasons]error{
		ErrBadLine, ErrBadName, ErrBadValue, ErrBadType, ErrBadRate, ErrBadTag, ErrTooManyTags, ErrBadBucket,
		ErrBadTimestamp, ErrTimestampOutOfWindow, ErrBadUTF8, ErrBadJSON, ErrNotObject, ErrNested, ErrEmpty,
		ErrNameTooLong, ErrTagTooLong, ErrTooManyValues, ErrTooManyFields, ErrKeyTooLong}
	reasonNames = [NumReasons]string{
		"bad_line", "bad_name", "bad_value", "bad_type", "bad_rate", "bad_tag", "too_many_tags", "bad_bucket",
		"bad_timestamp", "timestamp_out_of_window", "bad_utf8", "bad_json", "not_object", "nested", "empty",
		"name_too_long", "tag_too_long", "too_many_values", "too_many_fields", "key_too_long"}
)

// ErrSkipped is returned by StatsD.ParseLine for DogStatsD events and
// service checks: they are not metrics, and not invalid either.
var ErrSkipped = errors.New("parse: event or service check skipped")

// String returns the reason's counter suffix, such as "bad_rate".
func (r Reason) String() string {
	if r >= NumReasons {
		return "unknown"
	}
	return reasonNames[r]
}

// Err returns the sentinel error of r.
func (r Reason) Err() error {
	if r >= NumReasons {
		return nil
	}
	return errReasons[r]
}

// ReasonOf returns the Reason of a sentinel error returned by a parser; ok
// is false for nil, ErrSkipped and any other error.
func ReasonOf(err error) (r Reason, ok bool) {
	for i, e := range errReasons {
		if err == e {
			return Reason(i), true
		}
	}
	return 0, false
}
