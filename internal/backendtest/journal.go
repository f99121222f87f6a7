package backendtest

import (
	"bytes"
	"context"
	"encoding/binary"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// JournalRemote returns the path of systemd-journal-remote, which turns
// journal export format into a journal file without a running journald.
func JournalRemote(t testing.TB) string {
	t.Helper()
	return findBinary(t, "systemd-journal-remote", "/lib/systemd", "/usr/lib/systemd")
}

// WriteJournal appends entries to the journal file (its name must end in
// .journal; it is created if missing), so a reader following the file sees
// them arrive. Every field is stored as given, trusted ones (_PID, _BOOT_ID,
// _SYSTEMD_UNIT…) included; an entry without __REALTIME_TIMESTAMP (µs since
// the epoch) gets the current time. Field names must be valid journal field
// names (upper-case letters, digits, underscore).
func WriteJournal(t testing.TB, file string, entries []map[string]string) {
	t.Helper()
	if !strings.HasSuffix(file, ".journal") {
		t.Fatalf("WriteJournal %s: the name must end in .journal", file)
	}
	bin := JournalRemote(t)
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "--output="+file, "-")
	cmd.Stdin = bytes.NewReader(appendExport(nil, entries))
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("systemd-journal-remote -o %s: %v\n%s", file, err, out.Bytes())
	}
}

// appendExport appends entries in journal export format to dst: fields
// sorted by name, values holding a control character (a newline above all)
// in the binary length form, a blank line after each entry.
func appendExport(dst []byte, entries []map[string]string) []byte {
	now := strconv.FormatInt(time.Now().UnixMicro(), 10)
	for _, e := range entries {
		keys := make([]string, 0, len(e)+1)
		for k := range e {
			keys = append(keys, k)
		}
		if _, ok := e["__REALTIME_TIMESTAMP"]; !ok {
			keys = append(keys, "__REALTIME_TIMESTAMP")
		}
		slices.Sort(keys)
		for _, k := range keys {
			v, ok := e[k]
			if !ok {
				v = now
			}
			dst = append(dst, k...)
			if strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }) {
				dst = append(dst, '\n')
				dst = binary.LittleEndian.AppendUint64(dst, uint64(len(v)))
			} else {
				dst = append(dst, '=')
			}
			dst = append(dst, v...)
			dst = append(dst, '\n')
		}
		dst = append(dst, '\n')
	}
	return dst
}
