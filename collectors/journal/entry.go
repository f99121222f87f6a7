package journal

import (
	"strconv"
	"strings"
	"unicode"

	"github.com/valyala/fastjson"

	"github.com/bucky3/bucky3/engine"
)

// level is a severity as SPEC §8 names it. Lower is more severe, as with
// syslog priorities, so "at or above journal_log_level" is l <= threshold.
type level uint8

const (
	levelCritical level = iota
	levelError
	levelWarning
	levelInfo
	levelDebug
)

var levelNames = [...]string{"critical", "error", "warning", "info", "debug"}

func (l level) String() string { return levelNames[l] }

func levelByName(name string) (level, bool) {
	for i, n := range levelNames {
		if n == name {
			return level(i), true
		}
	}
	return 0, false
}

// priorityLevels maps a syslog PRIORITY to a level: emerg, alert and crit
// are critical, notice and info are info.
var priorityLevels = [8]level{
	levelCritical, levelCritical, levelCritical, levelError,
	levelWarning, levelInfo, levelInfo, levelDebug,
}

// levelOfPriority maps a PRIORITY field. An entry without a valid one is
// info, journald's default priority for everything it receives.
func levelOfPriority(p string) level {
	if len(p) == 1 && p[0] >= '0' && p[0] <= '7' {
		return priorityLevels[p[0]-'0']
	}
	return levelInfo
}

// facilityNames are the syslog facilities by SYSLOG_FACILITY number
// (RFC 5424 §6.2.1), under the names syslog(3) uses, kern spelled out.
var facilityNames = [...]string{
	"kernel", "user", "mail", "daemon", "auth", "syslog", "lpr", "news",
	"uucp", "cron", "authpriv", "ftp", "ntp", "security", "console", "clock",
	"local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
}

// facilityName names a SYSLOG_FACILITY value: "" when there is none, the
// number itself when it is outside the table.
func facilityName(f string) string {
	if f == "" {
		return ""
	}
	if n, err := strconv.Atoi(f); err == nil && n >= 0 && n < len(facilityNames) {
		return facilityNames[n]
	}
	return f
}

// origin identifies where an entry comes from. Entries of one origin form
// one stream for the stitcher: SPEC §8 keys streams on boot, uid, gid,
// pid, command, unit and container; host and machine only split further.
type origin struct {
	bootID, machineID, host string
	pid, uid, gid           string
	command, unit           string
	containerName           string
	containerID             string
}

// entry is one journal entry reduced to what the module emits, or a
// stitched trace of several. The stitcher works on entries only, so it
// can be tested without a journal.
type entry struct {
	origin  origin
	message string
	// time is the event time in milliseconds since the epoch.
	time     int64
	level    level
	facility string
	// lines is how many journal entries were stitched into this one.
	lines int
}

// entryFromFields maps the fields of a journal entry, as sdjournal
// returns them, to an entry. realtimeUsec is the entry's own realtime
// timestamp, the fallback when the sender gave no source timestamp.
func entryFromFields(f map[string]string, realtimeUsec uint64) entry {
	e := entry{
		origin: origin{
			bootID:        f["_BOOT_ID"],
			machineID:     f["_MACHINE_ID"],
			host:          f["_HOSTNAME"],
			pid:           f["_PID"],
			uid:           f["_UID"],
			gid:           f["_GID"],
			command:       f["_EXE"],
			unit:          f["_SYSTEMD_UNIT"],
			containerName: f["CONTAINER_NAME"],
			containerID:   f["CONTAINER_ID_FULL"],
		},
		message:  strings.TrimRightFunc(f["MESSAGE"], unicode.IsSpace),
		time:     int64(realtimeUsec / 1000),
		level:    levelOfPriority(f["PRIORITY"]),
		facility: facilityName(f["SYSLOG_FACILITY"]),
		lines:    1,
	}
	// The Docker journald driver writes CONTAINER_ID (12 hex digits) and
	// CONTAINER_ID_FULL; other senders may only have the short one.
	if e.origin.containerID == "" {
		e.origin.containerID = f["CONTAINER_ID"]
	}
	if us, err := strconv.ParseUint(f["_SOURCE_REALTIME_TIMESTAMP"], 10, 64); err == nil && us > 0 {
		e.time = int64(us / 1000)
	}
	return e
}

// mapper turns entries into metrics. It keeps a JSON parser for
// decode_json, so it must not be shared between goroutines.
type mapper struct {
	bucket        string
	levelField    string
	facilityField string
	decodeJSON    bool
	// jsonLevel lets a JSON key named levelField replace the level taken
	// from PRIORITY; without it the key is kept as json_<name>.
	jsonLevel bool
	json      fastjson.Parser
}

// trustedFields are the fields appendMetric takes from journald's trusted
// "_" fields, which journald sets from the sending process's credentials
// and which a sender cannot forge. A JSON message must not replace them:
// decode_json keeps such keys as json_<key>.
var trustedFields = [...]string{"command", "host", "machine_id", "boot_id", "pid", "uid", "gid", "systemd_unit"}

// appendMetric appends the metric of e to dst. An entry whose message is
// empty once right-trimmed yields nothing; ok reports whether a metric
// was appended.
func (m *mapper) appendMetric(dst []engine.Metric, e *entry) (_ []engine.Metric, ok bool) {
	msg := strings.TrimRightFunc(e.message, unicode.IsSpace)
	if msg == "" {
		return dst, false
	}
	fields := make([]engine.Field, 0, 14)
	fields = append(fields, engine.Field{Name: "message", Value: engine.String(msg)})
	fields = append(fields, engine.Field{Name: m.levelField, Value: engine.String(e.level.String())})
	if m.facilityField != "" && e.facility != "" {
		fields = append(fields, engine.Field{Name: m.facilityField, Value: engine.String(e.facility)})
	}
	o := &e.origin
	fields = appendString(fields, "command", o.command)
	fields = appendString(fields, "host", o.host)
	fields = appendString(fields, "machine_id", o.machineID)
	fields = appendString(fields, "boot_id", o.bootID)
	fields = appendNumber(fields, "pid", o.pid)
	fields = appendNumber(fields, "uid", o.uid)
	fields = appendNumber(fields, "gid", o.gid)
	fields = appendString(fields, "systemd_unit", o.unit)
	fields = appendString(fields, "container_name", o.containerName)
	fields = appendString(fields, "container_id", o.containerID)
	// A stitched trace is many lines, never one JSON object.
	if m.decodeJSON && e.lines <= 1 {
		fields = m.mergeJSON(fields, msg)
	}
	return append(dst, engine.Metric{Bucket: m.bucket, Fields: fields, Timestamp: e.time}), true
}

func appendString(fields []engine.Field, name, v string) []engine.Field {
	if v == "" {
		return fields
	}
	return append(fields, engine.Field{Name: name, Value: engine.String(v)})
}

// appendNumber adds a numeric journal field; a value that is not a
// number (never written by journald) is left out rather than guessed.
func appendNumber(fields []engine.Field, name, v string) []engine.Field {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return fields
	}
	return append(fields, engine.Field{Name: name, Value: engine.Number(float64(n))})
}

// mergeJSON merges msg into fields when it is a flat, non-empty JSON
// object: its keys replace fields of the same name, except the trusted
// fields and (without json_level) the level, which are kept as
// json_<key>; and the raw message goes away (its content is in the fields
// now) unless the object has a message key of its own. Anything else
// leaves fields as they are.
func (m *mapper) mergeJSON(fields []engine.Field, msg string) []engine.Field {
	if msg[0] != '{' {
		return fields
	}
	v, err := m.json.Parse(msg)
	if err != nil {
		return fields
	}
	obj, err := v.Object()
	if err != nil || obj.Len() == 0 {
		return fields
	}
	flat := true
	obj.Visit(func(_ []byte, v *fastjson.Value) {
		if t := v.Type(); t == fastjson.TypeObject || t == fastjson.TypeArray {
			flat = false
		}
	})
	if !flat {
		return fields
	}
	fields = fields[1:] // the raw message
	obj.Visit(func(k []byte, v *fastjson.Value) {
		if len(k) == 0 {
			return
		}
		var val engine.Value
		switch v.Type() {
		case fastjson.TypeString:
			val = engine.String(string(v.GetStringBytes()))
		case fastjson.TypeNumber:
			val = engine.Number(v.GetFloat64())
		case fastjson.TypeTrue:
			val = engine.Bool(true)
		case fastjson.TypeFalse:
			val = engine.Bool(false)
		}
		fields = setField(fields, m.jsonName(k), val)
	})
	return fields
}

// jsonName is the field name of JSON key k.
func (m *mapper) jsonName(k []byte) string {
	name := string(k)
	if name == m.levelField {
		if m.jsonLevel {
			return name
		}
		return "json_" + name
	}
	for _, t := range trustedFields {
		if name == t {
			return "json_" + name
		}
	}
	return name
}

func setField(fields []engine.Field, name string, v engine.Value) []engine.Field {
	for i := range fields {
		if fields[i].Name == name {
			fields[i].Value = v
			return fields
		}
	}
	return append(fields, engine.Field{Name: name, Value: v})
}
