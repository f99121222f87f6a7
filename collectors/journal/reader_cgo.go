//go:build cgo && linux && sdjournal

package journal

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/sdjournal"
)

func newOpener() (opener, error) { return openJournal, nil }

// sdReader reads a journal through libsystemd.
type sdReader struct{ j *sdjournal.Journal }

// openJournal opens the local journal, filtered to this boot and this
// machine, or the files of journal_path unfiltered, and positions it
// after cursor or timestamp_window seconds back.
func openJournal(o *Options, log *slog.Logger, cursor string) (reader, error) {
	j, err := openSD(o.JournalPath)
	if err != nil {
		return nil, err
	}
	if len(o.JournalPath) == 0 {
		if err := matchLocal(j, log); err != nil {
			j.Close()
			return nil, err
		}
	}
	if cursor != "" && seekAfter(j, cursor) {
		return &sdReader{j: j}, nil
	}
	since := time.Now().Add(-time.Duration(o.TimestampWindow * float64(time.Second)))
	if err := j.SeekRealtimeUsec(uint64(since.UnixMicro())); err != nil {
		j.Close()
		return nil, err
	}
	return &sdReader{j: j}, nil
}

// seekAfter positions j on the entry at cursor, so that the next Next
// returns the one after it. It reports false when that entry is gone
// (rotated away, or another journal): the caller then falls back to the
// time window.
func seekAfter(j *sdjournal.Journal, cursor string) bool {
	if j.SeekCursor(cursor) != nil {
		return false
	}
	n, err := j.Next()
	return err == nil && n > 0 && j.TestCursor(cursor) == nil
}

func openSD(paths []string) (*sdjournal.Journal, error) {
	if len(paths) == 0 {
		return sdjournal.NewJournal()
	}
	if len(paths) == 1 {
		fi, err := os.Stat(paths[0])
		if err != nil {
			return nil, fmt.Errorf("journal_path: %w", err)
		}
		if fi.IsDir() {
			return sdjournal.NewJournalFromDir(paths[0])
		}
	}
	return sdjournal.NewJournalFromFiles(paths...)
}

// matchLocal restricts j to the running boot and this machine. An ID that
// cannot be read only widens the filter, with a warning: reading a little
// more beats reading nothing.
func matchLocal(j *sdjournal.Journal, log *slog.Logger) error {
	for _, id := range []struct{ field, file string }{
		{sdjournal.SD_JOURNAL_FIELD_BOOT_ID, "/proc/sys/kernel/random/boot_id"},
		{sdjournal.SD_JOURNAL_FIELD_MACHINE_ID, "/etc/machine-id"},
	} {
		b, err := os.ReadFile(id.file)
		if err != nil {
			log.Warn("not filtering the journal on "+id.field, "err", err)
			continue
		}
		if err := j.AddMatch(id.field + "=" + journalID(string(b))); err != nil {
			return err
		}
	}
	return nil
}

// journalID writes a 128-bit ID the way the journal stores it: 32
// lower-case hex digits, without the dashes of /proc's boot_id.
func journalID(s string) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), "-", ""))
}

func (r *sdReader) next() (rawEntry, bool, error) {
	n, err := r.j.Next()
	if err != nil || n == 0 {
		return rawEntry{}, false, err
	}
	e, err := r.j.GetEntry()
	if err != nil {
		return rawEntry{}, false, err
	}
	return rawEntry{fields: e.Fields, realtimeUsec: e.RealtimeTimestamp, cursor: e.Cursor}, true, nil
}

func (r *sdReader) wait(d time.Duration) {
	if d > 0 {
		r.j.Wait(d)
	}
}

func (r *sdReader) close() { r.j.Close() }
