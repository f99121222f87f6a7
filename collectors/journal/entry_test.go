package journal

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/bucky3/bucky3/engine"
)

func TestLevelOfPriority(t *testing.T) {
	f := func(p string, want level) {
		t.Helper()
		if got := levelOfPriority(p); got != want {
			t.Errorf("PRIORITY %q: got %v, want %v", p, got, want)
		}
	}
	f("0", levelCritical)
	f("1", levelCritical)
	f("2", levelCritical)
	f("3", levelError)
	f("4", levelWarning)
	f("5", levelInfo)
	f("6", levelInfo)
	f("7", levelDebug)
	f("", levelInfo)
	f("8", levelInfo)
	f("03", levelInfo)
}

func TestFacilityName(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := facilityName(in); got != want {
			t.Errorf("SYSLOG_FACILITY %q: got %q, want %q", in, got, want)
		}
	}
	f("0", "kernel")
	f("1", "user")
	f("3", "daemon")
	f("4", "auth")
	f("10", "authpriv")
	f("16", "local0")
	f("23", "local7")
	f("24", "24")
	f("x", "x")
	f("", "")
}

func TestEntryFromFields(t *testing.T) {
	f := func(fields map[string]string, want entry) {
		t.Helper()
		if got := entryFromFields(fields, 1_700_000_000_123_456); got != want {
			t.Errorf("got %+v\nwant %+v", got, want)
		}
	}
	f(map[string]string{"MESSAGE": "hi \n"}, entry{message: "hi", time: 1_700_000_000_123, level: levelInfo, lines: 1})
	f(map[string]string{"MESSAGE": "x", "_SOURCE_REALTIME_TIMESTAMP": "1600000000000999", "PRIORITY": "2", "SYSLOG_FACILITY": "0"},
		entry{message: "x", time: 1_600_000_000_000, level: levelCritical, facility: "kernel", lines: 1})
	f(map[string]string{"MESSAGE": "x", "_SOURCE_REALTIME_TIMESTAMP": "junk"}, entry{message: "x", time: 1_700_000_000_123, level: levelInfo, lines: 1})
	f(map[string]string{"CONTAINER_ID": "short", "CONTAINER_ID_FULL": "full", "CONTAINER_NAME": "web"},
		entry{origin: origin{containerID: "full", containerName: "web"}, time: 1_700_000_000_123, level: levelInfo, lines: 1})
	f(map[string]string{"CONTAINER_ID": "short"}, entry{origin: origin{containerID: "short"}, time: 1_700_000_000_123, level: levelInfo, lines: 1})
}

// fieldsString renders fields as name=value pairs in order.
func fieldsString(fs []engine.Field) string {
	var b strings.Builder
	for i, f := range fs {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%s", f.Name, f.Value)
	}
	return b.String()
}

func TestMapper(t *testing.T) {
	m := mapper{bucket: "logs", levelField: "level", facilityField: "facility", decodeJSON: true}
	f := func(e entry, want string) {
		t.Helper()
		ms, ok := m.appendMetric(nil, &e)
		got := ""
		if ok {
			got = fieldsString(ms[0].Fields)
			if ms[0].Bucket != "logs" || ms[0].Timestamp != e.time {
				t.Errorf("bucket %q timestamp %d", ms[0].Bucket, ms[0].Timestamp)
			}
		}
		if got != want {
			t.Errorf("got  %s\nwant %s", got, want)
		}
	}
	f(entry{message: "hi", level: levelWarning, facility: "user", time: 5, origin: origin{pid: "12", uid: "x"}},
		`message="hi" level="warning" facility="user" pid=12`)
	f(entry{message: " \n", level: levelInfo}, "")
	f(entry{message: "trace\n  line\n\n", level: levelError, lines: 3}, `message="trace\n  line" level="error"`)
	f(entry{message: `{"a":1,"b":"x","c":false,"":"empty key"}`, level: levelInfo},
		`level="info" a=1 b="x" c=false`)
	// Without json_level, the level stays PRIORITY's.
	f(entry{message: `{"level":"warn","message":"m"}`, level: levelInfo}, `level="info" json_level="warn" message="m"`)
	// Fields from journald's trusted fields are never replaced.
	f(entry{message: `{"pid":1,"uid":0,"gid":0,"command":"/sbin/init","host":"h","machine_id":"m","boot_id":"b","systemd_unit":"u","facility":"kernel"}`,
		level: levelInfo, facility: "user", origin: origin{pid: "12", uid: "1000", command: "/usr/bin/app"}},
		`level="info" facility="kernel" command="/usr/bin/app" pid=12 uid=1000 json_pid=1 json_uid=0 json_gid=0 json_command="/sbin/init" json_host="h" json_machine_id="m" json_boot_id="b" json_systemd_unit="u"`)
	f(entry{message: `{}`, level: levelInfo}, `message="{}" level="info"`)
	f(entry{message: `{"a":[1]}`, level: levelInfo}, `message="{\"a\":[1]}" level="info"`)
	f(entry{message: `{"a":1} trailing`, level: levelInfo}, `message="{\"a\":1} trailing" level="info"`)
	// A stitched trace is never decoded.
	f(entry{message: `{"a":1}`, level: levelInfo, lines: 2}, `message="{\"a\":1}" level="info"`)

	m = mapper{bucket: "logs", levelField: "level", decodeJSON: true, jsonLevel: true}
	f(entry{message: `{"level":"warn","message":"m"}`, level: levelInfo}, `level="warn" message="m"`)
	f(entry{message: `{"pid":1}`, level: levelInfo, origin: origin{pid: "12"}}, `level="info" pid=12 json_pid=1`)

	m = mapper{bucket: "logs", levelField: "severity"}
	f(entry{message: `{"a":1}`, level: levelDebug, facility: "user"}, `message="{\"a\":1}" severity="debug"`)
}

// FuzzDecodeJSON maps arbitrary messages with decode_json on: no panic,
// and a message is either kept as it is or fully replaced by fields.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"a":1,"b":"x","c":false,"d":null}`, `{"message":"m"}`, `{}`, `{"a":{"b":1}}`, `[1]`, `{"a":1e999}`, `{"a":"\u00e9\ud800"}`, "plain"} {
		f.Add(s)
	}
	m := mapper{bucket: "logs", levelField: "level", decodeJSON: true}
	f.Fuzz(func(t *testing.T, msg string) {
		e := entry{message: msg, lines: 1}
		ms, ok := m.appendMetric(nil, &e)
		trimmed := strings.TrimRightFunc(msg, unicode.IsSpace)
		if ok != (trimmed != "") {
			t.Fatalf("%q: metric %v", msg, ok)
		}
		if !ok {
			return
		}
		names := map[string]bool{}
		for _, fl := range ms[0].Fields {
			if fl.Name == "" || names[fl.Name] {
				t.Fatalf("%q: empty or repeated field %q: %s", msg, fl.Name, fieldsString(ms[0].Fields))
			}
			names[fl.Name] = true
		}
		if v, _ := ms[0].Field("message"); !names["message"] && !strings.HasPrefix(trimmed, "{") {
			t.Fatalf("%q: message dropped but not JSON: %v", msg, v)
		}
		if !slices.ContainsFunc(ms[0].Fields, func(fl engine.Field) bool { return fl.Name == "level" }) {
			t.Fatalf("%q: no level", msg)
		}
	})
}
