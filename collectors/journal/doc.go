// Package journal is the systemd_journal source module (SPEC §8): it
// follows the systemd journal, turns each entry into one log event in the
// journal_bucket (default logs), and stitches Python, Java and Node.js stack
// traces that arrive one line per entry back into one event.
//
// The package is split along what needs cgo. Reading the journal goes
// through github.com/coreos/go-systemd/v22/sdjournal, which needs cgo and
// libsystemd (dlopened at run time); it lives in reader_cgo.go behind a
// build tag, and a build without cgo gets a New that fails with a clear
// error. Everything else — the entry→metric mapping, level and facility
// names, decode_json and the stitcher — is pure Go that takes time as an
// argument, so it is tested without a journal and without a clock.
package journal
