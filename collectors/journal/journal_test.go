//go:build cgo && linux && sdjournal

package journal

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/engine/enginetest"
	"github.com/bucky3/bucky3/internal/backendtest"
)

// running is a Source whose Run goroutine a test controls.
type running struct {
	rec   *enginetest.Recorder
	stats *engine.Stats
	stop  func() // cancels Run and fails the test unless it returns nil
}

func run(t *testing.T, o Options) *running {
	t.Helper()
	stats := engine.NewStats()
	s, err := New(engine.Module{Name: "journal", Type: "systemd_journal", Log: slog.New(slog.DiscardHandler), Stats: stats}, o)
	if err != nil {
		t.Fatal(err)
	}
	return runSource(t, s, stats)
}

// runSource runs s until the test stops it.
func runSource(t *testing.T, s *Source, stats *engine.Stats) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	rec := &enginetest.Recorder{}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, rec) }()
	stopped := false
	stop := func() {
		t.Helper()
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
	}
	t.Cleanup(stop)
	return &running{rec: rec, stats: stats, stop: stop}
}

// testOptions reads file, flushing often.
func testOptions(file string) Options {
	o := DefaultOptions()
	o.JournalPath = []string{file}
	o.RandomizeStartup = false
	o.FlushInterval = 0.05
	return o
}

func messages(ms []engine.Metric) []string {
	var out []string
	for _, m := range ms {
		v, _ := m.Field("message")
		out = append(out, v.Str)
	}
	return out
}

// usec returns t as a journal timestamp.
func usec(t time.Time) string { return strconv.FormatInt(t.UnixMicro(), 10) }

func newJournal(t *testing.T) string {
	return filepath.Join(t.TempDir(), "test.journal")
}

func TestJournal_Fields(t *testing.T) {
	t.Parallel()
	file := newJournal(t)
	now := time.Now()
	src := now.Add(-3 * time.Second)
	backendtest.WriteJournal(t, file, []map[string]string{{
		"__REALTIME_TIMESTAMP":       usec(now),
		"_SOURCE_REALTIME_TIMESTAMP": usec(src),
		"MESSAGE":                    "started the thing  \t",
		"PRIORITY":                   "5",
		"SYSLOG_FACILITY":            "3",
		"_EXE":                       "/usr/bin/thing",
		"_HOSTNAME":                  "web-1",
		"_MACHINE_ID":                "0123456789abcdef0123456789abcdef",
		"_BOOT_ID":                   "fedcba9876543210fedcba9876543210",
		"_PID":                       "4242",
		"_UID":                       "1000",
		"_GID":                       "1001",
		"_SYSTEMD_UNIT":              "thing.service",
	}, {
		// The Docker journald log driver.
		"__REALTIME_TIMESTAMP": usec(now),
		"MESSAGE":              "from a container",
		"PRIORITY":             "3",
		"SYSLOG_FACILITY":      "4",
		"CONTAINER_NAME":       "web",
		"CONTAINER_ID":         "0123456789ab",
		"CONTAINER_ID_FULL":    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"CONTAINER_TAG":        "0123456789ab",
		"_EXE":                 "/usr/bin/dockerd",
	}, {
		// Only the short ID, an unknown facility, no priority.
		"__REALTIME_TIMESTAMP": usec(now),
		"MESSAGE":              "short id",
		"SYSLOG_FACILITY":      "99",
		"CONTAINER_ID":         "0123456789ab",
	}, {
		"__REALTIME_TIMESTAMP": usec(now),
		"MESSAGE":              " \t ",
	}})
	r := run(t, testOptions(file))
	ms := r.rec.WaitFor(t, 3, 20*time.Second)
	r.stop()

	want := []string{
		`logs ts=` + strconv.FormatInt(src.UnixMilli(), 10) + ` message="started the thing" level="info" facility="daemon" command="/usr/bin/thing" host="web-1" machine_id="0123456789abcdef0123456789abcdef" boot_id="fedcba9876543210fedcba9876543210" pid=4242 uid=1000 gid=1001 systemd_unit="thing.service"`,
		`logs ts=` + strconv.FormatInt(now.UnixMilli(), 10) + ` message="from a container" level="error" facility="auth" command="/usr/bin/dockerd" container_name="web" container_id="0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"`,
		`logs ts=` + strconv.FormatInt(now.UnixMilli(), 10) + ` message="short id" level="info" facility="99" container_id="0123456789ab"`,
	}
	got := render(ms)
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	f := func(name string, want uint64) {
		t.Helper()
		if got := r.stats.Counter(name).Load(); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
	f("entries_read", 4)
	f("entries_skipped", 1)
	f("entries_skipped_empty", 1)
}

// render writes metrics one per line: bucket, timestamp, fields in order.
func render(ms []engine.Metric) []string {
	var out []string
	for _, m := range ms {
		var b strings.Builder
		fmt.Fprintf(&b, "%s ts=%d", m.Bucket, m.Timestamp)
		for _, f := range m.Fields {
			fmt.Fprintf(&b, " %s=%s", f.Name, f.Value)
		}
		for _, t := range m.Tags {
			fmt.Fprintf(&b, " #%s=%s", t.Key, t.Value)
		}
		out = append(out, b.String())
	}
	return out
}

func TestJournal_Levels(t *testing.T) {
	t.Parallel()
	file := newJournal(t)
	var entries []map[string]string
	for p := range 8 {
		entries = append(entries, map[string]string{"MESSAGE": "p" + strconv.Itoa(p), "PRIORITY": strconv.Itoa(p)})
	}
	entries = append(entries, map[string]string{"MESSAGE": "no priority"})
	backendtest.WriteJournal(t, file, entries)

	f := func(threshold string, want ...string) {
		t.Helper()
		o := testOptions(file)
		o.JournalLogLevel = threshold
		o.LevelFieldName = "severity"
		o.FacilityFieldName = ""
		r := run(t, o)
		ms := r.rec.WaitFor(t, len(want), 20*time.Second)
		r.stop()
		var got []string
		for _, m := range r.rec.Metrics() {
			msg, _ := m.Field("message")
			lvl, _ := m.Field("severity")
			got = append(got, msg.Str+":"+lvl.Str)
			if _, ok := m.Field("level"); ok {
				t.Errorf("%s: level field present although renamed", msg.Str)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("journal_log_level %s: got %v, want %v", threshold, got, want)
		}
		if skipped := r.stats.Counter("entries_skipped_level").Load(); int(skipped) != 9-len(ms) {
			t.Errorf("journal_log_level %s: entries_skipped_level = %d, want %d", threshold, skipped, 9-len(ms))
		}
	}
	f("critical", "p0:critical", "p1:critical", "p2:critical")
	f("warning", "p0:critical", "p1:critical", "p2:critical", "p3:error", "p4:warning")
	f("debug", "p0:critical", "p1:critical", "p2:critical", "p3:error", "p4:warning",
		"p5:info", "p6:info", "p7:debug", "no priority:info")
}

func TestJournal_DecodeJSON(t *testing.T) {
	t.Parallel()
	file := newJournal(t)
	backendtest.WriteJournal(t, file, []map[string]string{
		{"MESSAGE": `{"msg":"hi","n":3,"ok":true,"x":null,"host":"override"}`, "_HOSTNAME": "web-1"},
		{"MESSAGE": `{"message":"own message","level":"warn"}`},
		{"MESSAGE": `{"nested":{"a":1}}`},
		{"MESSAGE": `{"broken":`},
		{"MESSAGE": `["not","an","object"]`},
	})
	o := testOptions(file)
	o.DecodeJSON = true
	o.FacilityFieldName = ""
	r := run(t, o)
	ms := r.rec.WaitFor(t, 5, 20*time.Second)
	r.stop()
	for i := range ms {
		ms[i].Timestamp = 0
	}
	want := []string{
		`logs ts=0 level="info" host="web-1" msg="hi" n=3 ok=true x=null json_host="override"`,
		`logs ts=0 level="info" message="own message" json_level="warn"`,
		`logs ts=0 message="{\"nested\":{\"a\":1}}" level="info"`,
		`logs ts=0 message="{\"broken\":" level="info"`,
		`logs ts=0 message="[\"not\",\"an\",\"object\"]" level="info"`,
	}
	if got := render(ms); !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestJournal_DecodeJSON_Trusted writes entries whose JSON messages claim
// the fields journald derives from the sender's credentials: those keep
// journald's values, and the sender's claims are kept as json_<key>. The
// JSON level replaces PRIORITY's only with json_level.
func TestJournal_DecodeJSON_Trusted(t *testing.T) {
	t.Parallel()
	file := newJournal(t)
	spoof := `{"msg":"root login","level":"debug","pid":1,"uid":0,"gid":0,"command":"/usr/sbin/sshd",` +
		`"host":"bastion","machine_id":"ffff","boot_id":"eeee","systemd_unit":"sshd.service"}`
	backendtest.WriteJournal(t, file, []map[string]string{{
		"MESSAGE":       spoof,
		"PRIORITY":      "4",
		"_PID":          "4242",
		"_UID":          "1000",
		"_GID":          "1000",
		"_EXE":          "/usr/bin/python3",
		"_HOSTNAME":     "web-1",
		"_MACHINE_ID":   "0123456789abcdef0123456789abcdef",
		"_BOOT_ID":      "fedcba9876543210fedcba9876543210",
		"_SYSTEMD_UNIT": "app.service",
	}, {
		// No trusted fields at all: the JSON still cannot supply them.
		"MESSAGE": `{"msg":"no credentials","uid":0,"systemd_unit":"sshd.service"}`,
	}})
	f := func(jsonLevel bool, want ...string) {
		t.Helper()
		o := testOptions(file)
		o.DecodeJSON = true
		o.JSONLevel = jsonLevel
		o.FacilityFieldName = ""
		r := run(t, o)
		ms := r.rec.WaitFor(t, 2, 20*time.Second)
		r.stop()
		for i := range ms {
			ms[i].Timestamp = 0
		}
		if got := render(ms); !slices.Equal(got, want) {
			t.Errorf("json_level %v: got\n%s\nwant\n%s", jsonLevel, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	trusted := `command="/usr/bin/python3" host="web-1" machine_id="0123456789abcdef0123456789abcdef" boot_id="fedcba9876543210fedcba9876543210" pid=4242 uid=1000 gid=1000 systemd_unit="app.service"`
	claims := `json_pid=1 json_uid=0 json_gid=0 json_command="/usr/sbin/sshd" json_host="bastion" json_machine_id="ffff" json_boot_id="eeee" json_systemd_unit="sshd.service"`
	f(false,
		`logs ts=0 level="warning" `+trusted+` msg="root login" json_level="debug" `+claims,
		`logs ts=0 level="info" msg="no credentials" json_uid=0 json_systemd_unit="sshd.service"`)
	f(true,
		`logs ts=0 level="debug" `+trusted+` msg="root login" `+claims,
		`logs ts=0 level="info" msg="no credentials" json_uid=0 json_systemd_unit="sshd.service"`)
}

// TestJournal_Trace writes a Python trace as one entry per line, the way
// journald stores a process's stderr, interleaved with another process.
func TestJournal_Trace(t *testing.T) {
	t.Parallel()
	file := newJournal(t)
	base := time.Now()
	lines := []string{
		"Traceback (most recent call last):",
		`  File "/srv/app.py", line 10, in <module>`,
		"    main()",
		`  File "/srv/app.py", line 6, in main`,
		`    raise ValueError("bad value")`,
		"ValueError: bad value",
	}
	var entries []map[string]string
	for i, l := range lines {
		entries = append(entries, map[string]string{
			"__REALTIME_TIMESTAMP": usec(base.Add(time.Duration(i) * time.Millisecond)),
			"MESSAGE":              l, "PRIORITY": "3", "_PID": "10", "_EXE": "/usr/bin/python3",
		}, map[string]string{
			"__REALTIME_TIMESTAMP": usec(base.Add(time.Duration(i) * time.Millisecond)),
			"MESSAGE":              "other " + strconv.Itoa(i), "PRIORITY": "6", "_PID": "11", "_EXE": "/usr/bin/python3",
		})
	}
	backendtest.WriteJournal(t, file, entries)
	o := testOptions(file)
	o.TraceLogLevel = "critical"
	r := run(t, o)
	ms := r.rec.WaitFor(t, 7, 20*time.Second)
	r.stop()
	got := messages(ms)
	want := []string{"other 0", "other 1", "other 2", "other 3", "other 4", "other 5", strings.Join(lines, "\n")}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	trace := ms[6]
	if v, _ := trace.Field("level"); v.Str != "critical" {
		t.Errorf("trace level: got %v, want critical (trace_log_level)", v)
	}
	if v, _ := trace.Field("pid"); v.Num != 10 {
		t.Errorf("trace pid: got %v, want 10", v)
	}
	if trace.Timestamp != base.UnixMilli() {
		t.Errorf("trace timestamp: got %d, want the first line's %d", trace.Timestamp, base.UnixMilli())
	}
	if n := r.stats.Counter("traces_stitched").Load(); n != 1 {
		t.Errorf("traces_stitched = %d, want 1", n)
	}
}

// TestJournal_Follow appends to the journal while the module runs.
func TestJournal_Follow(t *testing.T) {
	t.Parallel()
	file := newJournal(t)
	backendtest.WriteJournal(t, file, []map[string]string{{"MESSAGE": "before"}})
	r := run(t, testOptions(file))
	r.rec.WaitFor(t, 1, 20*time.Second)
	backendtest.WriteJournal(t, file, []map[string]string{{"MESSAGE": "after 1"}, {"MESSAGE": "after 2"}})
	ms := r.rec.WaitFor(t, 3, 20*time.Second)
	if got, want := messages(ms), []string{"before", "after 1", "after 2"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestJournal_FinalFlush cancels the module while a trace is in progress
// and a batch is pending: both come out before Run returns.
func TestJournal_FinalFlush(t *testing.T) {
	t.Parallel()
	file := newJournal(t)
	backendtest.WriteJournal(t, file, []map[string]string{
		{"MESSAGE": "plain"},
		{"MESSAGE": "Exception in thread \"main\" java.lang.IllegalStateException: boom"},
		{"MESSAGE": "\tat com.example.App.main(App.java:10)"},
	})
	o := testOptions(file)
	o.FlushInterval = 3600
	r := run(t, o)
	deadline := time.Now().Add(20 * time.Second)
	for r.stats.Counter("entries_read").Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatal("the module did not read the entries")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if ms := r.rec.Metrics(); len(ms) != 0 {
		t.Fatalf("emitted before the flush interval: %q", messages(ms))
	}
	r.stop()
	want := []string{"plain", "Exception in thread \"main\" java.lang.IllegalStateException: boom\n\tat com.example.App.main(App.java:10)"}
	if got := messages(r.rec.Metrics()); !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestJournal_Window(t *testing.T) {
	t.Parallel()
	file := newJournal(t)
	now := time.Now()
	backendtest.WriteJournal(t, file, []map[string]string{
		{"__REALTIME_TIMESTAMP": usec(now.Add(-time.Hour)), "MESSAGE": "an hour ago"},
		{"__REALTIME_TIMESTAMP": usec(now.Add(-time.Minute)), "MESSAGE": "a minute ago"},
		{"__REALTIME_TIMESTAMP": usec(now), "MESSAGE": "now"},
	})
	o := testOptions(file)
	o.TimestampWindow = 120
	r := run(t, o)
	ms := r.rec.WaitFor(t, 2, 20*time.Second)
	r.stop()
	if got, want := messages(ms), []string{"a minute ago", "now"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestJournalID(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := journalID(in); got != want {
			t.Errorf("journalID(%q) = %q, want %q", in, got, want)
		}
	}
	f("3f1c2b9e-6d1a-4c1e-9b1e-0a1b2c3d4e5f\n", "3f1c2b9e6d1a4c1e9b1e0a1b2c3d4e5f")
	f("3F1C2B9E6D1A4C1E9B1E0A1B2C3D4E5F\n", "3f1c2b9e6d1a4c1e9b1e0a1b2c3d4e5f")
}

// TestJournal_Resume runs the same Source twice, as the supervisor does
// after a failure: the second Run starts after the last entry the first
// one read, not timestamp_window seconds back.
func TestJournal_Resume(t *testing.T) {
	t.Parallel()
	file := newJournal(t)
	backendtest.WriteJournal(t, file, []map[string]string{{"MESSAGE": "one"}, {"MESSAGE": "two"}})
	stats := engine.NewStats()
	s, err := New(engine.Module{Name: "journal", Log: slog.New(slog.DiscardHandler), Stats: stats}, testOptions(file))
	if err != nil {
		t.Fatal(err)
	}
	r := runSource(t, s, stats)
	r.rec.WaitFor(t, 2, 20*time.Second)
	r.stop()
	backendtest.WriteJournal(t, file, []map[string]string{{"MESSAGE": "three"}})
	r = runSource(t, s, stats)
	ms := r.rec.WaitFor(t, 1, 20*time.Second)
	r.stop()
	if got, want := messages(ms), []string{"three"}; !slices.Equal(got, want) {
		t.Errorf("second run: got %q, want %q", got, want)
	}
}

// TestJournal_BatchBound reads a backlog larger than a batch: it comes out
// in batches of at most maxBatch, without waiting for the flush interval.
func TestJournal_BatchBound(t *testing.T) {
	t.Parallel()
	file := newJournal(t)
	var entries []map[string]string
	for i := range 2*maxBatch + 10 {
		entries = append(entries, map[string]string{"MESSAGE": "m" + strconv.Itoa(i)})
	}
	backendtest.WriteJournal(t, file, entries)
	o := testOptions(file)
	o.FlushInterval = 3600
	r := run(t, o)
	r.rec.WaitFor(t, 2*maxBatch, 20*time.Second)
	r.stop()
	var sizes []int
	for _, b := range r.rec.Batches() {
		sizes = append(sizes, len(b.Metrics))
	}
	if want := []int{maxBatch, maxBatch, 10}; !slices.Equal(sizes, want) {
		t.Errorf("batch sizes %v, want %v", sizes, want)
	}
}
