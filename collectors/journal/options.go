package journal

import (
	"fmt"

	"github.com/bucky3/bucky3/engine"
)

// Options configures a systemd_journal module. The zero value is not
// useful: start from DefaultOptions.
type Options struct {
	engine.SourceOptions
	// JournalPath reads journal files instead of the local journal: one
	// directory, or a list of .journal files. The this-boot/this-machine
	// filter is not applied to them (an exported journal comes from
	// another boot or machine by nature).
	JournalPath []string `toml:"journal_path"`
	// TimestampWindow is how far back, in seconds, reading starts.
	TimestampWindow float64 `toml:"timestamp_window"`
	// JournalLogLevel is the least severe level emitted: critical, error,
	// warning, info or debug.
	JournalLogLevel string `toml:"journal_log_level"`
	// JournalBucket is the bucket of every event.
	JournalBucket string `toml:"journal_bucket"`
	// LevelFieldName names the level field.
	LevelFieldName string `toml:"level_field_name"`
	// FacilityFieldName names the facility field; empty leaves it out.
	FacilityFieldName string `toml:"facility_field_name"`
	// TraceLogLevel, when set, is the level of every stitched trace;
	// empty keeps the most severe level among the trace's lines.
	TraceLogLevel string `toml:"trace_log_level"`
	// DecodeJSON merges a message that is a flat JSON object into the
	// event's fields.
	DecodeJSON bool `toml:"decode_json"`
	// JSONLevel lets a decoded JSON key named level_field_name replace the
	// level taken from PRIORITY; false keeps it as json_<name>.
	JSONLevel bool `toml:"json_level"`
}

// DefaultOptions returns the defaults of SPEC §8: the local journal from
// 60 s back, info and above, bucket logs, fields level and facility, no
// JSON decoding, and the source defaults (flush_interval 10 s).
func DefaultOptions() Options {
	return Options{
		SourceOptions:     engine.DefaultSourceOptions(),
		TimestampWindow:   60,
		JournalLogLevel:   "info",
		JournalBucket:     "logs",
		LevelFieldName:    "level",
		FacilityFieldName: "facility",
	}
}

// Validate checks the options of this module type, naming the first bad
// one. The engine's registry calls it after checking the common options;
// New trusts options that passed it.
func (o *Options) Validate() error {
	// 0 is valid: reading starts at the end of the journal.
	if o.TimestampWindow != 0 {
		if err := engine.CheckSeconds("timestamp_window", o.TimestampWindow, 0); err != nil {
			return err
		}
	}
	if _, ok := levelByName(o.JournalLogLevel); !ok {
		return fmt.Errorf("journal_log_level: must be critical, error, warning, info or debug, got %q", o.JournalLogLevel)
	}
	if o.TraceLogLevel != "" {
		if _, ok := levelByName(o.TraceLogLevel); !ok {
			return fmt.Errorf("trace_log_level: must be empty, critical, error, warning, info or debug, got %q", o.TraceLogLevel)
		}
	}
	if o.JournalBucket == "" {
		return fmt.Errorf("journal_bucket: must not be empty")
	}
	if o.LevelFieldName == "" {
		return fmt.Errorf("level_field_name: must not be empty")
	}
	for i, p := range o.JournalPath {
		if p == "" {
			return fmt.Errorf("journal_path: entry %d is empty", i)
		}
	}
	return nil
}
