package journal

import (
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
	f(func(o *Options) { o.FlushInterval = 0 }, "flush_interval")
}

// The module registers as cmd/bucky3 will register it.
var _ = engine.SourceType("systemd_journal", DefaultOptions, New)
