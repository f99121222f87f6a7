package journal

import (
	"math"
	"strings"
	"testing"

	"github.com/bucky3/bucky3/engine"
)

func TestOptions_Validate(t *testing.T) {
	o := DefaultOptions()
	if err := o.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	f := func(change func(o *Options), option string) {
		t.Helper()
		o := DefaultOptions()
		change(&o)
		err := o.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), option+":") {
			t.Errorf("got %v, want an error naming %s", err, option)
		}
	}
	f(func(o *Options) { o.TimestampWindow = -1 }, "timestamp_window")
	f(func(o *Options) { o.JournalLogLevel = "notice" }, "journal_log_level")
	f(func(o *Options) { o.TraceLogLevel = "warn" }, "trace_log_level")
	f(func(o *Options) { o.JournalBucket = "" }, "journal_bucket")
	f(func(o *Options) { o.LevelFieldName = "" }, "level_field_name")
	f(func(o *Options) { o.JournalPath = []string{""} }, "journal_path")
	f(func(o *Options) { o.TimestampWindow = math.NaN() }, "timestamp_window")
	f(func(o *Options) { o.TimestampWindow = math.Inf(1) }, "timestamp_window")
	// 0 starts at the end of the journal.
	o.TimestampWindow = 0
	if err := o.Validate(); err != nil {
		t.Errorf("timestamp_window = 0: %v", err)
	}
}

// TestOptions_Config parses configurations the way the agent does: bad
// options are refused, naming the option, before New is ever called (New
// would fail anyway in a build without cgo).
func TestOptions_Config(t *testing.T) {
	types := []engine.Type{engine.SourceType("systemd_journal", DefaultOptions, New)}
	f := func(options, wantErr string) {
		t.Helper()
		doc := "[j]\nmodule_type = \"systemd_journal\"\n" + options
		_, err := engine.Parse([]byte(doc), types, func(string) (string, bool) { return "", false })
		switch {
		case wantErr == "" && err != nil:
			t.Errorf("%s: unexpected error %v", options, err)
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr+":")):
			t.Errorf("%s: error %v, want one naming %s", options, err, wantErr)
		}
	}
	f("", "")
	f("flush_interval = 0\n", "flush_interval")
	f("timestamp_window = -1\n", "timestamp_window")
	f("journal_log_level = \"notice\"\n", "journal_log_level")
	f("journal_path = [\"\"]\n", "journal_path")
}
