package prometheus

import (
	"bytes"
	"compress/gzip"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// TestGzipHeadFinish checks that a cached head finished with different
// tails makes whole gzip members, for Go's reader and for gzip(1), which
// is zlib's and rejects a bad CRC or length.
func TestGzipHeadFinish(t *testing.T) {
	f := func(text, rest string) {
		t.Helper()
		h := compress([]byte(text))
		for range 2 { // the head is reused
			member := h.appendFinish(append([]byte(nil), h.bytes...), []byte(rest))
			zr, err := gzip.NewReader(bytes.NewReader(member))
			if err != nil {
				t.Fatal(err)
			}
			zr.Multistream(false)
			got, err := io.ReadAll(zr)
			if err != nil || string(got) != text+rest {
				t.Fatalf("gunzip(%q + %q) = %q, %v", text, rest, got, err)
			}
			cmd := exec.Command("gzip", "-dc")
			cmd.Stdin = bytes.NewReader(member)
			out, err := cmd.Output()
			if err != nil || string(out) != text+rest {
				t.Fatalf("gzip -dc of %q + %q = %q, %v", text, rest, out, err)
			}
		}
	}
	f("", "")
	f("a 1\n", "")
	f("", "b 2\n")
	f("# TYPE a untyped\na 1\n", "# TYPE b gauge\nb 2\n")
	f(strings.Repeat("series{i=\"1\"} 12345\n", 100_000), strings.Repeat("x 1\n", 1000))
}
